"""Drift statistics agree with exact scipy; the policy picks methods the way Evidently does.

Stated tolerances (checked here on random data):

* PSI, Jensen-Shannon, chi-square (statistic and p-value), z-test, Kolmogorov and
  regularized-gamma functions on the same bins: 1e-9 relative (float rounding;
  Jensen-Shannon 1e-7 absolute near zero, where sqrt magnifies rounding).
* KS ``D`` and Wasserstein/std from profiles against ``ks_2samp`` and
  ``wasserstein_distance`` on the raw samples, 10k rows and more: 1e-3 absolute.
* KS p-value (asymptotic with Stephens' correction) against scipy's exact or
  asymptotic p-value for the same ``D``: 0.01 absolute at 1,000 rows and more.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats
from scipy.spatial import distance

from flywheel.drift.profile import build_profile
from flywheel.drift.scorer import score_window
from flywheel.drift.statistics import (
    DriftMethod,
    DriftPolicy,
    FeatureOverride,
    SampleSizeBasis,
    Verdict,
    chi2_sf,
    chi_square_goodness_of_fit,
    chi_square_homogeneity,
    dataset_verdict,
    is_drift,
    jensen_shannon_distance,
    kolmogorov_sf,
    ks_p_value,
    ks_statistic,
    psi,
    regularized_gamma_q,
    select_method,
    wasserstein_distance,
    z_test,
)

counts = st.lists(st.integers(min_value=0, max_value=5000), min_size=2, max_size=60)


def _paired(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    ref = np.array(draw(counts), dtype=float)
    cur = np.array(draw(st.lists(st.integers(0, 5000), min_size=ref.size, max_size=ref.size)))
    ref[0] += 1  # both histograms need a count
    cur = cur.astype(float)
    cur[-1] += 1
    return ref, cur


@st.composite
def histograms(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    return _paired(draw)


@settings(max_examples=200, deadline=None)
@given(pair=histograms())
def test_jensen_shannon_matches_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair

    # sqrt() turns float64 rounding of a near-zero divergence into ~1e-8 absolute.
    assert jensen_shannon_distance(ref, cur) == pytest.approx(
        distance.jensenshannon(ref / ref.sum(), cur / cur.sum()), rel=1e-9, abs=1e-7
    )


@settings(max_examples=200, deadline=None)
@given(pair=histograms())
def test_chi_square_goodness_of_fit_matches_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    keep = (ref > 0) | (cur > 0)
    ref, cur = ref[keep], cur[keep]

    ours = chi_square_goodness_of_fit(ref, cur)

    if ref.size < 2:
        assert ours.p_value == 1.0
        return
    if np.any((ref == 0) & (cur > 0)):  # an unseen category: scipy divides by zero
        assert (ours.statistic, ours.p_value) == (math.inf, 0.0)
        return
    expected = ref / ref.sum() * cur.sum()
    theirs = stats.chisquare(cur, expected)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-9, abs=1e-9)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-7, abs=1e-12)
    assert ours.dof == ref.size - 1


@settings(max_examples=200, deadline=None)
@given(pair=histograms())
def test_chi_square_homogeneity_matches_chi2_contingency(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    ref, cur = pair
    keep = (ref > 0) | (cur > 0)
    table = np.vstack([ref[keep], cur[keep]])

    ours = chi_square_homogeneity(ref, cur)

    if table.shape[1] < 2:
        assert ours.p_value == 1.0
        return
    statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(statistic, rel=1e-9, abs=1e-9)
    assert ours.p_value == pytest.approx(p_value, rel=1e-7, abs=1e-12)
    assert ours.dof == dof


@settings(max_examples=200, deadline=None)
@given(
    n1=st.integers(1, 100_000),
    n2=st.integers(1, 100_000),
    a=st.floats(0, 1),
    b=st.floats(0, 1),
)
def test_z_test_matches_the_normal_formula(n1: int, n2: int, a: float, b: float) -> None:
    x1, x2 = round(a * n1), round(b * n2)

    result = z_test([n1 - x1, x1], [n2 - x2, x2])

    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        assert result.p_value == 1.0
        return
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9, abs=1e-300)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(min_value=0.0, max_value=8.0))
def test_kolmogorov_sf_matches_kstwobign(x: float) -> None:
    assert kolmogorov_sf(x) == pytest.approx(stats.kstwobign.sf(x), rel=1e-9, abs=1e-15)


@settings(max_examples=300, deadline=None)
@given(a=st.floats(min_value=0.05, max_value=5000), x=st.floats(min_value=0, max_value=20_000))
def test_regularized_gamma_matches_scipy(a: float, x: float) -> None:
    expected = special.gammaincc(a, x)
    assert regularized_gamma_q(a, x) == pytest.approx(expected, rel=1e-8, abs=1e-300)


@settings(max_examples=200, deadline=None)
@given(x=st.floats(min_value=0, max_value=1e4), dof=st.integers(1, 5000))
def test_chi2_sf_matches_scipy(x: float, dof: int) -> None:
    assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-8, abs=1e-300)


@settings(max_examples=150, deadline=None)
@given(pair=histograms())
def test_psi_is_the_textbook_sum(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    p = np.maximum(ref / ref.sum(), 1e-4)
    q = np.maximum(cur / cur.sum(), 1e-4)

    assert psi(ref, cur) == pytest.approx(np.sum((p - q) * np.log(p / q)), rel=1e-12)
    assert psi(ref, ref) == 0.0


_FAMILIES = {
    "normal": lambda rng, n, loc, scale: rng.normal(loc, scale, n),
    "lognormal": lambda rng, n, loc, scale: loc + scale * rng.lognormal(0, 0.8, n),
    "exponential": lambda rng, n, loc, scale: loc + scale * rng.exponential(size=n),
    "student_t3": lambda rng, n, loc, scale: loc + scale * rng.standard_t(3, n),
    "uniform": lambda rng, n, loc, scale: loc + scale * rng.uniform(size=n),
    "poisson": lambda rng, n, loc, scale: np.round(4 * loc + scale * rng.poisson(3, n)),
    "bimodal": lambda rng, n, loc, scale: (
        loc
        + scale * np.where(rng.uniform(size=n) < 0.3, rng.normal(-3, 0.5, n), rng.normal(1, 1, n))
    ),
}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    family=st.sampled_from(sorted(_FAMILIES)),
    n=st.sampled_from([10_000, 30_000]),
    m=st.sampled_from([10_000, 50_000]),
    loc=st.floats(0.0, 0.5),
    scale=st.floats(0.7, 1.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_profile_distances_match_scipy_on_raw_samples(
    family: str, n: int, m: int, loc: float, scale: float, seed: int
) -> None:
    # Given raw samples of at least 10k rows and a reference profile of the first
    rng = np.random.default_rng(seed)
    reference = _FAMILIES[family](rng, n, 0.0, 1.0)
    current = _FAMILIES[family](rng, m, loc, scale)
    profile = build_profile(reference.reshape(-1, 1), ["x"])

    # When the window is scored from the profiles alone
    stats_ = score_window(profile, {"x": current}).feature("x").statistics

    # Then D and the normalised W1 are within 1e-3 of scipy's exact values
    exact = stats.ks_2samp(reference, current)
    assert stats_.ks_statistic == pytest.approx(exact.statistic, abs=1e-3)
    w1 = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert stats_.wasserstein == pytest.approx(w1, abs=1e-3)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    n=st.sampled_from([1_000, 3_000, 20_000]),
    m=st.sampled_from([1_000, 5_000, 50_000]),
    shift=st.floats(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_ks_p_value_tracks_scipy(n: int, m: int, shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.normal(shift / math.sqrt(n * m / (n + m)), size=m)

    exact = stats.ks_2samp(a, b)

    assert ks_p_value(exact.statistic, n, m) == pytest.approx(exact.pvalue, abs=0.01)


def test_binned_ks_and_wasserstein_on_hand_made_histograms() -> None:
    assert ks_statistic([2, 2, 0, 0], [0, 0, 2, 2]) == 1.0
    assert wasserstein_distance([0, 1, 2, 3, 4], [2, 2, 0, 0], [0, 0, 2, 2]) == 2.0
    # Equal shares: no distance, whatever the sizes.
    assert wasserstein_distance([0, 1, 2], [10, 30], [1, 3]) == 0.0
    assert ks_statistic([10, 30], [1, 3]) == 0.0


def test_counts_must_be_valid() -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon_distance([1, -2], [1, 2])
    with pytest.raises(ValueError, match="at least one count"):
        ks_statistic([0, 0], [1, 2])


def _method(policy: DriftPolicy, *, numeric: bool, levels: int, ref: int, cur: int) -> DriftMethod:
    return select_method(
        policy, feature="f", numeric=numeric, levels=levels, reference_rows=ref, current_rows=cur
    )


@pytest.mark.parametrize(
    ("numeric", "levels", "ref", "cur", "evidently_method", "flywheel_method"),
    [
        (True, 100, 800, 800, DriftMethod.KS, DriftMethod.KS),
        (True, 100, 50_000, 800, DriftMethod.WASSERSTEIN, DriftMethod.KS),
        (True, 100, 50_000, 5_000, DriftMethod.WASSERSTEIN, DriftMethod.WASSERSTEIN),
        (True, 4, 800, 800, DriftMethod.CHI_SQUARE, DriftMethod.CHI_SQUARE),
        (True, 2, 800, 800, DriftMethod.Z, DriftMethod.Z),
        (True, 5, 5_000, 5_000, DriftMethod.JENSEN_SHANNON, DriftMethod.JENSEN_SHANNON),
        (False, 12, 900, 90, DriftMethod.CHI_SQUARE, DriftMethod.CHI_SQUARE),
        (False, 2, 900, 90, DriftMethod.Z, DriftMethod.Z),
        (False, 12, 90_000, 90, DriftMethod.JENSEN_SHANNON, DriftMethod.CHI_SQUARE),
        (False, 12, 90_000, 9_000, DriftMethod.JENSEN_SHANNON, DriftMethod.JENSEN_SHANNON),
    ],
)
def test_method_choice_follows_evidently_with_a_sample_size_basis(
    numeric: bool,
    levels: int,
    ref: int,
    cur: int,
    evidently_method: DriftMethod,
    flywheel_method: DriftMethod,
) -> None:
    assert _method(DriftPolicy.evidently(), numeric=numeric, levels=levels, ref=ref, cur=cur) == (
        evidently_method
    )
    assert _method(DriftPolicy(), numeric=numeric, levels=levels, ref=ref, cur=cur) == (
        flywheel_method
    )


def test_overrides_win_over_the_automatic_choice() -> None:
    policy = DriftPolicy(
        numeric_method=DriftMethod.PSI,
        features={"f": FeatureOverride(method=DriftMethod.KS, threshold=0.01)},
        sample_size_basis=SampleSizeBasis.CURRENT,
    )

    assert _method(policy, numeric=True, levels=50, ref=10, cur=10**6) is DriftMethod.KS
    assert policy.threshold(DriftMethod.KS, "f") == 0.01
    assert policy.threshold(DriftMethod.KS, "g") == 0.05
    assert (
        select_method(
            policy, feature="g", numeric=True, levels=50, reference_rows=1, current_rows=1
        )
        is DriftMethod.PSI
    )


def test_verdict_directions_and_dataset_share() -> None:
    assert is_drift(DriftMethod.KS, 0.049, 0.05)
    assert not is_drift(DriftMethod.KS, 0.05, 0.05)
    assert is_drift(DriftMethod.WASSERSTEIN, 0.1, 0.1)
    assert not is_drift(DriftMethod.JENSEN_SHANNON, 0.0999, 0.1)
    assert not is_drift(DriftMethod.PSI, math.nan, 0.1)
    assert dataset_verdict(10, 20, 0.5) is Verdict.DRIFT
    assert dataset_verdict(9, 20, 0.5) is Verdict.NO_DRIFT


def test_policy_rejects_impossible_thresholds() -> None:
    with pytest.raises(ValueError, match="less than 1"):
        DriftPolicy(ks_p_value=1.5)
    with pytest.raises(ValueError, match="less than or equal"):
        DriftPolicy(jensen_shannon=0.9)  # above sqrt(ln 2), never reachable
