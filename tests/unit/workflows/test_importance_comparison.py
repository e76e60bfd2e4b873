"""The importance comparison's figures and rank changes (pure functions)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import spearmanr

from flywheel.workflows.importance import compare_importance, ndcg_at, spearman

importances = st.dictionaries(
    st.text(alphabet="abcdefghij", min_size=1, max_size=3),
    st.floats(min_value=0.0, max_value=10.0, allow_nan=False),
    min_size=2,
    max_size=12,
)


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=3, max_size=30
    )  # small integers: many ties
)
def test_spearman_agrees_with_scipy_including_ties(pairs: list[tuple[int, int]]) -> None:
    x, y = [float(a) for a, _ in pairs], [float(b) for _, b in pairs]
    ours = spearman(x, y)
    if len(set(x)) == 1 or len(set(y)) == 1:
        assert ours is None
        return
    assert ours == pytest.approx(float(spearmanr(x, y).statistic), abs=1e-12)


@given(importances)
def test_a_model_compared_with_itself_agrees_completely(importance: dict[str, float]) -> None:
    comparison = compare_importance(importance, importance, champion_version=1)

    assert all(f.change == 0 and f.movement == "=" for f in comparison.features)
    assert comparison.common_features == len(importance)
    if comparison.ndcg is not None:
        assert comparison.ndcg == pytest.approx(1.0)
    if len(set(importance.values())) > 1:
        assert comparison.rank_correlation == pytest.approx(1.0)


@given(importances, importances)
def test_figures_stay_in_their_ranges(
    candidate: dict[str, float], champion: dict[str, float]
) -> None:
    comparison = compare_importance(candidate, champion, champion_version=3)

    if comparison.rank_correlation is not None:
        assert -1.0 <= comparison.rank_correlation <= 1.0
    if comparison.ndcg is not None:
        assert 0.0 <= comparison.ndcg <= 1.0
    # every feature of either top is listed once, with its rank on each side
    listed = [f.feature for f in comparison.features]
    assert len(listed) == len(set(listed))
    top = comparison.top
    ranked = sorted(candidate, key=lambda n: -candidate[n])[:top]
    assert listed[: len(ranked)] == ranked
    assert set(sorted(champion, key=lambda n: -champion[n])[:top]) <= set(listed)


def test_reversed_ranks_correlate_negatively_and_moves_are_named() -> None:
    candidate = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
    champion = {"d": 0.4, "c": 0.3, "b": 0.2, "a": 0.1}

    comparison = compare_importance(candidate, champion, champion_version=2, top=2)

    assert comparison.rank_correlation == pytest.approx(-1.0)
    assert [(f.feature, f.candidate_rank, f.champion_rank, f.movement) for f in
            comparison.features] == [("a", 1, 4, "↑3"), ("b", 2, 3, "↑1"), ("d", 4, 1, "↓3"),
                                     ("c", 3, 2, "↓1")]  # fmt: skip
    assert comparison.summary() == (
        "vs champion v2: rank correlation -1.00, NDCG@2 0.38; top 2: a (↑3), b (↑1); "
        "left the top 2: d (now 4), c (now 3)"
    )


def test_features_one_model_lacks_are_new_or_gone() -> None:
    comparison = compare_importance({"a": 2.0, "new": 1.0}, {"a": 1.0, "old": 3.0},
                                    champion_version=5)  # fmt: skip

    moves = {f.feature: f.movement for f in comparison.features}
    assert moves == {"a": "↑1", "new": "new", "old": "gone"}
    assert comparison.common_features == 1
    assert comparison.rank_correlation is None  # one shared feature has no correlation
    assert "left the top 2: old (gone)" in comparison.summary()


def test_ndcg_weighs_the_top_of_the_list_more() -> None:
    relevance = {"a": 3.0, "b": 2.0, "c": 1.0}
    ideal = 3 + 2 / math.log2(3) + 1 / 2

    assert ndcg_at(["a", "b", "c"], relevance, 3) == pytest.approx(1.0)
    assert ndcg_at(["c", "b", "a"], relevance, 3) == pytest.approx(
        (1 + 2 / math.log2(3) + 3 / 2) / ideal
    )
    # swapping the first two costs more than swapping the last two
    assert ndcg_at(["b", "a", "c"], relevance, 3) < ndcg_at(["a", "c", "b"], relevance, 3)
    assert ndcg_at(["a"], {}, 1) is None


def test_a_model_without_importance_gets_a_note_not_figures() -> None:
    comparison = compare_importance({"a": 1.0}, {}, champion_version=9)

    assert comparison.features == ()
    assert comparison.rank_correlation is None
    assert (
        comparison.summary() == "vs champion v9: the champion has no global importance to compare"
    )
