"""The offline store: Parquet files partitioned by event date, on any :class:`BlobStore`.

Layout of a view version (``prefix`` defaults to ``offline``)::

    offline/<view>/v<version>/date=YYYY-MM-DD/part-<batch>-<nnnn>.parquet
    offline/<view>/v<version>/_rejected/part-<batch>.parquet

``batch`` is ``<ingestion start in µs, 17 digits>-<random>``: files sort in ingestion
order, which materialization follows and which breaks exact-duplicate ties (the
later ingestion wins). Files are immutable; an ingestion only adds files. A batch
cut short by a crash leaves the files it wrote; ingesting the same rows again is
harmless (equal keys and values: the later copy wins, with the same values).
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flywheel.clock import Clock, SystemClock
from flywheel.errors import InvalidInputError
from flywheel.features.ingestion import (
    TIMESTAMP,
    PreparedBatch,
    coerce,
    key_type,
    prepare,
    stored_schema,
)
from flywheel.features.models import IngestReport, to_micros, ttl_micros
from flywheel.features.pit import latest_before

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from flywheel.features.models import FeatureView, RegisteredView, ViewKey
    from flywheel.features.ports import BlobStore
    from flywheel.features.transformations import Transformation

_FILE = re.compile(r"date=(\d{4}-\d{2}-\d{2})/part-(\d{17}-[0-9a-f]+)-(\d{4})\.parquet$")
_DAY_US = 86_400 * 1_000_000
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, order=True)
class OfflineFile:
    """One Parquet file of a view version, ordered by ``(batch, key)``."""

    batch: str
    key: str
    day: str


class OfflineStore:
    """Ingest, list and read a view's offline data; join training sets point-in-time.

    Examples
    --------
    >>> from flywheel.adapters.memory_features import InMemoryBlobStore
    >>> from flywheel.features.models import ViewKey
    >>> OfflineStore(InMemoryBlobStore()).files(ViewKey("churn", 1))
    []
    """

    def __init__(
        self,
        blobs: BlobStore,
        *,
        prefix: str = "offline",
        clock: Clock | None = None,
        max_rows_per_file: int = 250_000,
        row_group_rows: int = 50_000,
    ) -> None:
        self.blobs = blobs
        self.prefix = prefix.strip("/")
        self._clock = clock or SystemClock()
        self.max_rows_per_file = max_rows_per_file
        self.row_group_rows = row_group_rows

    def _root(self, view: ViewKey) -> str:
        return f"{self.prefix}/{view.name}/v{view.version}/"

    # -- writes ---------------------------------------------------------------------------------
    def ingest(
        self, registered: RegisteredView, source: pa.Table, transformation: Transformation
    ) -> IngestReport:
        """Validate, transform and store a batch; rejected rows go to the quarantine file."""
        now = self._clock.now()
        batch = f"{to_micros(now):017d}-{uuid.uuid4().hex[:8]}"
        prepared = prepare(registered.view, source, transformation, now=now)
        files = self._write_partitions(registered, prepared.table, batch)
        quarantine = None
        if prepared.rejected:
            quarantine = self._quarantine(registered, source, prepared, batch)
        return IngestReport(
            view=registered.name,
            version=registered.version,
            batch=batch,
            rows_received=source.num_rows,
            rows_written=prepared.table.num_rows,
            rows_rejected=len(prepared.rejected),
            reasons=prepared.reasons,
            rejected=prepared.rejected,
            files=tuple(files),
            quarantine=quarantine,
            created_timestamp_filled=prepared.created_filled,
        )

    def _write_partitions(
        self, registered: RegisteredView, table: pa.Table, batch: str
    ) -> list[str]:
        if table.num_rows == 0:
            return []
        view = registered.view
        days = table[view.event_timestamp].combine_chunks().cast(pa.int64()).to_numpy() // _DAY_US
        order = np.argsort(days, kind="stable")
        sorted_days = days[order]
        bounds = np.flatnonzero(np.diff(sorted_days)) + 1
        uris: list[str] = []
        for rows in np.split(order, bounds):
            day = (_EPOCH + timedelta(days=int(days[rows[0]]))).isoformat()
            part = table.take(pa.array(rows, pa.int64()))
            for n, start in enumerate(range(0, part.num_rows, self.max_rows_per_file)):
                key = f"{self._root(registered.key)}date={day}/part-{batch}-{n:04d}.parquet"
                chunk = part.slice(start, self.max_rows_per_file)
                uris.append(self.blobs.put(key, self._parquet(chunk)))
        return uris

    def _quarantine(
        self, registered: RegisteredView, source: pa.Table, prepared: PreparedBatch, batch: str
    ) -> str:
        rows = pa.array([r.row for r in prepared.rejected], pa.int64())
        bad = source.take(rows)
        bad = bad.append_column("_row", rows)
        bad = bad.append_column(
            "_reasons", pa.array(["; ".join(r.reasons) for r in prepared.rejected])
        )
        key = f"{self._root(registered.key)}_rejected/part-{batch}.parquet"
        return self.blobs.put(key, self._parquet(bad))

    def _parquet(self, table: pa.Table) -> bytes:
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=self.row_group_rows, compression="zstd")
        return sink.getvalue()

    # -- reads ----------------------------------------------------------------------------------
    def files(
        self, view: ViewKey, *, first_day: str | None = None, last_day: str | None = None
    ) -> list[OfflineFile]:
        """The view's data files in ingestion order, optionally pruned to a day range."""
        found: list[OfflineFile] = []
        for key in self.blobs.list(f"{self._root(view)}date="):
            match = _FILE.search(key)
            if match is None:
                continue
            day = match.group(1)
            if (first_day and day < first_day) or (last_day and day > last_day):
                continue
            found.append(OfflineFile(batch=match.group(2), key=key, day=day))
        return sorted(found)

    def read(
        self,
        registered: RegisteredView,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows whose event date is within ``[start, end]`` (whole days), in ingestion order."""
        first = start.astimezone(UTC).date().isoformat() if start else None
        last = end.astimezone(UTC).date().isoformat() if end else None
        schema = stored_schema(registered.view)
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        tables = [
            pq.read_table(io.BytesIO(self.blobs.get(f.key)), columns=schema.names)
            for f in self.files(registered.key, first_day=first, last_day=last)
        ]
        if not tables:
            return schema.empty_table()
        return pa.concat_tables([t.cast(schema) for t in tables])

    def chunks(
        self, file: OfflineFile, *, chunk_rows: int, skip: int = 0
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        """A file's rows after the first ``skip``, as ``(rows done after the chunk, chunk)``.

        Memory holds the file's bytes and one chunk at a time.
        """
        parquet = pq.ParquetFile(io.BytesIO(self.blobs.get(file.key)))
        offset = 0
        for chunk in parquet.iter_batches(batch_size=chunk_rows):
            offset += chunk.num_rows
            if offset <= skip:
                continue
            done = offset - chunk.num_rows  # rows of the file before the chunk
            yield offset, chunk.slice(skip - done) if done < skip else chunk

    # -- point-in-time ----------------------------------------------------------------------------
    def training_set(
        self,
        registered: RegisteredView,
        entities: pa.Table,
        *,
        timestamp_column: str = "event_timestamp",
        features: Sequence[str] | None = None,
    ) -> pa.Table:
        """``entities`` with the view's features as they were known at each row's time.

        Only partitions that can hold an answer are read: event dates from the earliest
        entity time minus the TTL to the latest entity time.
        """
        view = registered.view
        key, times = _entity_columns(view, entities, timestamp_column)
        wanted = list(features) if features is not None else view.feature_names
        unknown = sorted(set(wanted) - set(view.feature_names))
        if unknown:
            raise InvalidInputError(
                f"view {view.name!r} has no feature(s) {', '.join(unknown)}", field="features"
            )
        clashes = sorted(set(wanted) & set(entities.column_names))
        if clashes:
            raise InvalidInputError(
                f"entity table already has column(s) {', '.join(clashes)}", field="entities"
            )
        if entities.num_rows == 0:
            rows = stored_schema(view).empty_table()
        else:
            ttl = ttl_micros(view)
            earliest = int(times.min()) - (ttl or 0)
            start = _from_micros(earliest) if ttl is not None else None
            rows = self.read(
                registered,
                start=start,
                end=_from_micros(int(times.max())),
                columns=[
                    view.entity.join_key,
                    view.event_timestamp,
                    view.created_timestamp,
                    *wanted,
                ],
            )
        return join_point_in_time(view, rows, entities, key, times, wanted)


def _from_micros(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _entity_columns(
    view: FeatureView, entities: pa.Table, timestamp_column: str
) -> tuple[pa.Array, np.ndarray]:
    for name in (view.entity.join_key, timestamp_column):
        if name not in entities.column_names:
            raise InvalidInputError(f"entity table lacks column {name!r}", field=name)
    key, bad_keys = coerce(entities[view.entity.join_key], key_type(view))
    times, bad_times = coerce(entities[timestamp_column], TIMESTAMP)
    if bad_keys.any() or bad_times.any() or times.null_count:
        raise InvalidInputError(
            f"entity table needs a {view.entity.dtype} {view.entity.join_key!r} and a "
            f"non-null timestamp {timestamp_column!r} on every row",
            field=timestamp_column
            if (bad_times.any() or times.null_count)
            else view.entity.join_key,
        )
    return key, times.cast(pa.int64()).to_numpy(zero_copy_only=False)


def join_point_in_time(
    view: FeatureView,
    rows: pa.Table,
    entities: pa.Table,
    key: pa.Array,
    times: np.ndarray,
    features: Sequence[str],
) -> pa.Table:
    """Append to ``entities`` the feature values each row may see (see :mod:`.pit`)."""
    if rows.num_rows:
        encoded = pc.dictionary_encode(rows[view.entity.join_key].combine_chunks())
        row_entity = encoded.indices.cast(pa.int64()).to_numpy(zero_copy_only=False)
        query_entity = pc.fill_null(pc.index_in(key, value_set=encoded.dictionary), -1)
        index = latest_before(
            row_entity,
            rows[view.event_timestamp].combine_chunks().cast(pa.int64()).to_numpy(),
            rows[view.created_timestamp].combine_chunks().cast(pa.int64()).to_numpy(),
            query_entity.cast(pa.int64()).to_numpy(zero_copy_only=False),
            times,
            ttl=ttl_micros(view),
        )
    else:
        index = np.full(entities.num_rows, -1, dtype=np.int64)
    take = pa.array(index, pa.int64(), mask=index < 0)
    out = entities
    dtypes = stored_schema(view)
    for name in features:
        if rows.num_rows:  # one column at a time: memory holds one gathered column extra
            column = rows[name].combine_chunks().take(take)
        else:
            column = pa.nulls(entities.num_rows)
        out = out.append_column(
            pa.field(name, dtypes.field(name).type), column.cast(dtypes.field(name).type)
        )
    return out
