"""In-memory feature store adapters with the S3 and DynamoDB adapters' semantics (tests)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from flywheel.errors import NotFoundError
from flywheel.features.models import OnlineRow, WriteCounts

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from flywheel.features.models import FeatureType, ViewKey


class InMemoryBlobStore:
    """Immutable blobs in a dict.

    Examples
    --------
    >>> blobs = InMemoryBlobStore()
    >>> blobs.put("a/b.parquet", b"x")
    'memory://features/a/b.parquet'
    >>> blobs.list("a/")
    ['a/b.parquet']
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> str:
        with self._lock:
            self.objects[key] = bytes(body)
        return f"memory://features/{key}"

    def get(self, key: str) -> bytes:
        with self._lock:
            found = self.objects.get(key)
        if found is None:
            raise NotFoundError(f"no offline file at {key}", field="key")
        return found

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self.objects if k.startswith(prefix))


class InMemoryOnlineStore:
    """The latest row per (view version, entity), written under the same guard as DynamoDB.

    ``writes`` counts item writes that changed something (what a user pays for).

    Examples
    --------
    >>> from flywheel.features.models import ViewKey
    >>> store = InMemoryOnlineStore()
    >>> row = OnlineRow("c1", 10, 10, {"x": 1.0}, "d1")
    >>> store.write(ViewKey("v", 1), [row]).written, store.write(ViewKey("v", 1), [row]).unchanged
    (1, 1)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[tuple[str, int, str], OnlineRow] = {}
        self.writes = 0

    def write(self, view: ViewKey, rows: Sequence[OnlineRow]) -> WriteCounts:
        counts = WriteCounts()
        with self._lock:
            for row in rows:
                key = (view.name, view.version, row.entity_id)
                current = self.items.get(key)
                if current is None or row.newer_than(current):
                    outcome = WriteCounts(written=1)
                elif current.newer_than(row):
                    outcome = WriteCounts(stale=1)
                elif current.digest == row.digest:
                    outcome = WriteCounts(unchanged=1)
                else:  # same timestamps, other values: a re-ingested correction
                    outcome = WriteCounts(written=1)
                if outcome.written:
                    self.items[key] = row
                    self.writes += 1
                counts += outcome
        return counts

    def read(
        self,
        view: ViewKey,
        entity_ids: Sequence[str],
        features: Mapping[str, FeatureType],
    ) -> dict[str, OnlineRow]:
        found: dict[str, OnlineRow] = {}
        with self._lock:
            for entity in entity_ids:
                row = self.items.get((view.name, view.version, entity))
                if row is not None:
                    values = {name: row.values.get(name) for name in features}
                    found[entity] = OnlineRow(
                        entity, row.event_us, row.created_us, values, row.digest
                    )
        return found
