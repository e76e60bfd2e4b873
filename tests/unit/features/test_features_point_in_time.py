"""Point-in-time retrieval never leaks: late arrivals, TTL expiry, exact-timestamp ties.

References: pandas ``merge_asof`` (no late rows) and a brute-force pandas join (with them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.errors import InvalidInputError
from flywheel.features import FeatureStore, RegisteredView
from flywheel.features.pit import latest_before
from tests.feature_support import (
    DAY,
    T0,
    brute_force_reference,
    entity_rows,
    merge_asof_reference,
    random_history,
    source_rows,
)

FEATURES = ["spend", "log_spend", "orders", "big_spender", "segment", "discount"]


def _entities(rng: np.random.Generator, n: int, entities: int, days: int = 30) -> pa.Table:
    start = int(T0.timestamp()) * 1_000_000
    times = start + rng.integers(-2 * 86_400, (days + 3) * 86_400, n) * 1_000_000
    return pa.table(
        {
            "customer_id": [f"c{i}" for i in rng.integers(0, entities + 2, n)],
            "event_timestamp": pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        }
    )


def _assert_same(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        ours[FEATURES].astype(object).where(ours[FEATURES].notna(), None),
        reference[FEATURES].astype(object).where(reference[FEATURES].notna(), None),
        check_dtype=False,
    )


Reference = Callable[..., pd.DataFrame]


def _join(
    store: FeatureStore, registered: RegisteredView, seed: int, *, late_share: float = 0.0
) -> tuple[pd.DataFrame, Callable[[Reference], pd.DataFrame]]:
    """Ingest random history of 40 customers; join 2,000 entity events; and a reference."""
    rng = np.random.default_rng(seed)
    history = random_history(rng, entities=40, rows=3_000, late_share=late_share)
    store.ingest(registered.name, history)
    entities = _entities(rng, 2_000, 40)
    ours = store.training_set(registered.name, entities).to_pandas()

    def reference(method: Reference) -> pd.DataFrame:
        offline = store.offline.read(registered).to_pandas()
        return method(offline, entities.to_pandas(), key="customer_id", ttl=registered.view.ttl)

    return ours, reference


def test_matches_merge_asof_when_rows_are_on_time(
    store: FeatureStore, registered: RegisteredView
) -> None:
    # Given rows created at their event time, when 2,000 entity events are joined
    ours, reference = _join(store, registered, seed=7)
    # Then every row equals merge_asof's answer (latest at or before, within the 3-day TTL)
    _assert_same(ours, reference(merge_asof_reference))
    assert ours["spend"].notna().sum() > 1_000  # the comparison is not vacuous


def test_late_rows_never_leak_and_match_the_brute_force_reference(
    store: FeatureStore, registered: RegisteredView
) -> None:
    # Given rows of which 40% were created hours to days after their event
    ours, reference = _join(store, registered, seed=11, late_share=0.4)
    _assert_same(ours, reference(brute_force_reference))
    # merge_asof, blind to created timestamps, would have leaked future values here
    leaky = reference(merge_asof_reference)
    assert (leaky["spend"].fillna(-1) != ours["spend"].fillna(-1)).sum() > 10


def test_a_late_correction_is_seen_only_once_it_was_created(
    store: FeatureStore, registered: RegisteredView
) -> None:
    # Given spend 10 on day 1, and a value for day 2 that only arrived on day 3
    store.ingest(
        registered.name,
        source_rows(
            ["c1", "c1"], [T0 + DAY, T0 + 2 * DAY], [10.0, 99.0], created=[T0 + DAY, T0 + 3 * DAY]
        ),
    )
    times = [T0 + 2 * DAY, T0 + 3 * DAY - timedelta(microseconds=1), T0 + 3 * DAY]
    out = store.training_set(registered.name, entity_rows(["c1"] * 3, times))
    # Then before day 3 a training row sees 10 (what was known), from day 3 on it sees 99
    assert out["spend"].to_pylist() == [10.0, 10.0, 99.0]


def test_ttl_keeps_values_up_to_exactly_the_ttl(
    store: FeatureStore, registered: RegisteredView
) -> None:
    store.ingest(registered.name, source_rows(["c1"], [T0], [5.0], created=[T0]))
    ttl = registered.view.ttl
    assert ttl is not None
    times = [T0, T0 + ttl, T0 + ttl + timedelta(microseconds=1), T0 - timedelta(microseconds=1)]
    out = store.training_set(registered.name, entity_rows(["c1"] * 4, times))
    assert out["spend"].to_pylist() == [5.0, 5.0, None, None]


def test_exact_timestamp_ties(store: FeatureStore, registered: RegisteredView) -> None:
    # Given two values with the same event time: the second is a correction created later
    store.ingest(
        registered.name,
        source_rows(["c1", "c1"], [T0, T0], [1.0, 2.0], created=[T0, T0 + DAY]),
    )
    times = [T0, T0 + DAY - timedelta(microseconds=1), T0 + DAY]
    out = store.training_set(registered.name, entity_rows(["c1"] * 3, times))
    # Then an event at exactly T0 sees the first value (at-or-before is inclusive),
    # and the correction wins once it exists
    assert out["spend"].to_pylist() == [1.0, 1.0, 2.0]


def test_output_keeps_entity_rows_and_order(
    store: FeatureStore, registered: RegisteredView
) -> None:
    store.ingest(registered.name, source_rows(["a", "b"], [T0, T0], [1.0, 2.0], created=[T0, T0]))
    entities = entity_rows(["b", "zzz", "a", "b"], [T0 + DAY] * 4).append_column(
        "label", pa.array([1, 0, 1, 0])
    )
    out = store.training_set(registered.name, entities, features=["spend", "segment"])
    assert out.column_names == ["customer_id", "event_timestamp", "label", "spend", "segment"]
    assert out["spend"].to_pylist() == [2.0, None, 1.0, 2.0]
    assert out["label"].to_pylist() == [1, 0, 1, 0]


def test_entity_table_errors_are_named(store: FeatureStore, registered: RegisteredView) -> None:
    with pytest.raises(InvalidInputError, match="lacks column 'event_timestamp'"):
        store.training_set(registered.name, pa.table({"customer_id": ["a"]}))
    with pytest.raises(InvalidInputError, match="non-null timestamp"):
        store.training_set(
            registered.name,
            pa.table(
                {"customer_id": ["a"], "event_timestamp": pa.array([None], pa.timestamp("us"))}
            ),
        )
    with pytest.raises(InvalidInputError, match="no feature"):
        store.training_set(registered.name, entity_rows(["a"], [T0]), features=["nope"])


# -- properties of the core algorithm ------------------------------------------------------------
def _brute(
    ent: list[int], ev: list[int], cr: list[int], q_ent: list[int], q_t: list[int], ttl: int | None
) -> list[int]:
    answers = []
    for e, t in zip(q_ent, q_t, strict=True):
        best = -1
        for i in range(len(ent)):
            if ent[i] != e or ev[i] > t or cr[i] > t or (ttl is not None and t - ev[i] > ttl):
                continue
            if best < 0 or (ev[i], cr[i], i) > (ev[best], cr[best], best):
                best = i
        answers.append(best)
    return answers


small = st.integers(0, 30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), small, st.integers(0, 10)), max_size=25),
    queries=st.lists(st.tuples(st.integers(-1, 4), small), min_size=1, max_size=25),
    ttl=st.one_of(st.none(), st.integers(0, 15)),
    scale=st.sampled_from([1, 2**56]),  # 2**56: time ranges too wide for offset keys
)
def test_latest_before_equals_the_definition(
    rows: list[tuple[int, int, int]],
    queries: list[tuple[int, int]],
    ttl: int | None,
    scale: int,
) -> None:
    ent = [r[0] for r in rows]
    ev = [r[1] * scale for r in rows]
    cr = [(r[1] + r[2]) * scale for r in rows]  # created at or after the event, maybe later
    q_ent = [q[0] for q in queries]
    q_t = [q[1] * scale for q in queries]
    ttl = ttl * scale if ttl is not None else None

    def arr(values: list[int]) -> np.ndarray:
        return np.array(values, dtype=np.int64)

    got = latest_before(arr(ent), arr(ev), arr(cr), arr(q_ent), arr(q_t), ttl=ttl).tolist()
    assert got == _brute(ent, ev, cr, q_ent, q_t, ttl)
    for e, t, i in zip(q_ent, q_t, got, strict=True):
        if i >= 0:  # nothing from the future, nothing unknown at t, nothing too old
            assert ent[i] == e
            assert ev[i] <= t
            assert cr[i] <= t
            assert ttl is None or t - ev[i] <= ttl
