"""The feature store ports: an object store for offline files, a key-value online store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from flywheel.features.models import FeatureType, OnlineRow, ViewKey, WriteCounts


class BlobStore(Protocol):
    """Immutable files by key (the offline store's Parquet files live here)."""

    def put(self, key: str, body: bytes) -> str:
        """Store ``body`` at ``key``; return its URI."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes at ``key``.

        Raises
        ------
        NotFoundError
            Nothing is stored at ``key``.
        """
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``, sorted."""
        ...


class OnlineStore(Protocol):
    """The latest feature values per entity, for low-latency reads.

    Writes are conditional: a row replaces the stored one only when it is newer
    (:meth:`OnlineRow.newer_than`), or carries the same timestamps with different
    values (a re-ingested correction). Writing what is stored already is a no-op.
    """

    def write(self, view: ViewKey, rows: Sequence[OnlineRow]) -> WriteCounts:
        """Write each row under its guard; return how many changed, matched or were older."""
        ...

    def read(
        self,
        view: ViewKey,
        entity_ids: Sequence[str],
        features: Mapping[str, FeatureType],
    ) -> dict[str, OnlineRow]:
        """The stored rows of the entities that have one (with only ``features``)."""
        ...
