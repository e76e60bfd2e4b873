"""Materialization is incremental, idempotent, never regresses a value, and resumes cleanly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pytest

from flywheel.adapters.memory_features import InMemoryOnlineStore
from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.features import FeatureStore, RegisteredView
from flywheel.features.models import OnlineRow, ViewKey, WriteCounts
from tests.feature_support import DAY, T0, TRANSFORMS, customer_view, random_history, source_rows


class InjectedCrashError(RuntimeError):
    """The injected failure (a Lambda timeout, a lost connection)."""


class CrashingOnlineStore(InMemoryOnlineStore):
    """Fails once, after ``crash_after`` item writes."""

    def __init__(self, crash_after: int) -> None:
        super().__init__()
        self.crash_after = crash_after
        self.attempted = 0

    def write(self, view: ViewKey, rows: Sequence[OnlineRow]) -> WriteCounts:
        counts = WriteCounts()
        for row in rows:
            if self.attempted == self.crash_after:
                self.attempted += 1
                raise InjectedCrashError("connection lost")
            self.attempted += 1
            counts += super().write(view, [row])
        return counts


def _store(clock: FixedClock, online: InMemoryOnlineStore) -> FeatureStore:
    store = InMemoryPlatform(clock=clock).feature_store(transformations=TRANSFORMS, chunk_rows=500)
    store.online = online
    store.register(customer_view(ttl=None), actor="ana")
    return store


def _online_state(online: InMemoryOnlineStore) -> dict[str, tuple[int, int, str]]:
    return {k[2]: (r.event_us, r.created_us, r.digest) for k, r in online.items.items()}


def test_second_run_reads_and_writes_nothing(
    store: FeatureStore, registered: RegisteredView
) -> None:
    store.ingest(registered.name, random_history(np.random.default_rng(1), entities=50, rows=3_000))
    first = store.materialize(registered.name)
    assert first.rows_read == 3_000
    assert first.written >= 50  # every entity, then newer values of later chunks
    assert len(store.online_features(registered.name, [f"c{i}" for i in range(50)]).missing) == 0
    again = store.materialize(registered.name)
    assert (again.rows_read, again.written, again.chunks) == (0, 0, 0)
    assert again.watermark == first.watermark


def test_runs_pick_up_only_new_rows_including_late_ones(
    store: FeatureStore, registered: RegisteredView, clock: FixedClock
) -> None:
    # Given a materialized value of yesterday for c1
    yesterday = clock.now() - DAY
    store.ingest(registered.name, source_rows(["c1"], [yesterday], [50.0], created=[T0]))
    store.materialize(registered.name)
    # When a late row with an older event (two days ago) and a new entity arrive
    store.ingest(
        registered.name,
        source_rows(["c1", "c2"], [yesterday - DAY, yesterday], [20.0, 7.0], created=[T0, T0]),
    )
    report = store.materialize(registered.name)
    # Then only the two new rows are read; the older value never replaces the newer one
    assert (report.rows_read, report.written, report.stale) == (2, 1, 1)
    assert store.online_vector(registered.name, "c1", features=["spend"]) == [50.0]
    assert store.online_vector(registered.name, "c2", features=["spend"]) == [7.0]


def test_a_correction_replaces_the_online_value(
    store: FeatureStore, registered: RegisteredView, clock: FixedClock
) -> None:
    event = clock.now() - DAY
    store.ingest(registered.name, source_rows(["c1"], [event], [1.0], created=[event]))
    store.materialize(registered.name)
    # A correction: same event time, created later
    store.ingest(registered.name, source_rows(["c1"], [event], [2.0], created=[clock.now()]))
    assert store.materialize(registered.name).written == 1
    assert store.online_vector(registered.name, "c1", features=["spend"]) == [2.0]


def test_resumes_after_a_crash_without_duplicate_writes(clock: FixedClock) -> None:
    history = random_history(np.random.default_rng(5), entities=400, rows=6_000, late_share=0.3)
    # Given a clean run as the reference
    clean_online = InMemoryOnlineStore()
    clean = _store(clock, clean_online)
    clean.ingest("customer-orders", history)
    reference = clean.materialize("customer-orders")

    # When a run crashes in its fourth chunk
    online = CrashingOnlineStore(crash_after=0)
    store = _store(clock, online)
    store.ingest("customer-orders", history)
    online.crash_after = 3 * 400 + 123  # chunks of 500 rows have ≤ 400 entities
    with pytest.raises(InjectedCrashError):
        store.materialize("customer-orders")
    stopped_at = store.watermark("customer-orders")
    assert 0 < stopped_at.rows < 6_000  # completed chunks are recorded
    writes_before = online.writes

    # Then the next run resumes at the last completed chunk and finishes the job
    resumed = store.materialize("customer-orders")
    assert resumed.started_from == stopped_at
    assert stopped_at.rows + resumed.rows_read == 6_000
    assert resumed.unchanged > 0  # the replayed part of the crashed chunk was a no-op
    # And the online store ends identical to the clean run's, with no write done twice
    assert _online_state(online) == _online_state(clean_online)
    assert writes_before + resumed.written == reference.written == clean_online.writes
    assert resumed.watermark.rows == reference.watermark.rows == 6_000


def test_online_reads_report_missing_and_expired(
    store: FeatureStore, registered: RegisteredView, clock: FixedClock
) -> None:
    now = clock.now()
    store.ingest(
        registered.name,
        source_rows(["fresh", "old"], [now - DAY, now - 4 * DAY], [1.0, 2.0], created=[T0, T0]),
    )
    store.materialize(registered.name)
    result = store.online_features(registered.name, ["fresh", "old", "never", "fresh"])
    assert list(result.rows) == ["fresh"]
    assert result.expired == ("old",)
    assert result.missing == ("never",)
    from flywheel.features import EntityNotFoundError

    with pytest.raises(EntityNotFoundError, match="expired"):
        store.online_vector(registered.name, "old")
    with pytest.raises(EntityNotFoundError, match="no online values"):
        store.online_vector(registered.name, "never")
    clock.advance(timedelta(days=3))  # now "fresh" is 4 days old, past the 3-day TTL
    assert store.online_features(registered.name, ["fresh"]).expired == ("fresh",)


def test_a_slow_ingestion_that_finishes_last_is_not_skipped(
    store: FeatureStore, registered: RegisteredView, clock: FixedClock
) -> None:
    # Given an ingestion started at 12:00:10 and materialized at 12:00:30
    start = clock.now()
    clock.advance(timedelta(seconds=10))
    store.ingest(registered.name, source_rows(["fast"], [start - DAY], [1.0], created=[T0]))
    clock.advance(timedelta(seconds=20))
    store.materialize(registered.name)
    # When an ingestion that started earlier, at 12:00:00, only now lands its files
    clock.advance(timedelta(seconds=-30))
    store.ingest(registered.name, source_rows(["slow"], [start - DAY], [2.0], created=[T0]))
    clock.advance(timedelta(seconds=40))
    # Then the next run still materializes it
    report = store.materialize(registered.name)
    assert (report.rows_read, report.written) == (1, 1)
    assert store.online_vector(registered.name, "slow", features=["spend"]) == [2.0]


def test_settled_files_leave_the_watermark(
    store: FeatureStore, registered: RegisteredView, clock: FixedClock
) -> None:
    store.ingest(registered.name, source_rows(["a"], [clock.now() - DAY], [1.0], created=[T0]))
    assert len(store.materialize(registered.name).watermark.done) == 1
    # Two hours later the batch is past the one-hour commit window: it is settled
    clock.advance(timedelta(hours=2))
    settled = store.materialize(registered.name).watermark
    assert settled.done == ()
    assert settled.floor > ""
    assert store.materialize(registered.name).rows_read == 0
    # And a new ingestion is still picked up
    store.ingest(registered.name, source_rows(["b"], [clock.now() - DAY], [2.0], created=[T0]))
    assert store.materialize(registered.name).written == 1
