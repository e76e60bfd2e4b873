"""Materialization: copy the latest offline values of each entity to the online store.

A run reads only the files (and rows of a half-done file) that the stored watermark
does not cover; files are tracked by ingestion, not event time (ADR 50).  It holds one
file's bytes and one chunk of ``chunk_rows`` rows at a time.  Online writes are
conditional (:class:`~flywheel.features.ports.OnlineStore`): an older value never
replaces a newer one and re-writing a value is a no-op.  The watermark advances (a
conditional write on its revision) after each chunk is online, so a run that fails
mid-way resumes at the last completed chunk; of two concurrent runs, the loser stops
with :class:`~flywheel.errors.ConcurrentModificationError`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flywheel.clock import Clock, SystemClock
from flywheel.features.models import (
    MaterializationReport,
    OnlineRow,
    Watermark,
    WriteCounts,
    to_micros,
    values_digest,
)
from flywheel.features.registry import watermark_key
from flywheel.registry.models import RecordWrite

if TYPE_CHECKING:
    from flywheel.features.models import FeatureView, RegisteredView
    from flywheel.features.offline import OfflineStore
    from flywheel.features.ports import OnlineStore
    from flywheel.registry.ports import RecordStore


def latest_rows(view: FeatureView, batch: pa.RecordBatch | pa.Table) -> list[OnlineRow]:
    """The latest row of each entity in ``batch`` (greatest event, created, position)."""
    if batch.num_rows == 0:
        return []
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    key = table[view.entity.join_key].combine_chunks()
    codes = pc.dictionary_encode(key).indices.to_numpy(zero_copy_only=False)
    event = table[view.event_timestamp].combine_chunks().cast(pa.int64()).to_numpy()
    created = table[view.created_timestamp].combine_chunks().cast(pa.int64()).to_numpy()
    order = np.lexsort((np.arange(len(codes)), created, event, codes))
    last = np.concatenate((codes[order][1:] != codes[order][:-1], [True]))
    picked = table.take(pa.array(order[last], pa.int64()))
    ids = picked[view.entity.join_key].to_pylist()
    events = picked[view.event_timestamp].cast(pa.int64()).to_pylist()
    createds = picked[view.created_timestamp].cast(pa.int64()).to_pylist()
    columns = {name: picked[name].to_pylist() for name in view.feature_names}
    rows: list[OnlineRow] = []
    for i, entity in enumerate(ids):
        values = {name: column[i] for name, column in columns.items()}
        rows.append(OnlineRow(str(entity), events[i], createds[i], values, values_digest(values)))
    return rows


class Materializer:
    """Runs materialization of one view version (see the module docstring).

    ``commit_window`` bounds how long an ingestion may take (its files appear at most
    that long after its batch started; the default is well above Lambda's 15 minutes).
    Files of batches older than ``now - commit_window`` are settled and leave the
    watermark's list of done files, so the watermark stays small.

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
    >>> materializer = Materializer(store.offline, store.online, store.records)
    >>> materializer.run(store.view("spend")).written
    2
    >>> materializer.run(store.view("spend")).written  # the watermark covers both rows now
    0
    """

    def __init__(
        self,
        offline: OfflineStore,
        online: OnlineStore,
        records: RecordStore,
        *,
        clock: Clock | None = None,
        chunk_rows: int = 10_000,
        commit_window: timedelta = timedelta(hours=1),
    ) -> None:
        self.offline = offline
        self.online = online
        self.records = records
        self.clock = clock or SystemClock()
        self.chunk_rows = chunk_rows
        self.commit_window = commit_window

    def watermark(self, registered: RegisteredView) -> Watermark:
        stored = self.records.get_record(watermark_key(registered.name, registered.version))
        return Watermark.model_validate(stored.doc) if stored else Watermark()

    def run(self, registered: RegisteredView) -> MaterializationReport:
        key = watermark_key(registered.name, registered.version)
        stored = self.records.get_record(key)
        start = Watermark.model_validate(stored.doc) if stored else Watermark()
        revision = stored.revision if stored else None

        def save(mark: Watermark) -> Watermark:
            nonlocal revision
            write = RecordWrite(key=key, doc=mark.model_dump(), expected_revision=revision)
            revision = self.records.put_record(write).revision
            return mark

        # The horizon is read before listing: a file listed later is younger than it.
        horizon = f"{to_micros(self.clock.now() - self.commit_window):017d}"
        done = set(start.done)
        pending = [
            f
            for f in self.offline.files(registered.key)
            if f.batch[:17] >= start.floor and f.key not in done
        ]
        mark, counts, chunks, rows_read = start, WriteCounts(), 0, 0
        for file in pending:
            skip = mark.offset if file.key == mark.current else 0
            for offset, chunk in self.offline.chunks(file, chunk_rows=self.chunk_rows, skip=skip):
                counts += self.online.write(registered.key, latest_rows(registered.view, chunk))
                rows_read += chunk.num_rows
                chunks += 1
                mark = save(
                    mark.model_copy(
                        update={
                            "current": file.key,
                            "offset": offset,
                            "rows": mark.rows + chunk.num_rows,
                        }
                    )
                )
            done.add(file.key)
            mark = save(
                mark.model_copy(update={"done": tuple(sorted(done)), "current": "", "offset": 0})
            )
        floor = max(start.floor, horizon)
        settled = tuple(sorted(k for k in done if _batch_time(k) >= floor))
        if floor != mark.floor or settled != mark.done:
            mark = save(mark.model_copy(update={"floor": floor, "done": settled}))
        return MaterializationReport(
            view=registered.name,
            version=registered.version,
            started_from=start,
            watermark=mark,
            files=len(pending),
            chunks=chunks,
            rows_read=rows_read,
            written=counts.written,
            unchanged=counts.unchanged,
            stale=counts.stale,
        )


def _batch_time(file_key: str) -> str:
    """The 17-digit batch start of a data file key (``.../part-<µs>-<id>-<n>.parquet``)."""
    return file_key.rsplit("/part-", 1)[-1][:17]
