"""Attribution drift: the live feature-importance ranking against the training baseline.

Importance is mean ``|SHAP|`` per input feature (what training stores on the version
as ``importance``). :func:`ndcg` is the normalised discounted cumulative gain that
SageMaker Clarify's attribution drift monitor computes: the features ranked by their
*live* importance, each gaining its *training* importance, discounted by its live
position, over the same sum in the training order (the ideal)::

    DCG  = Σ_{i=1..n} a(s_i) / log2(i + 1)     s: features by live importance
    IDCG = Σ_{i=1..n} a(f_i) / log2(i + 1)     f: features by training importance
    NDCG = DCG / IDCG                           a: training importance

1 is the training ranking; Clarify (and :class:`AttributionPolicy`) call drift below 0.9.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

__all__ = [
    "AttributionChange",
    "AttributionDrift",
    "AttributionPolicy",
    "compare_attributions",
    "ndcg",
]


class AttributionPolicy(Frozen):
    """``monitoring.attribution`` of a model config: when the live ranking counts as drift.

    ``min_ndcg`` is SageMaker Clarify's default alarm level (ADR 73).  ``sample_rows``
    captured rows of the window (a seeded uniform sample) are explained; a sampling
    (approximate) explainer explains ``approximate_rows`` of them, since each of its rows
    costs ``background x (features + 1) x orderings`` model rows.

    Examples
    --------
    >>> policy = AttributionPolicy()
    >>> policy.min_ndcg, policy.sample_rows, policy.rows_for(approximate=True)
    (0.9, 2000, 100)
    """

    enabled: bool = True
    #: Attribution drift when the NDCG of the live ranking falls below this.
    min_ndcg: float = Field(default=0.9, gt=0, le=1)
    sample_rows: int = Field(default=2000, ge=1, le=100_000)
    approximate_rows: int = Field(default=100, ge=1, le=10_000)
    #: Fewer explained rows than this: no verdict (the estimate is too noisy).
    min_rows: int = Field(default=100, ge=1)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _enough_rows_to_judge(self) -> AttributionPolicy:
        for field in ("sample_rows", "approximate_rows"):
            if getattr(self, field) < self.min_rows:
                raise ValueError(
                    f"{field} ({getattr(self, field)}) is below min_rows ({self.min_rows}): "
                    "no window could be judged"
                )
        return self

    def rows_for(self, *, approximate: bool) -> int:
        """How many sampled rows to explain with an exact or an approximate explainer."""
        return min(self.sample_rows, self.approximate_rows) if approximate else self.sample_rows


class AttributionChange(Frozen):
    """One feature's importance at training and in the window (ranks start at 1)."""

    feature: str
    baseline: float = Field(ge=0)
    live: float = Field(ge=0)
    #: ``live - baseline`` (same units: mean ``|SHAP|`` in the explainer's space).
    change: float
    baseline_rank: int = Field(ge=1)
    live_rank: int = Field(ge=1)


class AttributionDrift(Frozen):
    """The window's attribution drift, or why it was not measured (``status="skipped"``).

    Examples
    --------
    >>> AttributionDrift.skipped("version 3 was registered without an explainer").status
    'skipped'
    """

    status: Literal["scored", "skipped"]
    reason: str | None = None
    ndcg: float | None = Field(default=None, ge=0, le=1)
    threshold: float | None = None
    drifted: bool = False
    #: Rows explained, and captured rows of the window they were drawn from.
    sample_rows: int = Field(default=0, ge=0)
    window_rows: int = Field(default=0, ge=0)
    seed: int | None = None
    method: str | None = None
    space: str | None = None
    approximate: bool = False
    #: Largest three-standard-error half-width of a sampled SHAP value (approximate only).
    error_bound: float | None = None
    #: Per feature, in the order of the training ranking.
    features: tuple[AttributionChange, ...] = ()

    @classmethod
    def skipped(cls, reason: str) -> AttributionDrift:
        return cls(status="skipped", reason=reason)


def ndcg(baseline: Mapping[str, float], live: Mapping[str, float]) -> float:
    """NDCG of the live ranking, gains from the training ``baseline`` (module formula).

    Features missing on one side count as 0 there. Tied live values share their
    positions' mean discount, so the result never depends on the features' order.

    Raises
    ------
    ValueError
        The baseline gives no feature a positive importance (no ideal ranking).

    Examples
    --------
    SageMaker Clarify's college admission example: the ranking reversed.

    >>> training = {"SAT": 0.70, "GPA": 0.50, "rank": 0.05}
    >>> round(ndcg(training, {"SAT": 0.10, "GPA": 0.20, "rank": 0.70}), 4)
    0.6876
    >>> ndcg(training, {"SAT": 9.0, "GPA": 3.0, "rank": 0.0})
    1.0
    """
    names = sorted(set(baseline) | set(live))
    gains = np.array([_importance(baseline, n) for n in names])
    scores = np.array([_importance(live, n) for n in names])
    discounts = 1.0 / np.log2(np.arange(2, len(names) + 2))
    ideal = float(np.sort(gains)[::-1] @ discounts)
    if not ideal > 0:
        raise ValueError("the baseline gives no feature a positive importance")
    order = np.argsort(-scores, kind="stable")
    shared = _tied_discounts(scores[order], discounts)
    return min(float(gains[order] @ shared) / ideal, 1.0)


def compare_attributions(
    baseline: Mapping[str, float],
    live: Mapping[str, float],
    policy: AttributionPolicy | None = None,
    *,
    sample_rows: int = 0,
    window_rows: int = 0,
    method: str | None = None,
    space: str | None = None,
    approximate: bool = False,
    error_bound: float | None = None,
) -> AttributionDrift:
    """Judge the live importance against the baseline: NDCG, verdict, change per feature.

    Too few explained rows (``policy.min_rows``), or a baseline without a positive
    importance, give a ``skipped`` result with the reason.

    Examples
    --------
    >>> drift = compare_attributions({"a": 3.0, "b": 1.0}, {"a": 0.5, "b": 2.0},
    ...                              sample_rows=500)
    >>> drift.drifted, round(drift.ndcg, 4), [(f.feature, f.live_rank) for f in drift.features]
    (True, 0.7967, [('a', 2), ('b', 1)])
    """
    policy = policy or AttributionPolicy()
    if sample_rows < policy.min_rows:
        return AttributionDrift.skipped(
            f"{sample_rows} rows explained; at least {policy.min_rows} are needed"
        )
    try:
        score = ndcg(baseline, live)
    except ValueError as err:
        return AttributionDrift.skipped(f"attribution drift cannot be measured: {err}")
    names = sorted(set(baseline) | set(live))
    base_rank = _ranks({n: _importance(baseline, n) for n in names})
    live_rank = _ranks({n: _importance(live, n) for n in names})
    changes = tuple(
        AttributionChange(
            feature=name,
            baseline=_importance(baseline, name),
            live=_importance(live, name),
            change=_importance(live, name) - _importance(baseline, name),
            baseline_rank=base_rank[name],
            live_rank=live_rank[name],
        )
        for name in sorted(names, key=lambda n: base_rank[n])
    )
    return AttributionDrift(
        status="scored",
        ndcg=score,
        threshold=policy.min_ndcg,
        drifted=score < policy.min_ndcg,
        sample_rows=sample_rows,
        window_rows=window_rows,
        seed=policy.seed,
        method=method,
        space=space,
        approximate=approximate,
        error_bound=error_bound,
        features=changes,
    )


def _importance(values: Mapping[str, float], name: str) -> float:
    value = float(values.get(name, 0.0))
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"importance of {name!r} is {value!r}; mean |SHAP| is finite, >= 0")
    return value


def _tied_discounts(
    ordered: NDArray[np.float64], discounts: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``discounts`` with each run of equal ``ordered`` values given the run's mean."""
    shared = discounts.copy()
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    ends = np.append(starts[1:], len(ordered))
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if end - start > 1:
            shared[start:end] = discounts[start:end].mean()
    return shared


def _ranks(values: Mapping[str, float]) -> dict[str, int]:
    """1 for the largest; ties share the best rank of their run (competition ranking)."""
    ranked = sorted(values, key=lambda n: (-values[n], n))
    out: dict[str, int] = {}
    for position, name in enumerate(ranked, start=1):
        previous = ranked[position - 2] if position > 1 else None
        tied = previous is not None and values[previous] == values[name]
        out[name] = out[previous] if tied and previous is not None else position
    return out
