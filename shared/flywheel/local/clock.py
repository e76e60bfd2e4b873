"""A simulated clock for the local runtime: Wait states, retry back-offs and schedules."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SimulatedClock:
    """Time that moves only when the runtime says so (a Wait of 10 minutes takes no time).

    Examples
    --------
    >>> clock = SimulatedClock(datetime(2026, 1, 1, tzinfo=UTC))
    >>> clock.sleep(90)
    >>> clock.now().isoformat()
    '2026-01-01T00:01:30+00:00'
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()
        self.slept_seconds = 0.0

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Advance instead of sleeping."""
        with self._lock:
            self._now += timedelta(seconds=max(0.0, float(seconds)))
            self.slept_seconds += max(0.0, float(seconds))

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (never backwards)."""
        with self._lock:
            self._now = max(self._now, moment)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now
