"""Score a window of production data against a model version's reference profile.

:func:`score_window` is the whole use case a scheduled handler needs: give it the
stored :class:`~flywheel.drift.profile.ReferenceProfile`, the window (a profile,
columns, a matrix, or Parquet via :func:`profile_from_parquet`) and the model's
:class:`~flywheel.drift.statistics.DriftPolicy`, and it returns a frozen,
JSON-serialisable :class:`DriftResult`.

Windows are profiles too (``reference.observe``), so shards of one window can be
profiled separately (one Lambda or Distributed Map item per Parquet object) and
combined with :func:`~flywheel.drift.profile.merge_all`: counts add exactly, so
scoring the merged profile gives the same verdicts as scoring the whole window.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np
from pydantic import ConfigDict, Field

from flywheel.drift.attribution import AttributionDrift
from flywheel.drift.profile import (
    CategoricalProfile,
    CategoryCodes,
    NumericProfile,
    ReferenceProfile,
    check_compatible,
)
from flywheel.drift.statistics import (
    DriftMethod,
    DriftPolicy,
    Verdict,
    _bin_statistics,
    dataset_verdict,
    is_drift,
    ks_p_value,
    ks_statistic,
    select_method,
    uniform_gap_area,
    wasserstein_distance,
    z_test,
)
from flywheel.errors import ConfigError, InvalidWindowError
from flywheel.models import Frozen

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

    from flywheel.drift._binning import Grid

__all__ = [
    "DriftResult",
    "FeatureDrift",
    "FeatureStatistics",
    "PredictionDrift",
    "observe_window",
    "profile_from_parquet",
    "score_window",
]

MAX_NEW_CATEGORIES = 20
_STD_FLOOR = 0.001  # Evidently's floor for the Wasserstein normaliser


class _DriftRecord(Frozen):
    """:class:`~flywheel.models.Frozen`, and ±inf/NaN statistics go to JSON as strings.

    A window can yield an infinite or undefined statistic; JSON has no such numbers.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings")


class FeatureStatistics(_DriftRecord):
    """Every statistic computed for one feature (``None`` where it does not apply).

    ``wasserstein`` is normalised by the reference standard deviation (floored at
    0.001, as Evidently does); ``psi``, ``jensen_shannon`` and the χ² test use the
    reference's quantile bins, or the distinct levels of a discrete feature.
    """

    psi: float | None = None
    ks_statistic: float | None = None
    ks_p_value: float | None = None
    wasserstein: float | None = None
    jensen_shannon: float | None = None
    chi_square: float | None = None
    chi_square_p_value: float | None = None
    chi_square_dof: int | None = None
    z_p_value: float | None = None


class FeatureDrift(_DriftRecord):
    """The drift verdict for one feature, with the evidence behind it.

    ``score`` is the value compared with ``threshold``: a p-value for ``ks``,
    ``chi_square`` and ``z`` (drift when below), a distance otherwise (drift when
    at or above).

    Examples
    --------
    >>> from flywheel.drift.profile import build_profile
    >>> ref = build_profile(np.arange(1000.0).reshape(-1, 1), ["x"])
    >>> f = score_window(ref, {"x": np.arange(500.0, 1500.0)}).feature("x")
    >>> f.method.value, f.drifted, f.threshold
    ('ks', True, 0.05)
    """

    feature: str
    kind: Literal["numeric", "categorical"]
    verdict: Verdict
    drifted: bool
    method: DriftMethod | None = None
    threshold: float | None = None
    score: float | None = None
    reference_rows: int = Field(ge=0)
    current_rows: int = Field(ge=0)
    reference_missing_rate: float = Field(ge=0, le=1)
    current_missing_rate: float = Field(ge=0, le=1)
    levels: int = Field(ge=0, description="distinct values or occupied cells, both samples")
    statistics: FeatureStatistics = FeatureStatistics()
    reference_mean: float | None = None
    reference_std: float | None = None
    current_mean: float | None = None
    current_std: float | None = None
    new_categories: tuple[str, ...] = ()
    #: The share of missing values moved by more than the policy's ``missing_rate_change``.
    missing_rate_drifted: bool = False


class PredictionDrift(_DriftRecord):
    """The model's scores in the window against its own holdout's (prediction drift).

    ``psi`` compares the window's scores with the reference profile's prediction
    deciles (:attr:`ReferenceProfile.predictions
    <flywheel.drift.profile.ReferenceProfile.predictions>`); ``drifted`` needs both
    ``psi > threshold`` and a χ² homogeneity ``p_value < alpha``, so a few dozen rows
    of noise do not count as a shift.
    """

    psi: float = Field(ge=0)
    p_value: float = Field(ge=0, le=1)
    threshold: float = Field(gt=0)
    alpha: float = Field(gt=0, lt=1)
    drifted: bool
    holdout_rows: int = Field(ge=0)
    window_rows: int = Field(ge=0)


class DriftResult(_DriftRecord):
    """Per-feature verdicts and the dataset verdict for one window.

    Examples
    --------
    >>> from flywheel.drift.profile import build_profile
    >>> rng = np.random.default_rng(0)
    >>> ref = build_profile(rng.normal(size=(5000, 2)), ["a", "b"])
    >>> window = np.column_stack([rng.normal(size=800), rng.normal(1.0, size=800)])
    >>> result = score_window(ref, window)
    >>> result.verdict, result.drifted, result.feature("b").method
    (<Verdict.DRIFT: 'drift'>, ('b',), <DriftMethod.KS: 'ks'>)
    >>> DriftResult.from_json(result.to_json()) == result
    True
    """

    schema_version: Literal[1] = 1
    verdict: Verdict
    drift_detected: bool
    drifted_features: int = Field(ge=0)
    scored_features: int = Field(ge=0)
    share_drifted: float = Field(ge=0, le=1)
    reference_rows: int = Field(ge=0)
    current_rows: int = Field(ge=0)
    policy: DriftPolicy
    features: tuple[FeatureDrift, ...]
    labels: dict[str, str] = Field(default_factory=dict)
    prediction_drift: PredictionDrift | None = None
    """Set by the drift monitor when the reference profile has holdout scores."""
    attribution_drift: AttributionDrift | None = None
    """Set by the drift monitor: the live importance ranking against training's, or why not."""

    @property
    def drifted(self) -> tuple[str, ...]:
        """Names of the drifted features, in feature order."""
        return tuple(f.feature for f in self.features if f.drifted)

    def feature(self, name: str) -> FeatureDrift:
        """The verdict for one feature."""
        for item in self.features:
            if item.feature == name:
                return item
        raise KeyError(name)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for dashboards and alarms (e.g. CloudWatch EMF).

        ``share_drifted``, ``drifted_features``, ``attribution_ndcg`` when measured, then
        per feature ``<name>.score`` and ``<name>.drifted`` (0/1) for every scored feature.
        """
        values: dict[str, float] = {
            "share_drifted": self.share_drifted,
            "drifted_features": float(self.drifted_features),
        }
        attribution = self.attribution_drift
        if attribution is not None and attribution.ndcg is not None:
            values["attribution_ndcg"] = attribution.ndcg
        for item in self.features:
            if item.score is not None and math.isfinite(item.score):
                values[f"{item.feature}.score"] = item.score
                values[f"{item.feature}.drifted"] = float(item.drifted)
        return values

    def to_json(self) -> str:
        """Strict JSON (an infinite χ² statistic is written as the string ``"Infinity"``)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> DriftResult:
        return cls.model_validate_json(text)


Window = Any
"""A window: a :class:`ReferenceProfile` observed in the reference's bins, a mapping
of column name to values, a pandas ``DataFrame``, a pyarrow ``Table``, or a 2-D array
with one column per feature."""


def score_window(
    reference: ReferenceProfile,
    current: Window,
    policy: DriftPolicy | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> DriftResult:
    """Compare a window with the reference profile, feature by feature.

    Parameters
    ----------
    reference
        The model version's reference profile.
    current
        The window: a profile observed in the reference's bins (possibly merged
        from shards), a mapping of column name to values (numeric arrays,
        :class:`~flywheel.drift.profile.CategoryCodes`, pandas categoricals or
        Arrow columns), a pandas ``DataFrame`` (category columns are read from
        their codes), a pyarrow ``Table``, or a 2-D array in feature order.
    policy
        Thresholds and method choice; :class:`DriftPolicy` defaults when omitted.
    labels
        Free-form strings stored with the result (model, version, window bounds).

    Raises
    ------
    ProfileMismatchError
        When a window profile has other features or bins than the reference.
    InvalidWindowError
        When columns are missing or of the wrong kind.
    ConfigError
        When the policy asks for a method a feature's kind cannot use.

    Examples
    --------
    >>> from flywheel.drift.profile import build_profile
    >>> rng = np.random.default_rng(1)
    >>> ref = build_profile(rng.normal(size=(20_000, 1)), ["x"])
    >>> big = {"x": rng.normal(0.01, size=200_000)}  # negligible shift, many rows
    >>> result = score_window(ref, big)
    >>> result.feature("x").method, result.drift_detected
    (<DriftMethod.WASSERSTEIN: 'wasserstein'>, False)
    """
    policy = policy or DriftPolicy()
    window = observe_window(reference, current)
    features: list[FeatureDrift] = []
    # Shares of zero meet logs and ratios in the statistics; each case is handled there.
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in reference.features:
            if name in reference.numeric:
                features.append(
                    _numeric(name, reference.numeric[name], window.numeric[name], policy)
                )
            else:
                features.append(
                    _categorical(
                        name, reference.categorical[name], window.categorical[name], policy
                    )
                )
    features = [_missing_rate_check(f, policy) for f in features]
    scored = [f for f in features if f.verdict in (Verdict.DRIFT, Verdict.NO_DRIFT)]
    drifted = sum(f.drifted for f in scored)
    verdict = dataset_verdict(drifted, len(scored), policy.drift_share)
    return DriftResult(
        verdict=verdict,
        drift_detected=verdict is Verdict.DRIFT,
        drifted_features=drifted,
        scored_features=len(scored),
        share_drifted=drifted / len(scored) if scored else 0.0,
        reference_rows=reference.rows,
        current_rows=window.rows,
        policy=policy,
        features=tuple(features),
        labels=dict(labels or {}),
    )


def observe_window(reference: ReferenceProfile, current: Window) -> ReferenceProfile:
    """The window as a profile in the reference's bins (what :func:`score_window` scores).

    Accepts everything :func:`score_window` does; keep the result to merge
    shards, store it next to the report, or draw charts with
    :func:`flywheel.monitoring.report.render_html`.

    Raises
    ------
    ProfileMismatchError
        When a window profile has other features or bins than the reference.
    InvalidWindowError
        When columns are missing or differ in length.

    Examples
    --------
    >>> from flywheel.drift.profile import build_profile
    >>> ref = build_profile(np.arange(100.0).reshape(-1, 1), ["x"])
    >>> observe_window(ref, {"x": np.array([3.0, 4.0])}).rows
    2
    """
    if isinstance(current, ReferenceProfile):
        check_compatible(reference, current)
        return current
    if hasattr(current, "column_names") and hasattr(current, "column"):  # pyarrow Table
        return reference.observe_columns(_arrow_columns(current, reference))
    if hasattr(current, "columns") and hasattr(current, "dtypes"):  # pandas DataFrame
        return reference.observe_columns(_frame_columns(current, reference))
    if isinstance(current, Mapping):
        return reference.observe_columns(current)
    return reference.observe(current)


def _frame_columns(frame: Any, reference: ReferenceProfile) -> dict[str, Any]:
    """DataFrame columns: numbers as float64 (``NA`` -> NaN), categoricals by their codes."""
    out: dict[str, Any] = {}
    for name in reference.features:
        if name not in frame.columns:
            continue  # observe_columns names the missing feature
        column = frame[name]
        if name in reference.numeric and getattr(column, "cat", None) is None:
            out[name] = column.to_numpy(dtype="float64", na_value=np.nan)
        else:
            out[name] = column
    return out


def _empty_columns(reference: ReferenceProfile) -> dict[str, Any]:
    return {
        name: (
            np.empty(0)
            if name in reference.numeric
            else CategoryCodes(np.empty(0, dtype=np.int64), ())
        )
        for name in reference.features
    }


def _missing_rate_check(feature: FeatureDrift, policy: DriftPolicy) -> FeatureDrift:
    """``feature`` drifted also when its missing share moved beyond the policy's limit."""
    limit = policy.missing_rate_change
    if limit is None or feature.verdict not in (Verdict.DRIFT, Verdict.NO_DRIFT):
        return feature
    if abs(feature.current_missing_rate - feature.reference_missing_rate) <= limit:
        return feature
    return feature.model_copy(
        update={"missing_rate_drifted": True, "drifted": True, "verdict": Verdict.DRIFT}
    )


# --- numeric ---------------------------------------------------------------------------


def _numeric(
    name: str, ref: NumericProfile, cur: NumericProfile, policy: DriftPolicy
) -> FeatureDrift:
    common: dict[str, Any] = {
        "feature": name,
        "kind": "numeric",
        "reference_rows": ref.count,
        "current_rows": cur.count,
        "reference_missing_rate": ref.missing_rate,
        "current_missing_rate": cur.missing_rate,
        "reference_mean": _finite_or_none(ref.mean),
        "reference_std": _finite_or_none(ref.std),
        "current_mean": _finite_or_none(cur.mean),
        "current_std": _finite_or_none(cur.std),
    }
    if not policy.enabled(name):
        return FeatureDrift(verdict=Verdict.DISABLED, drifted=False, levels=0, **common)
    if min(ref.count, cur.count) < policy.min_rows:
        return FeatureDrift(verdict=Verdict.INSUFFICIENT_DATA, drifted=False, levels=0, **common)

    ref_cells, cur_cells, d, w1 = _distances(ref, cur)
    both = ref_cells + cur_cells
    levels = int(np.count_nonzero(both))
    wasserstein = w1 / max(ref.std, _STD_FLOOR)

    discrete = levels <= policy.max_discrete_levels
    if discrete:
        occupied = both > 0
        ref_bins, cur_bins = ref_cells[occupied], cur_cells[occupied]
    else:
        ref_bins, cur_bins = ref.counts_array(), cur.counts_array()
    shares = _bin_statistics(ref_bins, cur_bins, policy.psi_epsilon)
    stats = FeatureStatistics(
        psi=shares.psi,
        ks_statistic=d,
        ks_p_value=ks_p_value(d, ref.count, cur.count),
        wasserstein=wasserstein,
        jensen_shannon=shares.jensen_shannon,
        chi_square=shares.chi_square.statistic,
        chi_square_p_value=shares.chi_square.p_value,
        chi_square_dof=shares.chi_square.dof,
        z_p_value=_z_p_value(ref_bins, cur_bins) if ref_bins.size <= 2 else None,
    )
    method = select_method(
        policy,
        feature=name,
        numeric=True,
        levels=levels,
        reference_rows=ref.count,
        current_rows=cur.count,
    )
    if method is DriftMethod.Z and stats.z_p_value is None:
        stats = stats.model_copy(update={"z_p_value": _z_p_value(ref_bins, cur_bins)})
    return _decide(common, method, stats, policy, levels)


def _distances(
    ref: NumericProfile, cur: NumericProfile
) -> tuple[NDArray[Any], NDArray[Any], float, float]:
    """Counts of the finest shared bins, KS ``D`` and Wasserstein-1 (not normalised).

    On a shared fine grid the CDF gap is taken at every cell boundary and the
    open tails are integrated exactly from their sums (exact whenever the gap
    keeps its sign beyond the grid).  Without one, the quantile bins are used and
    the open tails are closed at the smallest and largest value seen.
    """
    ref_fine, cur_fine = ref.fine_histogram(), cur.fine_histogram()
    if ref_fine is not None and cur_fine is not None and _same_grid(ref, cur):
        assert ref.grid is not None
        grid = ref.grid.grid()
        f, g = ref.fine_cdf(), cur.fine_cdf()  # at the starts of cells 1 .. cells + 1
        # Both CDFs are 0 before the first occupied cell and 1 after the last, so the
        # gap is zero outside [lo, hi); one zero on each side keeps the trapezoid's
        # ends and sign changes exactly as over the whole grid.
        lo = max(min(ref.fine_start, cur.fine_start) - 1, 0)
        hi = max(ref.fine_start + len(ref.fine_counts), cur.fine_start + len(cur.fine_counts))
        gap = f[lo : hi + 1] - g[lo : hi + 1]
        distance = np.abs(gap)
        interior = uniform_gap_area(gap, distance, 1.0 / grid.scale)
        p0, q0 = ref_fine[0] / ref.count, cur_fine[0] / cur.count
        low_area, low_gap = _tail_area(grid, ref, cur, p0, q0, upper=False)
        high_area, high_gap = _tail_area(grid, ref, cur, f[-1], g[-1], upper=True)
        edge_gap = _gap_at_extremes(grid, f, g, ref, cur)
        d = max(float(distance.max()) if distance.size else 0.0, low_gap, high_gap, edge_gap)
        return ref_fine, cur_fine, d, interior + low_area + high_area
    inner = np.asarray(ref.edges, dtype=np.float64)
    ref_counts = np.asarray(ref.counts, dtype=np.float64)
    cur_counts = np.asarray(cur.counts, dtype=np.float64)
    occupied = np.flatnonzero(ref_counts + cur_counts)
    first, last = int(occupied[0]), int(occupied[-1])
    lows = [v for v in (ref.minimum, cur.minimum) if v is not None]
    highs = [v for v in (ref.maximum, cur.maximum) if v is not None]
    # Values lie in [min, max], so the first and last occupied bins start at the
    # smallest value and end at the largest one.
    positions = np.concatenate(([min(lows)], inner[first:last], [max(highs)]))
    positions = np.maximum.accumulate(positions)  # robust to hand-edited extremes
    ref_used, cur_used = ref_counts[first : last + 1], cur_counts[first : last + 1]
    return (
        ref_counts,
        cur_counts,
        ks_statistic(ref_used, cur_used),
        wasserstein_distance(positions, ref_used, cur_used),
    )


def _same_grid(ref: NumericProfile, cur: NumericProfile) -> bool:
    # Windows observed from the reference share its FineGrid object: skip pydantic's __eq__.
    return ref.grid is cur.grid or ref.grid == cur.grid


def _gap_at_extremes(
    grid: Grid,
    f: NDArray[np.float64],
    g: NDArray[np.float64],
    ref: NumericProfile,
    cur: NumericProfile,
) -> float:
    """CDF gaps where one CDF is known exactly: at each sample's smallest and largest value.

    Just below a sample's minimum its CDF is 0, at its maximum it is 1; the other
    CDF is interpolated inside its cell.  This catches the KS supremum where a
    distribution starts or ends abruptly inside a cell (a shifted exponential).
    """
    largest = 0.0
    for profile, other in ((ref, g), (cur, f)):
        for value, level in ((profile.minimum, 0.0), (profile.maximum, 1.0)):
            if value is None:
                continue
            k = grid.cell(value)
            if not 1 <= k <= grid.cells:
                continue  # in an open tail: the tail walk covers it
            within = value * grid.scale - (k + grid.base)  # position inside the cell, [0, 1)
            cdf = other[k - 1] + within * (other[k] - other[k - 1])
            largest = max(largest, abs(level - float(cdf)))
    return largest


def _tail_area(
    grid: Grid, ref: NumericProfile, cur: NumericProfile, f0: float, g0: float, *, upper: bool
) -> tuple[float, float]:
    """``∫|F - G|`` over one open tail and the largest CDF gap there.

    Runs over tail cells ``0 .. last`` outwards from the grid (empty ones too: there
    the gap is constant); ``f0``/``g0`` are the CDFs where the tail meets the grid.
    Inside a cell each CDF's integral is exact from the cell's count and sum
    (``∫F`` over a cell is ``F(start)·width + Σ(end - x)/n``), so the only error is
    where ``F - G`` changes sign inside one cell.
    """
    if upper and not (ref.upper_tail or cur.upper_tail):
        return 0.0, 0.0
    if not upper and not (ref.lower_tail or cur.lower_tail):
        return 0.0, 0.0
    ref_tail = ref.tail_arrays(upper=upper)
    cur_tail = cur.tail_arrays(upper=upper)
    size = max(int(t[0][-1]) + 1 if t[0].size else 0 for t in (ref_tail, cur_tail))
    if size == 0:
        return 0.0, 0.0
    near, far, width = _tail_bounds(grid, size)
    origin = grid.high if upper else grid.low
    sign = 1.0 if upper else -1.0
    # Row 0 is the reference, row 1 the window: every step below runs on both at once.
    counts = np.zeros((2, size))
    sums = np.zeros((2, size))
    for row, (cells, counts_at, sums_at) in enumerate((ref_tail, cur_tail)):
        counts[row, cells] = counts_at
        sums[row, cells] = sums_at
    n = np.array([[ref.count], [cur.count]], dtype=np.float64)
    offset = np.array([[ref.shift - origin], [cur.shift - origin]])
    share = counts / n
    distance_sum = sign * (sums + counts * offset)  # Σ distance from grid
    inner = np.array([[f0], [g0]]) + sign * (np.cumsum(share, axis=1) - share)  # CDF, grid side
    if upper:
        integrals = inner * width + (counts * far - distance_sum) / n
    else:
        integrals = (inner - share) * width + (distance_sum - counts * near) / n
    area = float(np.add.reduce(np.abs(integrals[0] - integrals[1])))
    return area, float(np.max(np.abs(inner[0] - inner[1])))


@lru_cache(maxsize=256)
def _tail_bounds(
    grid: Grid, size: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Near and far distances of tail cells ``0 .. size - 1`` from the grid, and widths."""
    bounds = grid.tail_distances(np.arange(size + 1))
    near, far = bounds[:-1], bounds[1:]
    width = far - near
    for array in (near, far, width):
        array.flags.writeable = False
    return near, far, width


def _z_p_value(ref: NDArray[np.float64], cur: NDArray[np.float64]) -> float:
    """Evidently's z-test: the first level against all the others."""
    first = np.array([ref[0], ref[1:].sum()]), np.array([cur[0], cur[1:].sum()])
    return z_test(*first).p_value


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --- categorical -----------------------------------------------------------------------


def _categorical(
    name: str, ref: CategoricalProfile, cur: CategoricalProfile, policy: DriftPolicy
) -> FeatureDrift:
    common: dict[str, Any] = {
        "feature": name,
        "kind": "categorical",
        "reference_rows": ref.count,
        "current_rows": cur.count,
        "reference_missing_rate": ref.missing_rate,
        "current_missing_rate": cur.missing_rate,
    }
    keys = sorted(set(ref.counts) | set(cur.counts))
    common["new_categories"] = tuple(k for k in keys if k not in ref.counts)[:MAX_NEW_CATEGORIES]
    if not policy.enabled(name):
        return FeatureDrift(verdict=Verdict.DISABLED, drifted=False, levels=len(keys), **common)
    if min(ref.count, cur.count) < policy.min_rows:
        return FeatureDrift(
            verdict=Verdict.INSUFFICIENT_DATA, drifted=False, levels=len(keys), **common
        )
    ref_counts = np.array([ref.counts.get(k, 0) for k in keys], dtype=np.float64)
    cur_counts = np.array([cur.counts.get(k, 0) for k in keys], dtype=np.float64)
    shares = _bin_statistics(ref_counts, cur_counts, policy.psi_epsilon)
    stats = FeatureStatistics(
        psi=shares.psi,
        jensen_shannon=shares.jensen_shannon,
        chi_square=shares.chi_square.statistic,
        chi_square_p_value=shares.chi_square.p_value,
        chi_square_dof=shares.chi_square.dof,
        z_p_value=_z_p_value(ref_counts, cur_counts) if len(keys) <= 2 else None,
    )
    method = select_method(
        policy,
        feature=name,
        numeric=False,
        levels=len(keys),
        reference_rows=ref.count,
        current_rows=cur.count,
    )
    if method in (DriftMethod.KS, DriftMethod.WASSERSTEIN):
        raise ConfigError(
            f"drift method {method.value!r} needs a numeric feature; {name!r} is categorical",
            field=name,
        )
    if method is DriftMethod.Z and stats.z_p_value is None:
        stats = stats.model_copy(update={"z_p_value": _z_p_value(ref_counts, cur_counts)})
    return _decide(common, method, stats, policy, len(keys))


def _decide(
    common: dict[str, Any],
    method: DriftMethod,
    stats: FeatureStatistics,
    policy: DriftPolicy,
    levels: int,
) -> FeatureDrift:
    score = {
        DriftMethod.KS: stats.ks_p_value,
        DriftMethod.CHI_SQUARE: stats.chi_square_p_value,
        DriftMethod.Z: stats.z_p_value,
        DriftMethod.WASSERSTEIN: stats.wasserstein,
        DriftMethod.JENSEN_SHANNON: stats.jensen_shannon,
        DriftMethod.PSI: stats.psi,
    }[method]
    assert score is not None
    threshold = policy.threshold(method, common["feature"])
    drifted = is_drift(method, score, threshold)
    return FeatureDrift(
        verdict=Verdict.DRIFT if drifted else Verdict.NO_DRIFT,
        drifted=drifted,
        method=method,
        threshold=threshold,
        score=score,
        levels=levels,
        statistics=stats,
        **common,
    )


# --- Parquet / Arrow -------------------------------------------------------------------


def profile_from_parquet(
    source: str | Path | bytes | BinaryIO, reference: ReferenceProfile
) -> ReferenceProfile:
    """Profile a Parquet window in the reference's bins, one row group at a time.

    Only the reference's features are read.  String columns of categorical
    features are read as dictionaries (``read_dictionary``) and counted from
    their integer codes; other categorical columns are dictionary-encoded by
    Arrow.  Row groups are profiled separately and merged exactly, so memory
    stays at about one decoded row group.

    Raises
    ------
    InvalidWindowError
        When the data is not readable Parquet or lacks a feature column.

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> from flywheel.drift.profile import build_profile
    >>> ref = build_profile(np.arange(100.0).reshape(-1, 1), ["x"])
    >>> sink = io.BytesIO()
    >>> pq.write_table(pa.table({"x": [1.0, 2.0, None]}), sink)
    >>> window = profile_from_parquet(sink.getvalue(), ref)
    >>> window.rows, window.numeric["x"].missing
    (3, 1)
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(bytes(source))
    try:
        names = set(pq.read_schema(source).names)
        if isinstance(source, io.IOBase):
            source.seek(0)
    except (pa.ArrowException, OSError, ValueError):
        raise InvalidWindowError("the window is not a readable Parquet file") from None
    missing = [f for f in reference.features if f not in names]
    if missing:
        raise InvalidWindowError(f"the window has no column for {missing}", field=missing[0])
    try:
        parquet = pq.ParquetFile(source, read_dictionary=sorted(reference.categorical))
    except (pa.ArrowException, OSError, ValueError):
        raise InvalidWindowError("the window is not a readable Parquet file") from None
    groups = parquet.num_row_groups
    columns = list(reference.features)

    def row_groups() -> Iterator[dict[str, Any]]:
        # Decode the next row group in a thread (Arrow releases the GIL) while this one
        # is counted; only one decoded group is held at a time.
        with ThreadPoolExecutor(max_workers=1) as decoder:

            def read(group: int) -> Future[Any]:
                return decoder.submit(
                    parquet.read_row_group, group, columns=columns, use_threads=True
                )

            pending = read(0) if groups else None
            for group in range(groups):
                assert pending is not None
                try:
                    table = pending.result()
                except (pa.ArrowException, OSError, ValueError):
                    raise InvalidWindowError(
                        f"row group {group} of the window cannot be decoded"
                    ) from None
                pending = read(group + 1) if group + 1 < groups else None
                batch = _arrow_columns(table, reference)
                del table
                yield batch

    return reference.observe_batches(row_groups())


def _arrow_columns(table: Any, reference: ReferenceProfile) -> dict[str, Any]:
    """Columns of a pyarrow Table as numpy arrays (numeric) or category codes."""
    import pyarrow as pa

    names = set(table.column_names)
    missing = [f for f in reference.features if f not in names]
    if missing:
        raise InvalidWindowError(f"the window has no column for {missing}", field=missing[0])
    out: dict[str, Any] = {}
    for name in reference.features:
        column = table.column(name)
        if name in reference.numeric:
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            out[name] = _arrow_numbers(column)
        else:
            out[name] = _arrow_codes(column)
    return out


def _arrow_numbers(column: Any) -> NDArray[Any]:
    """Zero-copy for one chunk of floats without nulls; nulls become NaN otherwise."""
    import pyarrow as pa

    if column.num_chunks == 1:
        chunk = column.chunk(0)
        zero_copy = chunk.null_count == 0 and pa.types.is_floating(chunk.type)
        return np.asarray(chunk.to_numpy(zero_copy_only=zero_copy))
    return np.asarray(column.to_numpy())


def _arrow_codes(column: Any) -> CategoryCodes:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    column = column.unify_dictionaries()
    dictionary = column.chunk(0).dictionary if column.num_chunks else pa.array([])
    indices = pa.chunked_array(
        [chunk.indices for chunk in column.chunks], type=column.type.index_type
    )
    if indices.null_count:
        indices = pc.fill_null(indices, -1)
    codes = indices.to_numpy()
    return CategoryCodes(np.asarray(codes), dictionary.to_pylist())
