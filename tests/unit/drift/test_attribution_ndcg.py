"""NDCG of the live importance ranking against training's, checked against hand computation."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flywheel.drift.attribution import AttributionPolicy, compare_attributions, ndcg

LOG2_3 = math.log2(3)  # discount of position 2 is 1 / log2(3); position 3: 1 / 2


def test_clarifys_college_admission_example_where_the_ranking_reversed() -> None:
    training = {"SAT": 0.70, "GPA": 0.50, "rank": 0.05}
    live = {"SAT": 0.10, "GPA": 0.20, "rank": 0.70}
    # Live order: rank, GPA, SAT, each gaining its training importance.
    dcg = 0.05 / 1 + 0.50 / LOG2_3 + 0.70 / 2
    ideal = 0.70 / 1 + 0.50 / LOG2_3 + 0.05 / 2

    assert ndcg(training, live) == pytest.approx(dcg / ideal, abs=1e-12)
    assert ndcg(training, live) == pytest.approx(0.68764, abs=1e-5)


def test_the_training_ranking_scores_one_whatever_the_scale() -> None:
    training = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}

    assert ndcg(training, {"a": 0.04, "b": 0.03, "c": 0.02, "d": 0.01}) == 1.0
    assert ndcg(training, {"a": 400.0, "b": 3.0, "c": 2.5, "d": 0.0}) == 1.0


def test_a_swap_at_the_top_costs_more_than_the_same_swap_at_the_bottom() -> None:
    training = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
    ideal = 4 + 3 / LOG2_3 + 2 / 2 + 1 / math.log2(5)
    bottom = {"a": 4.0, "b": 3.0, "c": 1.0, "d": 2.0}  # c and d trade places
    top = {"a": 3.0, "b": 4.0, "c": 2.0, "d": 1.0}  # a and b trade places

    assert ndcg(training, bottom) == pytest.approx(
        (4 + 3 / LOG2_3 + 1 / 2 + 2 / math.log2(5)) / ideal, abs=1e-12
    )  # 0.9905
    assert ndcg(training, top) == pytest.approx(
        (3 + 4 / LOG2_3 + 2 / 2 + 1 / math.log2(5)) / ideal, abs=1e-12
    )  # 0.9496
    assert ndcg(training, top) < ndcg(training, bottom)


def test_tied_live_values_share_their_positions_discount_in_any_feature_order() -> None:
    training = {"a": 3.0, "b": 1.0}
    shared = (1 + 1 / LOG2_3) / 2  # both features sit at positions 1 and 2

    expected = (3 * shared + 1 * shared) / (3 + 1 / LOG2_3)  # 0.8984
    assert ndcg(training, {"a": 0.5, "b": 0.5}) == pytest.approx(expected, abs=1e-12)
    assert ndcg(training, {"b": 0.5, "a": 0.5}) == pytest.approx(expected, abs=1e-12)


def test_a_feature_missing_on_one_side_counts_as_zero_there() -> None:
    # Live has no "c" (importance 0): it drops to the bottom, behind the new "d".
    training = {"a": 2.0, "b": 1.0, "c": 0.5}
    live = {"a": 2.0, "b": 1.0, "d": 0.7}
    dcg = 2 + 1 / LOG2_3 + 0 / 2 + 0.5 / math.log2(5)
    ideal = 2 + 1 / LOG2_3 + 0.5 / 2 + 0 / math.log2(5)

    assert ndcg(training, live) == pytest.approx(dcg / ideal, abs=1e-12)


@pytest.mark.parametrize(
    ("training", "live", "message"),
    [
        ({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 2.0}, "no feature a positive importance"),
        ({"a": 1.0}, {"a": math.nan}, "importance of 'a' is nan"),
        ({"a": -1.0, "b": 2.0}, {"a": 1.0, "b": 1.0}, "importance of 'a' is -1.0"),
    ],
    ids=["zero-baseline", "nan", "negative"],
)
def test_a_baseline_without_a_ranking_or_values_that_are_no_importance_raise(
    training: dict[str, float], live: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ndcg(training, live)


importances = st.dictionaries(
    st.sampled_from("abcdefgh"),
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
    min_size=1,
)


@given(training=importances, live=importances)
def test_ndcg_is_between_zero_and_one(training: dict[str, float], live: dict[str, float]) -> None:
    if not any(v > 0 for v in training.values()):
        return
    assert 0.0 <= ndcg(training, live) <= 1.0


@given(training=importances)
def test_any_increasing_transform_of_the_baseline_is_no_drift(training: dict[str, float]) -> None:
    if not any(v > 0 for v in training.values()):
        return
    live = {k: math.sqrt(v) * 3 + 1 for k, v in training.items()}
    # In floating point the transform can merge tiny values (1 + 1e-98 == 1): keep the
    # cases where it still orders every pair as the baseline does.
    assume(
        all((training[a] < training[b]) == (live[a] < live[b]) for a in training for b in training)
    )
    assert ndcg(training, live) == pytest.approx(1.0, abs=1e-12)


def test_compare_reports_the_verdict_ranks_and_change_per_feature() -> None:
    drift = compare_attributions(
        {"SAT": 0.70, "GPA": 0.50, "rank": 0.05},
        {"SAT": 0.10, "GPA": 0.20, "rank": 0.70},
        AttributionPolicy(min_ndcg=0.9),
        sample_rows=2000,
        window_rows=100_000,
        method="tree_shap",
        space="log_odds",
    )

    assert (drift.status, drift.drifted, drift.threshold) == ("scored", True, 0.9)
    assert drift.ndcg == pytest.approx(0.68764, abs=1e-5)
    rows = [(f.feature, f.baseline_rank, f.live_rank, round(f.change, 2)) for f in drift.features]
    assert rows == [("SAT", 1, 3, -0.6), ("GPA", 2, 2, -0.3), ("rank", 3, 1, 0.65)]
    assert (drift.sample_rows, drift.window_rows, drift.seed) == (2000, 100_000, 0)


def test_a_lower_threshold_tolerates_the_same_change() -> None:
    drift = compare_attributions(
        {"SAT": 0.70, "GPA": 0.50, "rank": 0.05},
        {"SAT": 0.10, "GPA": 0.20, "rank": 0.70},
        AttributionPolicy(min_ndcg=0.6),
        sample_rows=2000,
    )
    assert drift.drifted is False


@pytest.mark.parametrize(
    ("training", "rows", "reason"),
    [
        ({"a": 1.0}, 99, "99 rows explained; at least 100 are needed"),
        ({"a": 0.0}, 500, "the baseline gives no feature a positive importance"),
    ],
    ids=["too-few-rows", "flat-baseline"],
)
def test_no_verdict_without_enough_rows_or_a_baseline_ranking(
    training: dict[str, float], rows: int, reason: str
) -> None:
    drift = compare_attributions(training, {"a": 1.0}, sample_rows=rows)

    assert (drift.status, drift.drifted, drift.ndcg) == ("skipped", False, None)
    assert drift.reason is not None
    assert reason in drift.reason


def test_a_policy_that_could_never_judge_a_window_is_refused() -> None:
    with pytest.raises(ValueError, match=r"sample_rows \(50\) is below min_rows \(100\)"):
        AttributionPolicy(sample_rows=50)
    with pytest.raises(ValueError, match=r"approximate_rows \(100\) is below min_rows \(200\)"):
        AttributionPolicy(min_rows=200)
    assert AttributionPolicy(sample_rows=50, approximate_rows=50, min_rows=50).min_rows == 50
