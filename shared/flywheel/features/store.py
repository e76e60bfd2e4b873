"""The feature store use cases: register, ingest, build training sets, materialize, serve.

Training and serving reach features through this one class. Offline methods need
pyarrow (the training image has it); the online methods do not, so the inference
function can use :meth:`FeatureStore.online_vector` with the runtime layer alone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flywheel.clock import Clock, SystemClock
from flywheel.errors import InvalidInputError, NotFoundError
from flywheel.features.models import OnlineResult, to_micros, ttl_micros
from flywheel.features.transformations import TRANSFORMATIONS, TransformationRegistry

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from flywheel.features.models import (
        FeatureValue,
        FeatureView,
        IngestReport,
        MaterializationReport,
        RegisteredView,
        ViewSummary,
        Watermark,
    )
    from flywheel.features.offline import OfflineStore
    from flywheel.features.ports import BlobStore, OnlineStore
    from flywheel.features.registry import FeatureRegistry
    from flywheel.registry.ports import RecordStore


class EntityNotFoundError(NotFoundError):
    """An entity has no online feature values (never materialized, or expired by TTL)."""

    code = "entity_not_found"


class FeatureStore:
    """Feature views offline (S3 Parquet) and online (DynamoDB), one code path for both.

    Parameters
    ----------
    registry
        Where views are registered (audited).
    online
        The online store port.
    records
        Where materialization keeps its watermarks (the registry table).
    blobs
        The offline store's object store (``None``: online use only).
    view_cache_seconds
        How long the *latest* version of a view is remembered; a pinned version is
        immutable and remembered for the life of the object.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from datetime import UTC, datetime, timedelta
    >>> from flywheel.features import IDENTITY, Column, Entity, Feature, FeatureView, Source
    >>> from flywheel.composition import InMemoryPlatform
    >>> store = InMemoryPlatform().feature_store()
    >>> view = FeatureView(
    ...     name="spend",
    ...     entity=Entity(name="customer", join_key="customer_id"),
    ...     source=Source(name="orders", columns=(Column(name="total"),)),
    ...     features=(Feature(name="total"),),
    ...     transformation=IDENTITY.ref,
    ... )
    >>> store.register(view, actor="ana").version
    1
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> keys = {"customer_id": ["c1"], "event_timestamp": [t], "created_timestamp": [t]}
    >>> rows = pa.table({**keys, "total": [9.5]})
    >>> store.ingest("spend", rows).rows_written
    1
    >>> entities = pa.table({"customer_id": ["c1", "c1"], "event_timestamp": [t - timedelta(1), t]})
    >>> store.training_set("spend", entities)["total"].to_pylist()
    [None, 9.5]
    >>> store.materialize("spend").written
    1
    >>> store.online_vector("spend", "c1")
    [9.5]
    """

    def __init__(
        self,
        *,
        registry: FeatureRegistry,
        online: OnlineStore,
        records: RecordStore,
        blobs: BlobStore | None = None,
        clock: Clock | None = None,
        transformations: TransformationRegistry = TRANSFORMATIONS,
        offline_prefix: str = "offline",
        chunk_rows: int = 10_000,
        view_cache_seconds: float = 60.0,
    ) -> None:
        self.registry = registry
        self.online = online
        self.records = records
        self.blobs = blobs
        self.clock = clock or SystemClock()
        self.transformations = transformations
        self.offline_prefix = offline_prefix
        self.chunk_rows = chunk_rows
        self._view_cache_seconds = view_cache_seconds
        self._versions: dict[tuple[str, int], RegisteredView] = {}
        self._latest: dict[str, tuple[float, int]] = {}
        self._offline: OfflineStore | None = None

    # -- definitions ----------------------------------------------------------------------------
    def register(
        self, view: FeatureView, *, actor: str, reason: str | None = None
    ) -> RegisteredView:
        """Register ``view`` (audited); its transformation must be registered in this process."""
        self.transformations.resolve(view.transformation)
        registered = self.registry.register(view, actor=actor, reason=reason)
        self._latest.pop(view.name, None)
        return registered

    def view(self, name: str, version: int | None = None) -> RegisteredView:
        """A registered view version (the latest by default)."""
        if version is None:
            cached = self._latest.get(name)
            if cached is not None and time.monotonic() - cached[0] < self._view_cache_seconds:
                version = cached[1]
            else:
                version = self.registry.latest_version(name)
                self._latest[name] = (time.monotonic(), version)
        found = self._versions.get((name, version))
        if found is None:
            found = self._versions[(name, version)] = self.registry.get(name, version)
        return found

    def list_views(self) -> list[ViewSummary]:
        return self.registry.catalog()

    # -- offline ----------------------------------------------------------------------------------
    @property
    def offline(self) -> OfflineStore:
        if self._offline is None:
            if self.blobs is None:
                raise InvalidInputError("this feature store has no offline store configured")
            from flywheel.features.offline import OfflineStore

            self._offline = OfflineStore(self.blobs, prefix=self.offline_prefix, clock=self.clock)
        return self._offline

    def ingest(self, name: str, table: pa.Table, *, version: int | None = None) -> IngestReport:
        """Validate and transform ``table`` (source rows) into the view's offline store."""
        registered = self.view(name, version)
        transformation = self.transformations.resolve(registered.view.transformation)
        return self.offline.ingest(registered, table, transformation)

    def training_set(
        self,
        name: str,
        entities: pa.Table,
        *,
        version: int | None = None,
        timestamp_column: str = "event_timestamp",
        features: Sequence[str] | None = None,
    ) -> pa.Table:
        """``entities`` (join key + timestamp per row) with point-in-time correct features.

        Each row gets the latest value at or before its timestamp, within the view's TTL,
        among rows already created at that time; otherwise nulls.
        """
        registered = self.view(name, version)
        return self.offline.training_set(
            registered, entities, timestamp_column=timestamp_column, features=features
        )

    # -- materialization --------------------------------------------------------------------------
    def materialize(
        self, name: str, *, version: int | None = None, chunk_rows: int | None = None
    ) -> MaterializationReport:
        """Copy what was ingested since the last run to the online store."""
        from flywheel.features.materialize import Materializer

        registered = self.view(name, version)
        materializer = Materializer(
            self.offline,
            self.online,
            self.records,
            clock=self.clock,
            chunk_rows=chunk_rows or self.chunk_rows,
        )
        return materializer.run(registered)

    def watermark(self, name: str, *, version: int | None = None) -> Watermark:
        from flywheel.features.materialize import Materializer

        return Materializer(self.offline, self.online, self.records).watermark(
            self.view(name, version)
        )

    # -- online -----------------------------------------------------------------------------------
    def online_features(
        self,
        name: str,
        entity_ids: Sequence[str | int],
        *,
        version: int | None = None,
        features: Sequence[str] | None = None,
    ) -> OnlineResult:
        """Online values for one or many entities; missing and expired ones are reported.

        Examples
        --------
        >>> import pyarrow as pa
        >>> from datetime import UTC, datetime
        >>> from flywheel.composition import InMemoryPlatform
        >>> from flywheel.features import IDENTITY, Column, Entity, Feature, FeatureView, Source
        >>> store = InMemoryPlatform().feature_store()
        >>> view = FeatureView(
        ...     name="spend",
        ...     entity=Entity(name="customer", join_key="customer_id"),
        ...     source=Source(name="orders", columns=(Column(name="total"),)),
        ...     features=(Feature(name="total"),),
        ...     transformation=IDENTITY.ref,
        ... )
        >>> _ = store.register(view, actor="ana")
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> _ = store.ingest("spend", pa.table({
        ...     "customer_id": ["c1", "c2"], "event_timestamp": [t, t], "created_timestamp": [t, t],
        ...     "total": [9.5, 3.0],
        ... }))
        >>> store.materialize("spend").written
        2
        >>> result = store.online_features("spend", ["c1", "c3"])
        >>> result.rows["c1"].values, result.missing
        ({'total': 9.5}, ('c3',))
        """
        registered = self.view(name, version)
        view = registered.view
        wanted = tuple(features) if features is not None else tuple(view.feature_names)
        dtypes = view.dtypes
        unknown = sorted(set(wanted) - set(dtypes))
        if unknown:
            raise InvalidInputError(
                f"view {name!r} has no feature(s) {', '.join(unknown)}", field="features"
            )
        ids = list(dict.fromkeys(str(e) for e in entity_ids))
        rows = self.online.read(registered.key, ids, {n: dtypes[n] for n in wanted})
        expired: list[str] = []
        if view.ttl is not None:
            oldest = to_micros(self.clock.now()) - (ttl_micros(view) or 0)
            expired = [e for e in ids if e in rows and rows[e].event_us < oldest]
            for entity in expired:
                del rows[entity]
        missing = tuple(e for e in ids if e not in rows and e not in expired)
        return OnlineResult(
            view=registered.key,
            features=wanted,
            rows=rows,
            missing=missing,
            expired=tuple(expired),
        )

    def online_vector(
        self,
        name: str,
        entity_id: str | int,
        *,
        version: int | None = None,
        features: Sequence[str] | None = None,
    ) -> list[FeatureValue]:
        """One entity's online feature values, in the view's (or ``features``) order.

        Raises
        ------
        EntityNotFoundError
            The entity has no online values, or its latest is older than the TTL.
        """
        result = self.online_features(name, [entity_id], version=version, features=features)
        entity = str(entity_id)
        if entity in result.expired:
            raise EntityNotFoundError(
                f"entity {entity!r} of feature view {name!r} has only expired values "
                "(older than the view's TTL)",
                field="entity_id",
            )
        if entity not in result.rows:
            raise EntityNotFoundError(
                f"entity {entity!r} has no online values in feature view {name!r}",
                field="entity_id",
            )
        return result.vector(entity)
