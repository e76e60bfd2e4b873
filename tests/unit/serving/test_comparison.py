"""Shadow and A/B comparisons computed from captured rows."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from flywheel.drift.profile import NumericProfile
from flywheel.errors import InvalidInputError
from flywheel.serving.comparison import (
    compare_ab,
    compare_shadow,
    compare_variants,
    prediction_shift,
    prediction_shift_from_reference,
)


def row(request: str, variant: str, version: int, prediction, *, index: int = 0, **extra):
    return {
        "request_id": request,
        "row": index,
        "variant": variant,
        "version": version,
        "latency_ms": extra.pop("latency_ms", 1.0),
        "prediction": prediction,
        "probabilities": extra.pop("probabilities", None),
        **extra,
    }


def test_shadow_agreement_is_the_share_of_paired_rows_with_the_same_label():
    rows = []
    for i in range(10):
        served = "yes" if i < 7 else "no"
        rows.append(row(f"r{i}", "champion", 1, served, latency_ms=2.0))
        rows.append(row(f"r{i}", "shadow", 2, "yes", latency_ms=0.5))
    rows.append(row("only-served", "champion", 1, "yes"))
    rows.append(row("only-shadow", "shadow", 2, "no"))
    report = compare_shadow(rows)
    assert (report.paired_rows, report.agreement_rate) == (10, 0.7)
    assert (report.unpaired_served_rows, report.unpaired_shadow_rows) == (1, 1)
    assert (report.served_versions, report.shadow_versions) == ((1,), (2,))
    assert (report.served_latency_p50_ms, report.shadow_latency_p50_ms) == (2.0, 0.5)


def test_rows_of_one_batch_pair_by_row_index_and_count_latency_once_per_request():
    rows = [
        row("batch", "champion", 1, "a", index=0, latency_ms=9.0),
        row("batch", "champion", 1, "b", index=1, latency_ms=9.0),
        row("batch", "shadow", 2, "b", index=0, latency_ms=3.0),
        row("batch", "shadow", 2, "b", index=1, latency_ms=3.0),
        row("single", "champion", 1, "a", latency_ms=1.0),
    ]
    report = compare_shadow(rows)
    assert (report.paired_rows, report.agreement_rate) == (2, 0.5)
    (champion, _shadow) = compare_variants("m", rows).variants
    assert (champion.requests, champion.rows) == (2, 3)
    assert champion.latency_p50_ms == 5.0  # median of the requests' 9.0 and 1.0


def test_probability_differences_are_the_largest_class_gap_per_row():
    rows = [
        row("r", "champion", 1, "yes", probabilities={"no": 0.1, "yes": 0.9}),
        row("r", "shadow", 2, "yes", probabilities={"no": 0.35, "yes": 0.65}),
    ]
    report = compare_shadow(rows)
    assert report.agreement_rate == 1.0
    assert report.max_probability_diff == pytest.approx(0.25)


def test_regression_agreement_uses_a_relative_tolerance():
    rows = [
        row("r1", "champion", 1, 100.0),
        row("r1", "shadow", 2, 100.00001),
        row("r2", "champion", 1, 5.0),
        row("r2", "shadow", 2, 6.0),
    ]
    report = compare_shadow(rows, tolerance=1e-6)
    assert report.agreement_rate == 0.5
    assert report.max_value_diff == pytest.approx(1.0)
    assert report.tolerance == 1e-6


def test_a_split_far_from_the_configured_weight_is_a_sample_ratio_mismatch():
    rows = [row(f"r{i}", "a" if i < 700 else "b", 1 if i < 700 else 2, "x") for i in range(1000)]
    report = compare_ab(rows, expected_share_b=0.5)
    assert report.sample_ratio_mismatch
    assert report.observed_share_b == 0.3
    assert "sample ratio mismatch" in report.verdict
    fair = [row(f"r{i}", "ab"[i % 2], 1 + i % 2, "x") for i in range(1000)]
    assert not compare_ab(fair, expected_share_b=0.5).sample_ratio_mismatch


def test_arm_accuracies_are_compared_with_a_two_proportion_z_test():
    rng = random.Random(7)
    rows, labels = [], {}
    for i in range(800):
        arm = "ab"[i % 2]
        hit = rng.random() < (0.70 if arm == "a" else 0.80)
        rows.append(row(f"r{i}", arm, 1 if arm == "a" else 2, "yes"))
        labels[(f"r{i}", 0)] = "yes" if hit else "no"
    report = compare_ab(rows, labels, expected_share_b=0.5)
    diff = report.difference
    assert diff is not None
    assert diff.metric == "accuracy"
    a_hits = sum(labels[(f"r{i}", 0)] == "yes" for i in range(0, 800, 2))
    b_hits = sum(labels[(f"r{i}", 0)] == "yes" for i in range(1, 800, 2))
    assert (diff.a, diff.b) == (a_hits / 400, b_hits / 400)
    # the same test by hand with scipy's normal distribution
    pooled = (a_hits + b_hits) / 800
    z = (b_hits - a_hits) / 400 / (pooled * (1 - pooled) * (2 / 400)) ** 0.5
    assert diff.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), abs=1e-6)
    assert diff.significant
    assert report.verdict.startswith("arm b is better on accuracy")
    assert report.arms["b"].metrics["accuracy"] == diff.b


def test_regression_arms_compare_mean_absolute_error_and_lower_wins():
    rng = random.Random(3)
    rows, labels = [], {}
    for i in range(600):
        arm = "ab"[i % 2]
        truth = rng.gauss(0, 1)
        noise = rng.gauss(0, 1.0 if arm == "a" else 0.5)
        rows.append(row(f"r{i}", arm, 1 if arm == "a" else 2, truth + noise))
        labels[(f"r{i}", 0)] = truth
    report = compare_ab(rows, labels)
    assert report.difference is not None
    assert report.difference.metric == "mae"
    assert report.difference.b < report.difference.a
    assert report.verdict.startswith("arm b is better on mae")


def test_without_labels_the_arms_are_summarized_but_not_judged():
    rows = [row(f"r{i}", "ab"[i % 2], 1 + i % 2, "x") for i in range(20)]
    report = compare_ab(rows)
    assert report.difference is None
    assert report.arms["a"].requests == report.arms["b"].requests == 10
    assert "no labelled rows" in report.verdict


def test_no_arm_rows_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="no captured rows of A/B arms"):
        compare_ab([row("r", "champion", 1, "x")])


@pytest.mark.parametrize("canary_rows", [50, 300])
def test_prediction_shift_tells_sampling_noise_from_a_moved_distribution(canary_rows: int) -> None:
    """PSI alone over deciles flags most small healthy samples; its p-value does not."""
    rng = np.random.default_rng(canary_rows)
    holdout = NumericProfile.build(rng.uniform(0, 1, 114), bins=10, cells=0)

    def rows(values: np.ndarray) -> list[dict[str, float]]:
        return [{"prediction": float(v)} for v in values]

    same = [
        (
            prediction_shift(rows(rng.uniform(0, 1, 400)), rows(rng.uniform(0, 1, canary_rows))),
            prediction_shift_from_reference(holdout, rows(rng.uniform(0, 1, canary_rows))),
        )
        for _ in range(100)
    ]
    moved = prediction_shift_from_reference(
        holdout, rows(np.minimum(rng.uniform(0, 1, canary_rows) + 0.3, 1.0))
    )

    for side in (0, 1):
        noisy = [pair[side] for pair in same]
        flagged = sum(s.psi > 0.2 and s.p_value < 0.01 for s in noisy)
        assert flagged <= 3
        if canary_rows == 50:
            assert sum(s.psi > 0.2 for s in noisy) >= 30  # PSI alone would roll back many
    assert moved.psi > 0.2
    assert moved.p_value < 0.01
