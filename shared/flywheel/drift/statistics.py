"""Drift statistics on shared bins, and the policy that turns them into verdicts (numpy only).

Every statistic here compares a reference histogram with a current one counted in
the *same* bins (see :meth:`flywheel.drift.profile.ReferenceProfile.observe`), so
scoring never needs the raw reference data and costs microseconds per feature.
:class:`DriftPolicy` picks the statistic per feature and turns it into a verdict; by
default "large sample" is judged on the *smaller* sample (ADR 40).

Notes
-----
============================  =====================================================
Statistic                     Computed from
============================  =====================================================
PSI                           bin shares, empty bins floored at ``epsilon``
Kolmogorov-Smirnov ``D``      largest CDF gap at the bin boundaries; ``p`` from the
                              asymptotic Kolmogorov distribution (Stephens'
                              small-sample correction), effective size ``nm/(n+m)``
Wasserstein-1                 ``∫|F - G|`` with CDFs linear inside each bin
Jensen-Shannon distance       bin shares, natural log (as scipy and Evidently)
χ² goodness of fit            current counts against reference shares
                              (Evidently's test); χ² homogeneity (both samples
                              random, as ``scipy.stats.chi2_contingency``) too
two-proportion ``z``          binary features (Evidently's test)
============================  =====================================================

Binning error: ``D`` and ``W1`` are exact for values that sit on bin boundaries
(discrete data) and otherwise off by at most the mass of one bin (``D``) or
one bin width times the CDF gap (``W1``); on a profile's fine grid (~4,000 cells)
both stay well under 1e-3 of scipy's exact values (the property tests bound it).

Defaults of :class:`DriftPolicy` next to Evidently 0.7's ``DataDriftPreset``
(``DriftPolicy.evidently()`` reproduces Evidently's choice):

=============================  ==================  ==================================
Setting                        Flywheel            Evidently 0.7
=============================  ==================  ==================================
numeric, small sample          KS, drift if p<0.05  KS, drift if p≤0.05
numeric, large sample          Wasserstein/std≥0.1  same
numeric, ≤ 5 levels, small     χ² (>2) or z, p<0.05 same
numeric, ≤ 5 levels, large     Jensen-Shannon≥0.1   same
categorical, small             χ² (>2) or z, p<0.05 same
categorical, large             Jensen-Shannon≥0.1   same
large sample means             > 1000 rows in the   > 1000 rows in the *reference*
                               *smaller* sample
                               (``sample_size_basis``)
PSI threshold (if chosen)      0.1                  0.1
dataset drift                  share ≥ 0.5          share ≥ 0.5
minimum rows to score          30                   none
=============================  ==================  ==================================
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from pydantic import Field

from flywheel.models import Frozen

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "BinStatistics",
    "ChiSquare",
    "DriftMethod",
    "DriftPolicy",
    "FeatureOverride",
    "SampleSizeBasis",
    "TestResult",
    "Verdict",
    "bin_statistics",
    "cdf_gap_area",
    "chi2_sf",
    "chi_square_goodness_of_fit",
    "chi_square_homogeneity",
    "dataset_verdict",
    "is_drift",
    "jensen_shannon_distance",
    "kolmogorov_sf",
    "ks_p_value",
    "ks_statistic",
    "ks_test",
    "normal_sf",
    "psi",
    "regularized_gamma_q",
    "select_method",
    "uniform_gap_area",
    "wasserstein_distance",
    "z_test",
]


class TestResult(NamedTuple):
    """A test statistic and its p-value."""

    statistic: float
    p_value: float


class ChiSquare(NamedTuple):
    """A χ² statistic, its p-value and degrees of freedom."""

    statistic: float
    p_value: float
    dof: int


class BinStatistics(NamedTuple):
    """The share-based statistics of one pair of histograms (see :func:`bin_statistics`)."""

    psi: float
    jensen_shannon: float
    chi_square: ChiSquare


def _counts(values: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    if np.any(array < 0) or not np.all(np.isfinite(array)):
        raise ValueError("counts must be finite and non-negative")
    return array


def _pair(reference: ArrayLike, current: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    ref, cur = _counts(reference), _counts(current)
    if ref.shape != cur.shape:
        raise ValueError("reference and current counts need the same bins")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("both histograms need at least one count")
    return ref, cur


# --- distances -------------------------------------------------------------------------


def psi(reference: ArrayLike, current: ArrayLike, *, epsilon: float = 1e-4) -> float:
    """Population stability index ``Σ (p - q) ln(p / q)`` over bin shares.

    Shares of zero are replaced by ``epsilon`` (Evidently uses ``1e-4`` too).

    Examples
    --------
    >>> round(psi([50, 50], [60, 40]), 4)
    0.0405
    """
    ref, cur = _pair(reference, current)
    p = np.maximum(ref / ref.sum(), epsilon)
    q = np.maximum(cur / cur.sum(), epsilon)
    return float(np.sum((p - q) * np.log(p / q)))


def jensen_shannon_distance(reference: ArrayLike, current: ArrayLike) -> float:
    """Jensen-Shannon distance (natural log), as ``scipy.spatial.distance.jensenshannon``.

    Between 0 (same shares) and ``sqrt(ln 2) ≈ 0.8326`` (disjoint support).

    Examples
    --------
    >>> round(jensen_shannon_distance([1, 0], [0, 1]), 4)
    0.8326
    """
    ref, cur = _pair(reference, current)
    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0)
    divergence = max(float(np.sum(kl_p) + np.sum(kl_q)) / 2, 0.0)
    return math.sqrt(divergence)


def _cdf_gap(ref: NDArray[np.float64], cur: NDArray[np.float64]) -> NDArray[np.float64]:
    """``F - G`` at every bin boundary, from ``0`` (left of everything) to the end."""
    gap = np.empty(ref.size + 1, dtype=np.float64)
    gap[0] = 0.0
    np.cumsum(ref / ref.sum() - cur / cur.sum(), out=gap[1:])
    gap[-1] = 0.0  # both CDFs reach 1; drop the rounding residue
    return gap


def ks_statistic(reference: ArrayLike, current: ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov ``D``: the largest gap between the binned CDFs.

    Exact when no value lies strictly inside a bin that both samples share;
    otherwise low by at most one bin's mass.

    Examples
    --------
    >>> ks_statistic([5, 5, 0], [0, 5, 5])
    0.5
    """
    ref, cur = _pair(reference, current)
    return float(np.max(np.abs(_cdf_gap(ref, cur))))


def wasserstein_distance(positions: ArrayLike, reference: ArrayLike, current: ArrayLike) -> float:
    """First Wasserstein distance ``∫|F(x) - G(x)| dx`` between two binned samples.

    ``positions`` holds the ``len(counts) + 1`` finite bin boundaries; the CDFs
    are taken as linear inside each bin (values spread evenly over their bin).

    Examples
    --------
    >>> wasserstein_distance([0.0, 1.0, 2.0], [1, 0], [0, 1])
    1.0
    """
    ref, cur = _pair(reference, current)
    x = np.asarray(positions, dtype=np.float64).ravel()
    if x.size != ref.size + 1:
        raise ValueError("positions must have len(counts) + 1 values")
    return cdf_gap_area(x, _cdf_gap(ref, cur))


def cdf_gap_area(positions: ArrayLike, gap: ArrayLike) -> float:
    """``∫|h(x)| dx`` for ``h`` linear between ``positions`` with values ``gap`` there.

    The building block of :func:`wasserstein_distance` (``h = F - G``); where
    ``h`` changes sign inside a segment the two triangles are integrated apart.

    Examples
    --------
    >>> cdf_gap_area([0.0, 2.0], [1.0, -1.0])
    1.0
    """
    x = np.asarray(positions, dtype=np.float64).ravel()
    h = np.asarray(gap, dtype=np.float64).ravel()
    if x.size != h.size or not np.all(np.isfinite(x)) or np.any(np.diff(x) < 0):
        raise ValueError("positions must be finite, non-decreasing and match gap in length")
    width = np.diff(x)
    a, b = h[:-1], h[1:]
    abs_a, abs_b = np.abs(a), np.abs(b)
    total = abs_a + abs_b
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(total > 0, (a * a + b * b) / (2 * total), 0.0)
    area = width * np.where(a * b >= 0, total / 2, crossing)
    return float(np.sum(area))


def bin_statistics(
    reference: ArrayLike, current: ArrayLike, *, epsilon: float = 1e-4
) -> BinStatistics:
    """PSI, Jensen-Shannon distance and χ² goodness of fit in one pass over the shares.

    The same values as :func:`psi`, :func:`jensen_shannon_distance` and
    :func:`chi_square_goodness_of_fit`, for a fraction of the calls.

    Examples
    --------
    >>> stats = bin_statistics([50, 50], [60, 40])
    >>> round(stats.psi, 4), stats.chi_square.statistic
    (0.0405, 4.0)
    """
    ref, cur = _pair(reference, current)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _bin_statistics(ref, cur, epsilon)


def _bin_statistics(
    ref: NDArray[np.float64], cur: NDArray[np.float64], epsilon: float
) -> BinStatistics:
    """:func:`bin_statistics` without input checks (non-negative counts, both non-empty).

    Both histograms go through each numpy call together (a 2-row array): scoring
    calls this once per feature per window, where per-call overhead dominates.
    """
    n_ref, n_cur = float(ref.sum()), float(cur.sum())
    shares = np.empty((2, ref.size))
    p, q = shares
    np.divide(ref, n_ref, out=p)
    np.divide(cur, n_cur, out=q)
    floored = np.maximum(shares, epsilon)
    population = float(np.dot(floored[0] - floored[1], np.log(floored[0] / floored[1])))
    # Jensen-Shannon: Σ p ln(p/m) + Σ q ln(q/m), with 0 ln 0 = 0.  Where a share is 0
    # its ratio to m is 0 (or 0/0 = NaN when both are): fmax lifts both to the
    # smallest normal float, whose finite log times the zero share adds nothing.
    # (Callers silence numpy's divide/invalid warnings: bin_statistics, the scorer.)
    ratio = shares / ((p + q) * 0.5)
    np.fmax(ratio, _TINY, out=ratio)
    js = math.sqrt(max(float(np.vdot(shares, np.log(ratio))) / 2, 0.0))
    seen = ref > 0
    levels = int(np.count_nonzero(seen))
    if float(np.dot(cur, seen)) < n_cur:  # counts where the reference has none
        dof = int(np.count_nonzero(seen | (cur > 0))) - 1
        chi = ChiSquare(math.inf, 0.0, dof) if dof >= 1 else ChiSquare(0.0, 1.0, 0)
    elif levels < 2:
        chi = ChiSquare(0.0, 1.0, 0)
    else:
        if levels < ref.size:  # bins empty in both samples are left out
            p, cur = p[seen], cur[seen]
        expected = p * n_cur
        residual = cur - expected
        statistic = float(np.dot(residual, residual / expected))
        chi = ChiSquare(statistic, chi2_sf(statistic, levels - 1), levels - 1)
    return BinStatistics(population, js, chi)


_TINY = float(np.finfo(np.float64).tiny)


def uniform_gap_area(
    gap: ArrayLike, magnitude: ArrayLike | None = None, width: float = 1.0
) -> float:
    """:func:`cdf_gap_area` for equally spaced positions ``width`` apart, in a few passes.

    The trapezoid rule over ``|gap|``, less ``|a||b| / (|a| + |b|)`` for each
    segment where the gap changes sign (the exact area of two triangles).
    ``magnitude`` may pass ``abs(gap)`` when the caller has it already.

    Examples
    --------
    >>> uniform_gap_area([1.0, -1.0], width=2.0)
    1.0
    """
    h = np.asarray(gap, dtype=np.float64).ravel()
    if h.size < 2:
        return 0.0
    size = np.abs(h) if magnitude is None else np.asarray(magnitude, dtype=np.float64).ravel()
    trapezoid = float(np.sum(size)) - (float(size[0]) + float(size[-1])) / 2
    negative = h < 0
    crossing = np.flatnonzero(negative[:-1] != negative[1:])
    if crossing.size:
        # One end of a crossing segment is negative, so |a| + |b| > 0.
        a, b = size[crossing], size[crossing + 1]
        trapezoid -= float(np.dot(a, b / (a + b)))
    return width * trapezoid


# --- special functions -----------------------------------------------------------------


def kolmogorov_sf(x: float) -> float:
    """Survival function of the Kolmogorov distribution, ``P(K > x)``.

    ``2 Σ (-1)^(k-1) exp(-2 k² x²)`` for ``x ≥ 1``, the Jacobi theta form below;
    agrees with ``scipy.stats.kstwobign.sf`` to about 1e-15.

    Examples
    --------
    >>> round(kolmogorov_sf(1.3581), 4)
    0.05
    """
    if x <= 0.04:  # P(K <= 0.04) < exp(-770): 1 in float64
        return 1.0
    if x < 1.0:
        # P(K <= x) = sqrt(2π)/x Σ exp(-(2k-1)² π² / (8x²))
        w = -(math.pi**2) / (8 * x * x)
        cdf = sum(math.exp((2 * k - 1) ** 2 * w) for k in range(1, 8))
        return 1.0 - math.sqrt(2 * math.pi) / x * cdf
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term <= 1e-17 * total:  # also ends at once when exp underflows to 0
            break
    return min(max(2.0 * total, 0.0), 1.0)


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Asymptotic two-sided p-value of a two-sample KS ``D`` for sample sizes ``n, m``.

    ``P(K > (√e + 0.12 + 0.11/√e) D)`` with ``e = nm/(n+m)`` (Stephens 1970).

    Examples
    --------
    >>> round(ks_p_value(0.05, 1000, 1000), 2)
    0.16
    """
    if n <= 0 or m <= 0:
        return 1.0
    root = math.sqrt(n * m / (n + m))
    return kolmogorov_sf((root + 0.12 + 0.11 / root) * statistic)


def ks_test(reference: ArrayLike, current: ArrayLike) -> TestResult:
    """KS statistic and p-value of two histograms (sizes are their totals).

    Examples
    --------
    >>> result = ks_test([500, 500, 0], [0, 500, 500])
    >>> (result.statistic, result.p_value < 1e-100)
    (0.5, True)
    """
    d = ks_statistic(reference, current)
    n = round(float(np.sum(reference)))
    m = round(float(np.sum(current)))
    return TestResult(d, ks_p_value(d, n, m))


_BLOCK_SERIES_FROM = 16.0
"""From this ``a`` on (a χ² with 32+ degrees of freedom, such as 100 quantile bins),
the series needs dozens of terms and is summed in numpy blocks, not term by term."""
_SERIES_STEPS = np.arange(1.0, 129.0)


def _gamma_series(a: float, x: float) -> float:
    """``Σ_k x^k / (a (a+1) ... (a+k))`` for ``x < a + 1``, 128 terms per numpy call.

    The terms shrink at least like ``exp(-k² / (2(a + 1)))``, so the sum is complete
    (to 1e-16) within ``9 √(a + 1)`` terms: one block up to ``a`` of about 200.
    """
    term = total = 1.0 / a
    start = a
    for _ in range(800):  # 100,000 terms, the scalar loop's cap
        terms = term * np.cumprod(x / (start + _SERIES_STEPS))
        total += float(np.add.reduce(terms))
        term, start = float(terms[-1]), start + _SERIES_STEPS.size
        if term < total * 1e-16:
            break
    return total


def regularized_gamma_q(a: float, x: float) -> float:
    """Upper regularized incomplete gamma ``Q(a, x) = Γ(a, x) / Γ(a)``.

    Series for ``x < a + 1``, Lentz's continued fraction otherwise
    (Numerical Recipes, 3rd ed., §6.2).

    Examples
    --------
    >>> round(regularized_gamma_q(1.0, 2.0), 6)  # exp(-2)
    0.135335
    """
    if a <= 0:
        raise ValueError("a must be positive")
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1 and a > _BLOCK_SERIES_FROM:
        return max(0.0, 1.0 - _gamma_series(a, x) * math.exp(log_prefactor))
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(100_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_prefactor) * h)


def chi2_sf(x: float, dof: int) -> float:
    """``P(χ²_dof > x)``.

    Examples
    --------
    >>> round(chi2_sf(3.841459, 1), 4)
    0.05
    """
    if dof <= 0:
        return 1.0
    if math.isnan(x):
        return math.nan
    return regularized_gamma_q(dof / 2, x / 2)


def normal_sf(z: float) -> float:
    """``P(Z > z)`` for a standard normal ``Z``.

    Examples
    --------
    >>> round(normal_sf(1.959964), 4)
    0.025
    """
    return 0.5 * math.erfc(z / math.sqrt(2))


# --- tests on counts -------------------------------------------------------------------


def chi_square_goodness_of_fit(reference: ArrayLike, current: ArrayLike) -> ChiSquare:
    """Pearson χ² of the current counts against the reference shares (Evidently's test).

    Bins empty in both samples are left out; a bin the reference never saw but
    the current window has makes the statistic infinite (p = 0).  Matches
    ``scipy.stats.chisquare(current, reference_share * n_current)``.

    Examples
    --------
    >>> result = chi_square_goodness_of_fit([50, 50], [60, 40])
    >>> (round(result.statistic, 3), result.dof)
    (4.0, 1)
    """
    ref, cur = _pair(reference, current)
    keep = (ref > 0) | (cur > 0)
    ref, cur = ref[keep], cur[keep]
    dof = int(ref.size) - 1
    if dof < 1:
        return ChiSquare(0.0, 1.0, 0)
    expected = ref / ref.sum() * cur.sum()
    if np.any((expected == 0) & (cur > 0)):
        return ChiSquare(math.inf, 0.0, dof)
    statistic = float(np.sum((cur - expected) ** 2 / expected))
    return ChiSquare(statistic, chi2_sf(statistic, dof), dof)


def chi_square_homogeneity(reference: ArrayLike, current: ArrayLike) -> ChiSquare:
    """Pearson χ² test that both samples share one distribution (2 x k table).

    Both samples are treated as random, as ``scipy.stats.chi2_contingency`` with
    ``correction=False`` does; bins empty in both are left out.

    Examples
    --------
    >>> round(chi_square_homogeneity([50, 50], [60, 40]).statistic, 4)
    2.0202
    """
    ref, cur = _pair(reference, current)
    keep = (ref > 0) | (cur > 0)
    table = np.vstack([ref[keep], cur[keep]])
    dof = int(table.shape[1]) - 1
    if dof < 1:
        return ChiSquare(0.0, 1.0, 0)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return ChiSquare(statistic, chi2_sf(statistic, dof), dof)


def z_test(reference: ArrayLike, current: ArrayLike) -> TestResult:
    """Two-proportion z-test for a feature with two levels (Evidently's test).

    ``reference`` and ``current`` count the two levels in the same order.

    Examples
    --------
    >>> round(z_test([50, 50], [60, 40]).p_value, 4)
    0.1552
    """
    ref, cur = _pair(reference, current)
    keep = (ref > 0) | (cur > 0)
    ref, cur = ref[keep], cur[keep]
    if ref.size < 2:
        return TestResult(0.0, 1.0)
    if ref.size > 2:
        raise ValueError("the z-test needs a feature with at most two levels")
    n1, n2 = float(ref.sum()), float(cur.sum())
    p1, p2 = ref[1] / n1, cur[1] / n2
    pooled = (ref[1] + cur[1]) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return TestResult(0.0, 1.0)
    z = float((p1 - p2) / math.sqrt(variance))
    return TestResult(z, min(1.0, 2 * normal_sf(abs(z))))


# --- policy ----------------------------------------------------------------------------


class DriftMethod(StrEnum):
    """How one feature's drift is decided."""

    KS = "ks"
    CHI_SQUARE = "chi_square"
    Z = "z"
    WASSERSTEIN = "wasserstein"
    JENSEN_SHANNON = "jensen_shannon"
    PSI = "psi"

    @property
    def uses_p_value(self) -> bool:
        """``True`` for tests (drift when p < threshold), ``False`` for distances (≥)."""
        return self in (DriftMethod.KS, DriftMethod.CHI_SQUARE, DriftMethod.Z)


class SampleSizeBasis(StrEnum):
    """Which sample's size decides between p-values and distances."""

    SMALLER = "smaller"
    REFERENCE = "reference"
    CURRENT = "current"


class Verdict(StrEnum):
    """Outcome for one feature or for the whole window."""

    DRIFT = "drift"
    NO_DRIFT = "no_drift"
    INSUFFICIENT_DATA = "insufficient_data"
    DISABLED = "disabled"


class FeatureOverride(Frozen):
    """Per-feature exceptions to a :class:`DriftPolicy`.

    Examples
    --------
    >>> FeatureOverride(method=DriftMethod.PSI, threshold=0.25).threshold
    0.25
    """

    method: DriftMethod | None = None
    threshold: float | None = Field(default=None, gt=0)
    enabled: bool = True


class DriftPolicy(Frozen):
    """Thresholds and method choice for one model's drift checks (see the module table).

    Examples
    --------
    >>> policy = DriftPolicy(wasserstein=0.2, features={"age": FeatureOverride(enabled=False)})
    >>> policy.threshold(DriftMethod.WASSERSTEIN, "income"), policy.drift_share
    (0.2, 0.5)
    >>> DriftPolicy.evidently().sample_size_basis
    <SampleSizeBasis.REFERENCE: 'reference'>
    """

    ks_p_value: float = Field(default=0.05, gt=0, lt=1)
    chi_square_p_value: float = Field(default=0.05, gt=0, lt=1)
    z_p_value: float = Field(default=0.05, gt=0, lt=1)
    wasserstein: float = Field(default=0.1, gt=0)
    jensen_shannon: float = Field(default=0.1, gt=0, le=math.sqrt(math.log(2)))
    psi: float = Field(default=0.1, gt=0)
    large_sample_rows: int = Field(default=1000, ge=0)
    sample_size_basis: SampleSizeBasis = SampleSizeBasis.SMALLER
    max_discrete_levels: int = Field(default=5, ge=0)
    numeric_method: DriftMethod | None = None
    categorical_method: DriftMethod | None = None
    features: dict[str, FeatureOverride] = Field(default_factory=dict)
    drift_share: float = Field(default=0.5, gt=0, le=1)
    min_rows: int = Field(default=30, ge=1)
    psi_epsilon: float = Field(default=1e-4, gt=0, lt=1)
    #: A feature whose share of missing values moved by more than this (absolute, either
    #: way) has drifted, whatever its distribution test says: a pipeline that started
    #: sending nulls. ``None`` switches the check off.
    missing_rate_change: float | None = Field(default=0.1, gt=0, le=1)

    @classmethod
    def evidently(cls, **overrides: object) -> DriftPolicy:
        """The policy that makes the same choices as Evidently 0.7's ``DataDriftPreset``."""
        settings: dict[str, object] = {
            "sample_size_basis": SampleSizeBasis.REFERENCE,
            "min_rows": 1,
            "missing_rate_change": None,  # Evidently judges distributions only
        }
        settings.update(overrides)
        return cls.model_validate(settings)

    def threshold(self, method: DriftMethod, feature: str | None = None) -> float:
        """The threshold for ``method`` (a feature override wins)."""
        override = self.features.get(feature) if feature is not None else None
        if override is not None and override.threshold is not None:
            return override.threshold
        return {
            DriftMethod.KS: self.ks_p_value,
            DriftMethod.CHI_SQUARE: self.chi_square_p_value,
            DriftMethod.Z: self.z_p_value,
            DriftMethod.WASSERSTEIN: self.wasserstein,
            DriftMethod.JENSEN_SHANNON: self.jensen_shannon,
            DriftMethod.PSI: self.psi,
        }[method]

    def enabled(self, feature: str) -> bool:
        override = self.features.get(feature)
        return override is None or override.enabled


def select_method(
    policy: DriftPolicy,
    *,
    feature: str,
    numeric: bool,
    levels: int,
    reference_rows: int,
    current_rows: int,
) -> DriftMethod:
    """The method that decides ``feature``'s drift (overrides, then Evidently's rule).

    ``levels`` is the number of distinct values (or occupied fine cells) seen in
    either sample; numeric features with at most ``max_discrete_levels`` are
    treated like categorical ones.

    Examples
    --------
    >>> p = DriftPolicy()
    >>> select_method(p, feature="x", numeric=True, levels=900,
    ...               reference_rows=50_000, current_rows=400)
    <DriftMethod.KS: 'ks'>
    >>> select_method(DriftPolicy.evidently(), feature="x", numeric=True, levels=900,
    ...               reference_rows=50_000, current_rows=400)
    <DriftMethod.WASSERSTEIN: 'wasserstein'>
    """
    override = policy.features.get(feature)
    if override is not None and override.method is not None:
        return override.method
    chosen = policy.numeric_method if numeric else policy.categorical_method
    if chosen is not None:
        return chosen
    basis = {
        SampleSizeBasis.SMALLER: min(reference_rows, current_rows),
        SampleSizeBasis.REFERENCE: reference_rows,
        SampleSizeBasis.CURRENT: current_rows,
    }[policy.sample_size_basis]
    large = basis > policy.large_sample_rows
    if numeric and levels > policy.max_discrete_levels:
        return DriftMethod.WASSERSTEIN if large else DriftMethod.KS
    if large:
        return DriftMethod.JENSEN_SHANNON
    return DriftMethod.CHI_SQUARE if levels > 2 else DriftMethod.Z


def is_drift(method: DriftMethod, score: float, threshold: float) -> bool:
    """p-value methods drift when ``score < threshold``, distances when ``score ≥ threshold``.

    Examples
    --------
    >>> is_drift(DriftMethod.KS, 0.01, 0.05), is_drift(DriftMethod.PSI, 0.05, 0.1)
    (True, False)
    """
    if math.isnan(score):
        return False
    return score < threshold if method.uses_p_value else score >= threshold


def dataset_verdict(drifted: int, scored: int, drift_share: float) -> Verdict:
    """Dataset drift when at least ``drift_share`` of the scored features drifted.

    Examples
    --------
    >>> [dataset_verdict(*case, 0.5).value for case in ((5, 10), (4, 10), (0, 0))]
    ['drift', 'no_drift', 'insufficient_data']
    """
    if scored == 0:
        return Verdict.INSUFFICIENT_DATA
    return Verdict.DRIFT if drifted / scored >= drift_share else Verdict.NO_DRIFT
