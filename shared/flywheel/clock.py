"""Time as a port, so the local runtime can simulate it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC.

    Examples
    --------
    >>> SystemClock().now().tzinfo is UTC
    True
    """

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests, simulated schedules).

    Examples
    --------
    >>> clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    >>> clock.advance(timedelta(hours=1)).isoformat()
    '2026-01-01T01:00:00+00:00'
    """

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now = self._now + delta
        return self._now


class EnvironmentClock:
    """The wall clock, unless ``FLYWHEEL_NOW`` (ISO 8601) says otherwise.

    The local runtime sets ``FLYWHEEL_NOW`` for every handler it runs, so cooldowns,
    expiries and schedules follow its simulated clock; in AWS the variable is unset.

    Examples
    --------
    >>> import os
    >>> os.environ["FLYWHEEL_NOW"] = "2026-03-01T12:00:00+00:00"
    >>> EnvironmentClock().now().isoformat()
    '2026-03-01T12:00:00+00:00'
    >>> del os.environ["FLYWHEEL_NOW"]
    """

    def now(self) -> datetime:
        import os

        value = os.environ.get("FLYWHEEL_NOW")
        if value:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return datetime.now(UTC)


def default_clock() -> Clock:
    """The clock composition roots should use (see :class:`EnvironmentClock`)."""
    return EnvironmentClock()


def isoformat(moment: datetime) -> str:
    """Render a UTC timestamp with microseconds, sortable as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
