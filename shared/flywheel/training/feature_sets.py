"""Training sets joined from a feature view: the entity table plus point-in-time features.

With ``dataset.feature_view`` set, ``dataset.source`` is an *entity table* (the view's
join key, an event time and the target label per row, plus any other columns). Each
row gets the view's feature values as they were known at its event time
(:meth:`~flywheel.features.store.FeatureStore.training_set`: the latest value at or
before the event, within the TTL, among rows already created then), so no value
from the row's future reaches training.  Rows that see no value at all are dropped
and counted; more than ``max_unmatched_share`` of them fails the build (ADR 51).  The
joined table is written as Parquet: it is the run's snapshot, read back (and hashed)
like any other Parquet dataset.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flywheel.errors import ConfigError, DatasetError, InvalidInputError
from flywheel.features.registry import FeatureViewNotFoundError
from flywheel.registry.models import FeatureViewLineage
from flywheel.training.datasets import dataset_from_bytes, parse_source, read_source

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

    from flywheel.features.store import FeatureStore
    from flywheel.registry.models import Task
    from flywheel.training.config import DatasetConfig, FeatureViewSource
    from flywheel.training.datasets import Dataset

PARQUET = ".parquet"
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
_FIELD = "dataset.feature_view"


@dataclass(frozen=True)
class JoinedTrainingSet:
    """A training set built from a feature view.

    ``data`` is the joined table as Parquet (the snapshot); ``dataset`` is read from
    exactly those bytes, so its SHA-256 is the snapshot's.
    """

    data: bytes
    dataset: Dataset
    lineage: FeatureViewLineage


def build_from_feature_view(
    store: FeatureStore | None,
    config: DatasetConfig,
    *,
    task: Task,
    fetch: Callable[[str], bytes] | None = None,
) -> JoinedTrainingSet:
    """Join ``config.feature_view`` onto the entity table ``config.source``, point-in-time.

    Raises
    ------
    ConfigError
        No feature store was given to build it with.
    FeatureViewNotFoundError
        The view (or the pinned version) is not registered.
    DatasetError
        The entity table cannot be read or lacks the join key, the timestamp or the
        target column; a feature is unknown or clashes with an entity column; too many
        rows see no feature value; or the joined features fail the usual checks.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import pyarrow as pa
    >>> from datetime import UTC, datetime
    >>> from flywheel.composition import InMemoryPlatform
    >>> from flywheel.features import IDENTITY, Column, Entity, Feature, FeatureView, Source
    >>> from flywheel.registry.models import Task
    >>> from flywheel.training.config import DatasetConfig
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
    >>> entities = pathlib.Path(tempfile.mkdtemp()) / "entities.csv"
    >>> _ = entities.write_text(
    ...     "customer_id,event_timestamp,churned\\n"
    ...     "c1,2026-01-02T00:00:00Z,yes\\n"
    ...     "c2,2026-01-02T00:00:00Z,no\\n"
    ...     "c3,2026-01-02T00:00:00Z,no\\n"
    ... )
    >>> config = DatasetConfig(
    ...     source=str(entities), target="churned", feature_view={"name": "spend"}
    ... )
    >>> joined = build_from_feature_view(store, config, task=Task.CLASSIFICATION)
    >>> joined.lineage.rows_without_features, joined.dataset.X.tolist()  # c3 has no features
    (1, [[9.5], [3.0]])
    """
    view_source = config.feature_view
    if view_source is None or config.target is None:
        raise ConfigError(f"{_FIELD}: this dataset is not built from a feature view", field=_FIELD)
    if store is None:
        raise ConfigError(
            f"{_FIELD}: no feature store is configured to build this training set with",
            field=_FIELD,
        )
    try:
        registered = store.view(view_source.name, view_source.version)
    except FeatureViewNotFoundError as err:
        raise FeatureViewNotFoundError(
            f"{_FIELD}: {err.message}", field=f"{_FIELD}.{err.field or 'name'}"
        ) from None
    view = registered.view
    features = view_source.features or tuple(view.feature_names)
    unknown = [f for f in features if f not in view.feature_names]
    if unknown:
        raise DatasetError(
            f"{_FIELD}.features: view {view.name!r} v{registered.version} has no feature(s) "
            f"{unknown}; it has {view.feature_names}",
            field=f"{_FIELD}.features",
        )
    entities = read_entities(config.source, fetch=fetch)
    _check_entity_columns(entities, config.target, view.entity.join_key, view_source, features)
    try:
        joined = store.training_set(
            view.name,
            entities,
            version=registered.version,
            timestamp_column=view_source.timestamp_column,
            features=features,
        )
    except InvalidInputError as err:
        raise DatasetError(f"dataset.source: {err.message}", field="dataset.source") from None
    kept, dropped = _drop_rows_without_features(joined, features, view_source)
    data = parquet_bytes(kept)
    dataset = dataset_from_bytes(
        data,
        file_format="parquet",
        source=config.source,
        target=config.target,
        features=features,
        task=task,
    )
    return JoinedTrainingSet(
        data=data,
        dataset=dataset,
        lineage=FeatureViewLineage(
            name=view.name,
            version=registered.version,
            features=features,
            timestamp_column=view_source.timestamp_column,
            entity_source=config.source,
            entity_rows=entities.num_rows,
            rows_without_features=dropped,
        ),
    )


def read_entities(source: str, *, fetch: Callable[[str], bytes] | None = None) -> pa.Table:
    """The entity table at ``source`` (CSV: types inferred, ISO 8601 times become timestamps).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "entities.csv"
    >>> _ = path.write_text("customer_id,event_timestamp,churned\\nc1,2026-01-02T00:00:00Z,1\\n")
    >>> str(read_entities(str(path)).schema.field("event_timestamp").type)
    'timestamp[s, tz=UTC]'
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    content = read_source(source, fetch=fetch)
    _, _, file_format = parse_source(source)
    try:
        if file_format == "csv":
            return pa_csv.read_csv(io.BytesIO(content))
        return pq.read_table(io.BytesIO(content))
    except (pa.ArrowException, OSError):
        raise DatasetError(
            f"dataset.source: the entity table is not a readable {file_format} file",
            field="dataset.source",
        ) from None


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as one Parquet file.

    Examples
    --------
    >>> import pyarrow as pa
    >>> parquet_bytes(pa.table({"x": [1]}))[:4]
    b'PAR1'
    """
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _check_entity_columns(
    entities: pa.Table,
    target: str,
    join_key: str,
    view_source: FeatureViewSource,
    features: tuple[str, ...],
) -> None:
    columns = entities.column_names
    needed = (
        (join_key, "dataset.source", f"the view's join key {join_key!r}"),
        (view_source.timestamp_column, f"{_FIELD}.timestamp_column", "the event time column"),
        (target, "dataset.target", "the target column"),
    )
    for column, field, what in needed:
        if column not in columns:
            raise DatasetError(
                f"{field}: the entity table lacks {what} {column!r}; its columns are {columns}",
                field=field,
            )
    clashes = sorted(set(features) & set(columns))
    if clashes:
        raise DatasetError(
            f"dataset.source: the entity table already has column(s) {clashes} named like "
            "the view's features; rename them or leave them out of feature_view.features",
            field="dataset.source",
        )
    if entities.num_rows == 0:
        raise DatasetError("dataset.source: the entity table has no rows", field="dataset.source")


def _drop_rows_without_features(
    joined: pa.Table, features: tuple[str, ...], view_source: FeatureViewSource
) -> tuple[pa.Table, int]:
    import pyarrow.compute as pc

    mask = functools.reduce(pc.and_, [joined[name].is_null() for name in features])
    dropped = int(pc.sum(mask).as_py() or 0)
    share = dropped / joined.num_rows
    if share > view_source.max_unmatched_share:
        raise DatasetError(
            f"{_FIELD}.max_unmatched_share: {dropped} of {joined.num_rows} entity rows see no "
            f"value of view {view_source.name!r} at their event time ({share:.0%} > "
            f"{view_source.max_unmatched_share:.0%}); check the view version, its TTL and "
            f"the {view_source.timestamp_column!r} column",
            field=f"{_FIELD}.max_unmatched_share",
        )
    return joined.filter(pc.invert(mask)), dropped
