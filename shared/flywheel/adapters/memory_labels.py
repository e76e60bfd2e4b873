"""In-memory label claims: the ``LabelClaims`` contract of the idempotency table, for tests."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

__all__ = ["InMemoryLabelClaims"]


class InMemoryLabelClaims:
    """Claims in a dict (expiry is recorded, never enforced); thread-safe.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> claims = InMemoryLabelClaims()
    >>> later = datetime(2026, 4, 1, tzinfo=UTC)
    >>> claims.claim("k", '"yes"', expires_at=later), claims.claim("k", '"no"', expires_at=later)
    (None, '"yes"')
    >>> claims.find(["k", "other"])
    {'k': '"yes"'}
    """

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}
        self.expires: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def find(self, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {k: self.labels[k] for k in keys if k in self.labels}

    def claim(self, key: str, label: str, *, expires_at: datetime) -> str | None:
        with self._lock:
            holder = self.labels.get(key)
            if holder is not None:
                return holder
            self.labels[key] = label
            self.expires[key] = expires_at
            return None

    def release(self, key: str, label: str) -> None:
        with self._lock:
            if self.labels.get(key) == label:
                del self.labels[key]
                self.expires.pop(key, None)
