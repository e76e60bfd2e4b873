"""Ingestion validates every row; bad rows are rejected with reasons, never dropped silently."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.errors import ConflictError, InvalidInputError
from flywheel.features import FeatureStore, RegisteredView
from flywheel.features.transformations import TransformationError, TransformationRegistry
from tests.feature_support import DAY, T0, TRANSFORMS, customer_view, entity_rows, source_rows


def test_report_accounts_for_every_row(store: FeatureStore, registered: RegisteredView) -> None:
    # Given a batch with a null key, a NaN spend, an infinite spend, a fractional order
    # count, an unparseable spend and a duplicate of row 0
    batch = pa.table(
        {
            "customer_id": ["a", None, "b", "c", "d", "e", "a"],
            "event_timestamp": pa.array([T0] * 7, pa.timestamp("us", tz="UTC")),
            "created_timestamp": pa.array([T0] * 7, pa.timestamp("us", tz="UTC")),
            "spend": ["1.5", "2", "nan", "inf", "4", "lots", "1.5"],
            "orders": [1.0, 2.0, 3.0, 4.0, 2.5, 1.0, 1.0],
        }
    )
    report = store.ingest(registered.name, batch)
    # Then one row is written and six are rejected, each with its reason and index
    assert (report.rows_received, report.rows_written, report.rows_rejected) == (7, 1, 6)
    assert {r.row: r.reasons for r in report.rejected} == {
        1: ("customer_id: null",),
        2: ("spend: null",),
        3: ("spend: not finite",),
        4: ("orders: not a int",),
        5: ("spend: not a float",),
        6: ("duplicate key (same entity, event and created timestamps as row 0)",),
    }
    assert report.reasons["spend: null"] == 1
    # And the rejected rows are kept, with their reasons, in the quarantine file
    assert report.quarantine is not None
    key = report.quarantine.removeprefix("memory://features/")
    assert store.blobs is not None
    quarantined = pq.read_table(io.BytesIO(store.blobs.get(key)))
    assert quarantined["_row"].to_pylist() == [1, 2, 3, 4, 5, 6]
    assert quarantined["spend"].to_pylist()[4] == "lots"
    assert quarantined["_reasons"].to_pylist()[0] == "customer_id: null"


def test_transformed_features_obey_the_nulls_policy(
    store: FeatureStore, registered: RegisteredView
) -> None:
    # ``discount`` is nullable (NaN below 4 orders); ``spend`` is not
    report = store.ingest(
        registered.name,
        source_rows(["a", "b"], [T0, T0], [10.0, 200.0], created=[T0, T0], orders=[1, 5]),
    )
    assert report.rows_rejected == 0
    out = store.training_set(registered.name, entity_rows(["a", "b"], [T0, T0]))
    assert out["discount"].to_pylist() == [None, 20.0]
    assert out["segment"].to_pylist() == ["basic", "gold"]
    assert out["big_spender"].to_pylist() == [False, True]
    assert out["orders"].to_pylist() == [1, 5]


def test_missing_column_rejects_the_whole_batch(
    store: FeatureStore, registered: RegisteredView
) -> None:
    batch = source_rows(["a"], [T0], [1.0]).drop_columns(["orders"])
    with pytest.raises(InvalidInputError, match="lacks column") as caught:
        store.ingest(registered.name, batch)
    assert caught.value.field == "orders"
    assert store.offline.files(registered.key) == []


def test_missing_created_timestamp_means_known_from_ingestion(
    store: FeatureStore, registered: RegisteredView, clock: FixedClock
) -> None:
    # Given rows without a created timestamp, ingested at "now"
    report = store.ingest(registered.name, source_rows(["a"], [clock.now() - DAY], [3.0]))
    assert report.created_timestamp_filled
    # Then a training row before the ingestion cannot see them (no leak), one after can
    before, after = clock.now() - timedelta(hours=1), clock.now()
    out = store.training_set(registered.name, entity_rows(["a", "a"], [before, after]))
    assert out["spend"].to_pylist() == [None, 3.0]


def test_rows_are_partitioned_by_event_date(
    store: FeatureStore, registered: RegisteredView
) -> None:
    report = store.ingest(
        registered.name,
        source_rows(["a", "b", "c"], [T0, T0 + DAY, T0 + 3 * DAY], [1.0, 2.0, 3.0]),
    )
    days = [f.day for f in store.offline.files(registered.key)]
    assert days == ["2026-01-01", "2026-01-02", "2026-01-04"]
    assert all("/date=2026-01-0" in uri for uri in report.files)


def test_a_transformation_with_a_wrong_shape_is_refused(clock: FixedClock) -> None:
    registry = TransformationRegistry()

    @registry.register("order_features", version=1)
    def broken(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"spend": cols["spend"][:1]}

    store = InMemoryPlatform(clock=clock).feature_store(transformations=registry)
    view = customer_view().model_copy(update={"transformation": broken.ref})
    store.register(view, actor="ana")
    with pytest.raises(TransformationError, match="shape"):
        store.ingest(view.name, source_rows(["a", "b"], [T0, T0], [1.0, 2.0]))
    assert store.offline.files(store.view(view.name).key) == []


def test_a_failing_transformation_is_named_and_writes_nothing(clock: FixedClock) -> None:
    registry = TransformationRegistry()

    @registry.register("needs_missing_column", version=3)
    def needs_missing_column(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"spend": cols["refunds"]}

    store = InMemoryPlatform(clock=clock).feature_store(transformations=registry)
    view = customer_view().model_copy(update={"transformation": needs_missing_column.ref})
    store.register(view, actor="ana")
    with pytest.raises(TransformationError, match=r"needs_missing_column@v3 failed \(KeyError\)"):
        store.ingest(view.name, source_rows(["a"], [T0], [1.0]))
    assert store.offline.files(store.view(view.name).key) == []


def test_changed_code_under_the_same_version_is_refused(
    store: FeatureStore, registered: RegisteredView
) -> None:
    other = TransformationRegistry()

    @other.register("order_features", version=1)
    def rewritten(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"spend": cols["spend"] * 2}

    store.transformations = other
    with pytest.raises(ConflictError, match="changed since the view was registered"):
        store.ingest(registered.name, source_rows(["a"], [T0], [1.0]))
    store.transformations = TRANSFORMS


# Non-negative spend keeps log1p finite: every rejection below is the validator's.
values = st.one_of(
    st.floats(min_value=0, allow_infinity=True),
    st.just(float("nan")),
    st.none(),
    st.sampled_from(["x", "7"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spend=st.lists(values, min_size=1, max_size=30))
def test_every_row_is_written_or_rejected(
    store: FeatureStore, registered: RegisteredView, spend: list[object]
) -> None:
    n = len(spend)
    batch = pa.table(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "event_timestamp": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
            "spend": pa.array([None if v is None else str(v) for v in spend]),
            "orders": list(range(n)),
        }
    )
    report = store.ingest(registered.name, batch)
    good = {
        i
        for i, v in enumerate(spend)
        if v is not None and (v == "7" or (isinstance(v, float) and np.isfinite(v)))
    }
    assert report.rows_written == len(good)
    assert {r.row for r in report.rejected} == set(range(n)) - good
    assert report.rows_written + report.rows_rejected == n
