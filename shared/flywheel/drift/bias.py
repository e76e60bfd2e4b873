"""Group fairness of a model's predictions on one window (numpy only).

:func:`bias_report` measures, per value of a protected attribute, the selection rate
(share of rows predicted *favorable*) and, where labels exist, the true and false
positive rates, then the three gaps a promotion gate checks, each with a ``confidence``
(90%) bootstrap interval (ADR 42).

Notes
-----
===============================  ==============================================  =========
Metric                           Definition                                      Default
===============================  ==============================================  =========
demographic parity difference    max - min selection rate over groups            ≤ 0.1
disparate impact ratio           min / max selection rate (or each group over     ≥ 0.8
                                 ``reference_group``): the four-fifths rule
equal opportunity difference     max - min true positive rate (labelled rows)    ≤ 0.1
===============================  ==============================================  =========

The definitions are fairlearn's ``demographic_parity_difference``,
``demographic_parity_ratio`` and ``equal_opportunity_difference``.  Groups with
fewer than ``min_group_rows`` rows are reported but left out of the gaps.  By default
the limits are judged on the point estimates (fairlearn's numbers) and a violation
whose interval reaches back inside the limit says so; ``judge="interval"`` breaks a
limit only when even the interval's better end does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from flywheel.drift.profile import category_codes
from flywheel.errors import InvalidInputError
from flywheel.models import Frozen

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["BiasPolicy", "BiasResult", "GroupMetrics", "bias_report", "fairness_regressions"]


class BiasPolicy(Frozen):
    """Limits on the group gaps (see the module table).

    Examples
    --------
    >>> BiasPolicy().min_disparate_impact_ratio
    0.8
    """

    max_demographic_parity_difference: float = Field(default=0.1, ge=0, le=1)
    min_disparate_impact_ratio: float = Field(default=0.8, ge=0, le=1)
    max_equal_opportunity_difference: float = Field(default=0.1, ge=0, le=1)
    min_group_rows: int = Field(default=30, ge=1)
    reference_group: str | None = None
    confidence: float = Field(default=0.9, gt=0, lt=1)
    """Level of the gaps' bootstrap intervals."""
    judge: Literal["estimate", "interval"] = "estimate"
    """``estimate``: a gap past its limit is a violation (fairlearn's numbers);
    ``interval``: only when the better end of its interval is past the limit too."""


class GroupMetrics(Frozen):
    """Rates for one group of the protected attribute."""

    group: str
    rows: int = Field(ge=0)
    selection_rate: float = Field(ge=0, le=1)
    labelled: int = Field(ge=0)
    actual_positives: int = Field(ge=0)
    true_positive_rate: float | None = None
    false_positive_rate: float | None = None
    included: bool = True


class BiasResult(Frozen):
    """Group metrics, the gaps, and whether they pass the policy.

    ``passed`` is what a promotion gate reads; ``violations`` says why not.
    """

    attribute: str
    favorable: str
    rows: int = Field(ge=0)
    labelled: int = Field(ge=0)
    groups: tuple[GroupMetrics, ...]
    reference_group: str | None = None
    demographic_parity_difference: float | None = None
    disparate_impact_ratio: float | None = None
    equal_opportunity_difference: float | None = None
    intervals: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """``policy.confidence`` bootstrap interval of each measured gap, by field name."""
    violations: tuple[str, ...] = ()
    passed: bool
    policy: BiasPolicy


def bias_report(
    groups: ArrayLike | Any,
    predictions: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    favorable: Any = 1,
    attribute: str = "group",
    policy: BiasPolicy | None = None,
) -> BiasResult:
    """Fairness gaps of ``predictions`` across the values of a protected attribute.

    Parameters
    ----------
    groups
        The protected attribute per row (any values; dictionary-encoded columns
        such as pandas categoricals are read from their codes).
    predictions
        Predicted labels per row.
    labels
        Ground truth per row where known (``None``/NaN where not); enables the
        true and false positive rates and the equal opportunity difference.
    favorable
        The predicted (and true) label that counts as the favorable outcome.
    attribute
        The attribute's name, for the report.
    policy
        Limits; :class:`BiasPolicy` defaults when omitted.

    Raises
    ------
    InvalidInputError
        When the arrays differ in length or ``policy.reference_group`` is absent.

    Examples
    --------
    >>> groups = ["a"] * 100 + ["b"] * 100
    >>> predictions = [1] * 60 + [0] * 40 + [1] * 40 + [0] * 60
    >>> result = bias_report(groups, predictions, attribute="sex")
    >>> (round(result.demographic_parity_difference, 2), round(result.disparate_impact_ratio, 3))
    (0.2, 0.667)
    >>> result.passed, result.violations[0].split(":")[0]
    (False, 'demographic parity difference 0.200 > 0.100')
    """
    policy = policy or BiasPolicy()
    codes, names = _group_codes(groups)
    predicted = _flat(predictions)
    if predicted.size != codes.size:
        raise InvalidInputError("groups and predictions differ in length", field="predictions")
    selected = _equals(predicted, favorable)
    truth: NDArray[np.bool_] | None = None
    known: NDArray[np.bool_] | None = None
    if labels is not None:
        actual = _flat(labels)
        if actual.size != codes.size:
            raise InvalidInputError("groups and labels differ in length", field="labels")
        known = ~_missing(actual)
        truth = _equals(actual, favorable) & known

    n_groups = len(names)
    rows = np.bincount(codes, minlength=n_groups)
    chosen = np.bincount(codes, weights=selected, minlength=n_groups)
    metrics: list[GroupMetrics] = []
    for g, name in enumerate(names):
        if rows[g] == 0:
            continue
        tpr = fpr = None
        labelled = positives = 0
        if truth is not None and known is not None:
            in_group = codes == g
            labelled = int(np.count_nonzero(known & in_group))
            positive = truth & in_group
            negative = known & ~truth & in_group
            positives = int(np.count_nonzero(positive))
            negatives = int(np.count_nonzero(negative))
            if positives:
                tpr = float(np.count_nonzero(selected & positive)) / positives
            if negatives:
                fpr = float(np.count_nonzero(selected & negative)) / negatives
        metrics.append(
            GroupMetrics(
                group=name,
                rows=int(rows[g]),
                selection_rate=float(chosen[g] / rows[g]),
                labelled=labelled,
                actual_positives=positives,
                true_positive_rate=tpr,
                false_positive_rate=fpr,
                included=bool(rows[g] >= policy.min_group_rows),
            )
        )
    return _assess(
        metrics,
        policy,
        attribute=attribute,
        favorable=str(favorable),
        rows=int(codes.size),
        labelled=int(np.count_nonzero(known)) if known is not None else 0,
    )


def _assess(
    metrics: list[GroupMetrics],
    policy: BiasPolicy,
    *,
    attribute: str,
    favorable: str,
    rows: int,
    labelled: int,
) -> BiasResult:
    included = [m for m in metrics if m.included]
    if policy.reference_group is not None and policy.reference_group not in {
        m.group for m in included
    }:
        raise InvalidInputError(
            f"reference group {policy.reference_group!r} has no (or too few) rows",
            field="reference_group",
        )
    dpd = dir_ = eod = None
    if len(included) >= 2:
        rates = [m.selection_rate for m in included]
        dpd = max(rates) - min(rates)
        if policy.reference_group is not None:
            base = next(m.selection_rate for m in included if m.group == policy.reference_group)
            others = [m.selection_rate for m in included if m.group != policy.reference_group]
            dir_ = min(_ratio(r, base) for r in others)
        else:
            dir_ = _ratio(min(rates), max(rates))
        tprs = [m.true_positive_rate for m in included if m.true_positive_rate is not None]
        if len(tprs) >= 2:
            eod = max(tprs) - min(tprs)
    intervals = _intervals(included, policy) if dpd is not None else {}
    judged = policy.judge == "interval"
    violations: list[str] = []
    checks = (
        ("demographic parity difference", "demographic_parity_difference", dpd,
         policy.max_demographic_parity_difference, 1.0, ": selection rates differ by group"),
        ("disparate impact ratio", "disparate_impact_ratio", dir_,
         policy.min_disparate_impact_ratio, -1.0, ""),
        ("equal opportunity difference", "equal_opportunity_difference", eod,
         policy.max_equal_opportunity_difference, 1.0, ": true positive rates differ by group"),
    )  # fmt: skip
    for label, field, value, limit, sign, why in checks:
        if value is None or not sign * (value - limit) > 0:
            continue
        low, high = intervals.get(field, (value, value))
        better = low if sign > 0 else high  # the end of the interval nearest the limit
        noise = not sign * (better - limit) > 0
        if judged and noise:
            continue
        text = f"{label} {value:.3f} {'>' if sign > 0 else '<'} {limit:.3f}{why}"
        if noise:
            text += (
                f" ({policy.confidence:.0%} interval {low:.3f} to {high:.3f} reaches the limit: "
                "within sampling noise)"
            )
        violations.append(text)
    return BiasResult(
        attribute=attribute,
        favorable=favorable,
        rows=rows,
        labelled=labelled,
        groups=tuple(metrics),
        reference_group=policy.reference_group,
        demographic_parity_difference=dpd,
        disparate_impact_ratio=dir_,
        equal_opportunity_difference=eod,
        intervals=intervals,
        violations=tuple(violations),
        passed=not violations,
        policy=policy,
    )


def fairness_regressions(
    candidate: BiasResult, baseline: BiasResult, *, tolerance: float = 0.02
) -> tuple[str, ...]:
    """Gaps that got worse than ``baseline``'s by more than ``tolerance`` (for a gate).

    Compare two models on the same holdout: an empty tuple means no fairness
    regression.

    Examples
    --------
    >>> a = bias_report(["x"] * 50 + ["y"] * 50, [1] * 30 + [0] * 20 + [1] * 25 + [0] * 25)
    >>> b = bias_report(["x"] * 50 + ["y"] * 50, [1] * 40 + [0] * 10 + [1] * 20 + [0] * 30)
    >>> fairness_regressions(b, a)[0].split(" (")[0]
    'demographic parity difference rose from 0.100 to 0.400'
    """
    found: list[str] = []
    pairs = (
        ("demographic parity difference", "demographic_parity_difference", 1.0),
        ("equal opportunity difference", "equal_opportunity_difference", 1.0),
        ("disparate impact ratio", "disparate_impact_ratio", -1.0),
    )
    for label, field, direction in pairs:
        new, old = getattr(candidate, field), getattr(baseline, field)
        if new is None or old is None:
            continue
        if direction * (new - old) > tolerance:
            verb = "rose" if direction > 0 else "fell"
            found.append(f"{label} {verb} from {old:.3f} to {new:.3f} (tolerance {tolerance})")
    return tuple(found)


_RESAMPLES = 2000


def _intervals(included: list[GroupMetrics], policy: BiasPolicy) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of the gaps: each group's counts redrawn from a binomial with
    its observed rate (fixed seed, so a report is reproducible)."""
    rng = np.random.default_rng(0)
    rows = np.array([m.rows for m in included], dtype=np.int64)
    chosen = np.rint(np.array([m.selection_rate for m in included]) * rows).astype(np.int64)
    rates = rng.binomial(rows, chosen / rows, size=(_RESAMPLES, rows.size)) / rows
    gaps: dict[str, NDArray[np.float64]] = {
        "demographic_parity_difference": rates.max(axis=1) - rates.min(axis=1)
    }
    if policy.reference_group is not None:
        at = next(i for i, m in enumerate(included) if m.group == policy.reference_group)
        base = rates[:, at : at + 1]
        others = np.delete(rates, at, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(base > 0, others / base, 1.0)
        gaps["disparate_impact_ratio"] = ratios.min(axis=1)
    else:
        top = rates.max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            gaps["disparate_impact_ratio"] = np.where(top > 0, rates.min(axis=1) / top, 1.0)
    labelled = [m for m in included if m.true_positive_rate is not None]
    if len(labelled) >= 2:
        positives = np.array([m.actual_positives for m in labelled], dtype=np.int64)
        rate = np.array([m.true_positive_rate for m in labelled], dtype=np.float64)
        tprs = rng.binomial(positives, rate, size=(_RESAMPLES, positives.size)) / positives
        gaps["equal_opportunity_difference"] = tprs.max(axis=1) - tprs.min(axis=1)
    tail = 50 * (1 - policy.confidence)
    return {
        name: (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
        for name, values in gaps.items()
    }


def _ratio(numerator: float, denominator: float) -> float:
    if denominator <= 0:
        return 1.0  # nobody selected anywhere: no disparity
    return numerator / denominator


def _group_codes(groups: ArrayLike | Any) -> tuple[NDArray[np.intp], list[str]]:
    encoded = category_codes(groups)
    if encoded is not None:
        codes = np.asarray(encoded.codes).astype(np.intp)
        names = [str(c) for c in encoded.categories]
        if np.any(codes < 0):  # missing attribute values form their own group
            codes = np.where(codes < 0, len(names), codes)
            names.append("(missing)")
        return codes, names
    values = np.asarray(groups, dtype=object).ravel()
    labels = np.array(["(missing)" if _is_missing(v) else str(v) for v in values], dtype=object)
    names_array, codes = np.unique(labels.astype(str), return_inverse=True)
    return codes.astype(np.intp), [str(n) for n in names_array]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _flat(values: ArrayLike) -> NDArray[Any]:
    array = np.asarray(values)
    if array.dtype.kind not in "biufU":
        array = np.asarray(values, dtype=object)
    return array.ravel()


def _missing(values: NDArray[Any]) -> NDArray[np.bool_]:
    if values.dtype.kind == "f":
        return np.asarray(np.isnan(values), dtype=bool)
    if values.dtype.kind in "biuU":
        return np.zeros(values.size, dtype=bool)
    return np.fromiter((_is_missing(v) for v in values), dtype=bool, count=values.size)


def _equals(values: NDArray[Any], target: Any) -> NDArray[np.bool_]:
    """Element-wise ``value == target``; text is compared as text (``"1"`` matches ``1``)."""
    numeric_target = isinstance(target, int | float | np.number) and not isinstance(target, str)
    if values.dtype.kind in "biuf" and numeric_target:
        return np.asarray(values == target, dtype=bool)
    if values.dtype.kind == "U" and isinstance(target, str):
        return np.asarray(values == target, dtype=bool)
    return np.fromiter((_same(v, target) for v in values), dtype=bool, count=values.size)


def _same(value: Any, target: Any) -> bool:
    if _is_missing(value):
        return False
    if isinstance(value, str) or isinstance(target, str):
        return str(value) == str(target)
    try:
        return bool(value == target)
    except (TypeError, ValueError):
        return False
