"""Group fairness on a window: the three gaps, the policy, and regressions for the gate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.drift.bias import BiasPolicy, bias_report, fairness_regressions
from flywheel.drift.profile import CategoryCodes
from flywheel.errors import InvalidInputError


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), st.sampled_from([0, 1, None])),
        min_size=1,
        max_size=300,
    )
)
def test_gaps_follow_their_definitions(rows: list[tuple[str, bool, int | None]]) -> None:
    groups = [g for g, _, _ in rows]
    predictions = [int(p) for _, p, _ in rows]
    labels = [y for _, _, y in rows]

    result = bias_report(groups, predictions, labels, policy=BiasPolicy(min_group_rows=1))

    rates, tprs = {}, {}
    for name in sorted(set(groups)):
        chosen = [p for g, p, _ in rows if g == name]
        rates[name] = sum(chosen) / len(chosen)
        positives = [p for g, p, y in rows if g == name and y == 1]
        if positives:
            tprs[name] = sum(positives) / len(positives)
    by_group = {m.group: m for m in result.groups}
    assert {k: by_group[k].selection_rate for k in rates} == pytest.approx(rates)
    assert {k: by_group[k].true_positive_rate for k in tprs} == pytest.approx(tprs)
    if len(rates) >= 2:
        assert result.demographic_parity_difference == pytest.approx(
            max(rates.values()) - min(rates.values())
        )
        top = max(rates.values())
        assert result.disparate_impact_ratio == pytest.approx(
            min(rates.values()) / top if top else 1.0
        )
    if len(tprs) >= 2:
        assert result.equal_opportunity_difference == pytest.approx(
            max(tprs.values()) - min(tprs.values())
        )
    assert result.labelled == sum(y is not None for y in labels)


def test_a_biased_model_fails_the_four_fifths_rule_and_a_fair_one_passes() -> None:
    rng = np.random.default_rng(50)
    groups = rng.choice(["f", "m"], size=4000)
    labels = rng.integers(0, 2, size=4000)
    fair = np.where(rng.uniform(size=4000) < 0.9, labels, 1 - labels)
    biased = np.where(groups == "f", fair * (rng.uniform(size=4000) < 0.6), fair)

    ok = bias_report(groups, fair, labels, attribute="sex")
    bad = bias_report(groups, biased, labels, attribute="sex")

    assert ok.passed
    assert ok.violations == ()
    assert not bad.passed
    assert bad.disparate_impact_ratio is not None
    assert bad.disparate_impact_ratio < 0.8
    assert any("equal opportunity" in v for v in bad.violations)
    assert fairness_regressions(bad, ok)


def test_small_groups_are_reported_but_not_gated() -> None:
    groups = ["a"] * 100 + ["b"] * 100 + ["tiny"] * 3
    predictions = [1] * 50 + [0] * 50 + [1] * 50 + [0] * 50 + [0, 0, 0]

    result = bias_report(groups, predictions)

    tiny = next(g for g in result.groups if g.group == "tiny")
    assert tiny.selection_rate == 0.0
    assert not tiny.included
    assert result.demographic_parity_difference == 0.0
    assert result.passed


def test_reference_group_ratios_and_coded_groups() -> None:
    codes = CategoryCodes(np.array([0] * 50 + [1] * 50 + [-1] * 40), ["priv", "unpriv"])
    predictions = [1] * 40 + [0] * 10 + [1] * 20 + [0] * 30 + [1] * 40

    result = bias_report(codes, predictions, policy=BiasPolicy(reference_group="priv"))

    assert {g.group for g in result.groups} == {"priv", "unpriv", "(missing)"}
    assert result.disparate_impact_ratio == pytest.approx(0.4 / 0.8)
    with pytest.raises(InvalidInputError, match="reference group"):
        bias_report(["x"] * 40, [1] * 40, policy=BiasPolicy(reference_group="y"))
    with pytest.raises(InvalidInputError, match="length"):
        bias_report(["x"] * 3, [1] * 2)


def test_string_labels_compare_as_text() -> None:
    result = bias_report(
        ["a"] * 40 + ["b"] * 40,
        ["approve"] * 30 + ["deny"] * 10 + ["approve"] * 10 + ["deny"] * 30,
        favorable="approve",
    )

    assert [g.selection_rate for g in result.groups] == [0.75, 0.25]
    assert result.favorable == "approve"


def _two_groups(rng: np.random.Generator, rates: tuple[float, float], n: int) -> tuple:
    groups = np.array(["a"] * n + ["b"] * n)
    predictions = np.r_[rng.uniform(size=n) < rates[0], rng.uniform(size=n) < rates[1]]
    return groups, predictions.astype(int)


def _rejected(rates: tuple[float, float], n: int, judge: str, windows: int = 200) -> float:
    rng = np.random.default_rng(11)
    policy = BiasPolicy(judge=judge)  # type: ignore[arg-type]
    outcomes = [
        bias_report(*_two_groups(rng, rates, n), policy=policy).passed for _ in range(windows)
    ]
    return 1 - sum(outcomes) / windows


def test_point_estimates_reject_fair_models_on_small_groups_and_say_it_is_noise() -> None:
    # A fair model (same selection rate in both groups), 57 rows a group: the standard
    # error of the parity difference is ~0.09, so the 0.1 limit sits inside the noise.
    assert _rejected((0.5, 0.5), 57, "estimate") > 0.2
    assert _rejected((0.5, 0.5), 57, "interval") < 0.03

    rng = np.random.default_rng(4)
    while (result := bias_report(*_two_groups(rng, (0.5, 0.5), 57))).passed:
        pass  # the first fair window that point estimates reject
    assert all("within sampling noise" in text for text in result.violations)
    low, high = result.intervals["demographic_parity_difference"]
    assert low < BiasPolicy().max_demographic_parity_difference < high


def test_judging_on_intervals_still_rejects_a_clear_bias() -> None:
    assert _rejected((0.3, 0.7), 57, "interval") > 0.9
    rng = np.random.default_rng(5)
    big = bias_report(*_two_groups(rng, (0.4, 0.6), 2000), policy=BiasPolicy(judge="interval"))
    assert not big.passed
    assert not any("noise" in text for text in big.violations)


def test_every_measured_gap_has_an_interval_around_it() -> None:
    rng = np.random.default_rng(6)
    groups, predictions = _two_groups(rng, (0.45, 0.55), 400)
    labels = rng.integers(0, 2, size=groups.size)

    result = bias_report(groups, predictions, labels)

    assert set(result.intervals) == {
        "demographic_parity_difference",
        "disparate_impact_ratio",
        "equal_opportunity_difference",
    }
    for field, (low, high) in result.intervals.items():
        value = getattr(result, field)
        assert low <= high
        assert low - 0.02 <= value <= high + 0.02  # the bootstrap of max - min is biased up
    assert bias_report(groups[:300], predictions[:300]).intervals == {}  # one group: no gaps
