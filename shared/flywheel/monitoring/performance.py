"""Performance of a model on a window of (prediction, label) pairs, against its baseline.

:func:`measure_window` computes the metrics on the labelled rows of a window (labels
arrive late, through ``POST /v1/feedback``) and reports the label coverage;
:func:`evaluate_performance` compares one metric with the version's holdout baseline
under a :class:`PerformancePolicy` and says whether the model degraded.  Metric names
and definitions are those of :func:`flywheel.training.metrics.holdout_metrics`:
``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro`` (zero division counts
as 0), ``roc_auc`` (binary, or one-vs-rest macro; rank-based, ties averaged),
``log_loss``, plus ``precision``, ``recall`` and ``f1`` of the positive class for binary
tasks; ``mae``, ``rmse``, ``r2`` for regression.  Everything is numpy; scikit-learn is
only used by the tests.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, model_validator

from flywheel.errors import ConfigError, InvalidInputError
from flywheel.models import Frozen
from flywheel.registry.models import Task

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "LOWER_IS_BETTER",
    "MetricInterval",
    "PerformancePolicy",
    "PerformanceResult",
    "PerformanceVerdict",
    "PerformanceWindow",
    "classification_metrics",
    "evaluate_performance",
    "join_labels",
    "measure_window",
    "regression_metrics",
    "roc_auc",
]

LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss"})
_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's log-loss clip


# --- metrics -----------------------------------------------------------------------------


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve of binary ``y_true`` (0/1 or bool) from ``scores``.

    The Mann-Whitney statistic: the probability that a random positive scores
    above a random negative, ties counting one half (average ranks).

    Raises
    ------
    InvalidInputError
        When ``y_true`` holds only one class.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    truth = np.asarray(y_true).ravel().astype(bool)
    score = np.asarray(scores, dtype=np.float64).ravel()
    if truth.size != score.size:
        raise InvalidInputError("labels and scores differ in length", field="scores")
    positives = int(np.count_nonzero(truth))
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        raise InvalidInputError("ROC AUC needs both classes among the labels", field="labels")
    ranks = _average_ranks(score)
    rank_sum = float(np.sum(ranks[truth]))
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _average_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks with ties sharing their average rank (``scipy.stats.rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.concatenate((first, [values.size])))
    average = first + (counts + 1) / 2.0  # 1-based mean rank of each run of ties
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = average[group]
    return ranks


def classification_metrics(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    scores: ArrayLike | None = None,
    *,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
) -> dict[str, float]:
    """Accuracy, macro precision/recall/F1, ROC AUC and log loss (see the module).

    Parameters
    ----------
    y_true, y_pred
        True and predicted labels (any comparable values).
    scores
        Optional probabilities: ``[n]`` for the positive class of a binary task
        or ``[n, n_classes]`` in ``classes`` order.  Needed for ``roc_auc`` and
        ``log_loss``.
    classes
        All class labels in model order (default: sorted labels seen).
    positive
        The positive class of a binary task (default: ``classes[1]``).

    Examples
    --------
    >>> m = classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], [0.2, 0.9, 0.4, 0.3])
    >>> m["accuracy"], m["recall"], m["roc_auc"]
    (0.75, 0.5, 1.0)
    """
    truth = np.asarray(y_true).ravel()
    predicted = np.asarray(y_pred).ravel()
    if truth.size != predicted.size:
        raise InvalidInputError("labels and predictions differ in length", field="y_pred")
    if truth.size == 0:
        return {}
    labels = list(classes) if classes is not None else _sorted_union(truth, predicted)
    code = {value: i for i, value in enumerate(labels)}
    t = np.fromiter((code.get(_key(v), -1) for v in truth), dtype=np.intp, count=truth.size)
    p = np.fromiter((code.get(_key(v), -1) for v in predicted), dtype=np.intp, count=truth.size)
    if np.any(t < 0):
        raise InvalidInputError("a label is not among the classes", field="y_true")
    k = len(labels)
    confusion = np.zeros((k, k + 1), dtype=np.int64)  # last column: predictions outside classes
    np.add.at(confusion, (t, np.where(p < 0, k, p)), 1)
    tp = np.diag(confusion[:, :k]).astype(np.float64)
    predicted_as = confusion[:, :k].sum(axis=0).astype(np.float64)
    actual = confusion.sum(axis=1).astype(np.float64)
    precision = _safe_divide(tp, predicted_as)
    recall = _safe_divide(tp, actual)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    result = {
        "accuracy": float(tp.sum() / truth.size),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
    }
    if k == 2:
        pos = 1 if positive is None else code[_key(positive)]
        result |= {
            "precision": float(precision[pos]),
            "recall": float(recall[pos]),
            "f1": float(f1[pos]),
        }
    if scores is not None:
        result |= _score_metrics(t, np.asarray(scores, dtype=np.float64), k, positive, code)
    return result


def _score_metrics(
    t: NDArray[np.intp], scores: NDArray[np.float64], k: int, positive: Any, code: dict[Any, int]
) -> dict[str, float]:
    if scores.shape[0] != t.size:
        raise InvalidInputError("scores and labels differ in length", field="scores")
    if scores.ndim == 1:
        if k != 2:
            raise InvalidInputError("one score per row only works for binary tasks", field="scores")
        pos = 1 if positive is None else code[_key(positive)]
        p1 = scores if pos == 1 else 1 - scores
        proba = np.column_stack([1 - p1, p1])
    else:
        proba = scores
    if proba.shape[1] != k:
        raise InvalidInputError(f"scores need {k} columns, one per class", field="scores")
    out: dict[str, float] = {}
    present = np.unique(t)
    if present.size == k:  # like training: no AUC when a class is absent
        if k == 2:
            out["roc_auc"] = roc_auc(t == 1, proba[:, 1])
        else:
            out["roc_auc"] = float(np.mean([roc_auc(t == c, proba[:, c]) for c in range(k)]))
    clipped = np.clip(proba, 0.0, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    chosen = np.clip(clipped[np.arange(t.size), t], _EPS, 1.0)
    out["log_loss"] = float(-np.mean(np.log(chosen)))
    return out


def regression_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """MAE, RMSE and R² (``1 - SS_res / SS_tot``; ``0`` when the labels are constant).

    Examples
    --------
    >>> regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["mae"]
    0.3333333333333333
    """
    truth = np.asarray(y_true, dtype=np.float64).ravel()
    predicted = np.asarray(y_pred, dtype=np.float64).ravel()
    if truth.size != predicted.size:
        raise InvalidInputError("labels and predictions differ in length", field="y_pred")
    if truth.size == 0:
        return {}
    error = predicted - truth
    ss_res = float(np.dot(error, error))
    centred = truth - truth.mean()
    ss_tot = float(np.dot(centred, centred))
    # scikit-learn's convention for constant labels: 1 if predicted exactly, else 0
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": math.sqrt(ss_res / truth.size),
        "r2": r2,
    }


def _safe_divide(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def _key(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _sorted_union(a: NDArray[Any], b: NDArray[Any]) -> list[Any]:
    values = {_key(v) for v in a.tolist()} | {_key(v) for v in b.tolist()}
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


# --- windows -----------------------------------------------------------------------------


class MetricInterval(Frozen):
    """A bootstrap percentile interval of one metric over the window's labelled rows."""

    metric: str
    low: float
    high: float
    confidence: float = Field(gt=0, lt=1)
    resamples: int = Field(ge=1)


class PerformanceWindow(Frozen):
    """Metrics of one window, on its labelled rows.

    Examples
    --------
    >>> w = measure_window(Task.REGRESSION, [1.0, None, 3.0], [1.5, 2.0, 3.0])
    >>> (w.predictions, w.labelled, round(w.label_coverage, 3), w.metrics["mae"])
    (3, 2, 0.667, 0.25)
    """

    task: Task
    predictions: int = Field(ge=0)
    labelled: int = Field(ge=0)
    label_coverage: float = Field(ge=0, le=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    interval: MetricInterval | None = None
    """How far sampling alone could move the judged metric (see :func:`measure_window`)."""


def join_labels(request_ids: ArrayLike, label_ids: ArrayLike, labels: ArrayLike) -> NDArray[Any]:
    """Labels aligned with ``request_ids`` (``None`` where no label arrived).

    A request labelled more than once keeps its last label (feedback is
    idempotent per request id, so a later call is a correction).

    Examples
    --------
    >>> join_labels(["r1", "r2", "r3"], ["r3", "r1", "r3"], [0, 1, 1]).tolist()
    [1, None, 1]
    """
    requests = np.asarray(request_ids).ravel()
    ids = np.asarray(label_ids).ravel()
    values = np.asarray(labels, dtype=object).ravel()
    if ids.size != values.size:
        raise InvalidInputError("label ids and labels differ in length", field="labels")
    out = np.full(requests.size, None, dtype=object)
    if ids.size == 0 or requests.size == 0:
        return out
    # Last label per id: reverse, then unique keeps the first (i.e. last) occurrence.
    unique_ids, first = np.unique(ids[::-1], return_index=True)
    latest = values[::-1][first]
    position = np.searchsorted(unique_ids, requests)
    position = np.clip(position, 0, unique_ids.size - 1)
    found = unique_ids[position] == requests
    out[found] = latest[position[found]]
    return out


def measure_window(
    task: Task,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    scores: ArrayLike | None = None,
    *,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
    interval_metric: str | None = None,
    resamples: int = 200,
    confidence: float = 0.9,
) -> PerformanceWindow:
    """Metrics on the labelled rows of a window (``None``/NaN labels are unlabelled).

    ``y_true``, ``y_pred`` and ``scores`` are aligned row by row, one row per
    prediction in the window (use :func:`join_labels` to align feedback).
    With ``interval_metric``, the labelled rows are also resampled with replacement
    ``resamples`` times (a fixed seed, so a window always gets the same answer) and
    the metric's central ``confidence`` percentile interval is kept:
    :func:`evaluate_performance` then calls a window degraded only when even the
    interval's better end breaks the policy (with 0.9, a one-sided 95% bound).

    Examples
    --------
    >>> w = measure_window(Task.CLASSIFICATION, ["yes", None, "no"], ["yes", "no", "yes"])
    >>> w.labelled, w.metrics["accuracy"]
    (2, 0.5)
    """
    truth = np.asarray(y_true, dtype=object).ravel()
    predicted = np.asarray(y_pred).ravel()
    if truth.size != predicted.size:
        raise InvalidInputError("labels and predictions differ in length", field="y_pred")
    known = np.fromiter(
        (not (v is None or (isinstance(v, float) and math.isnan(v))) for v in truth),
        dtype=bool,
        count=truth.size,
    )
    labelled = int(np.count_nonzero(known))
    metrics: dict[str, float] = {}
    interval = None
    if labelled:
        if task is Task.REGRESSION:
            y = truth[known].astype(np.float64)
            guessed = predicted[known]

            def measure(rows: NDArray[np.intp] | slice) -> dict[str, float]:
                return regression_metrics(y[rows], guessed[rows])

        else:
            labels = np.array([_key(v) for v in truth[known]])
            guessed = predicted[known]
            score_rows = None if scores is None else np.asarray(scores, dtype=np.float64)[known]

            def measure(rows: NDArray[np.intp] | slice) -> dict[str, float]:
                return classification_metrics(
                    labels[rows],
                    guessed[rows],
                    None if score_rows is None else score_rows[rows],
                    classes=classes,
                    positive=positive,
                )

        metrics = measure(slice(None))
        if interval_metric is not None and interval_metric in metrics and labelled > 1:
            if interval_metric == "accuracy":
                # A resampled share of hits is Binomial(n, share) / n: the same bootstrap
                # distribution, without resampling rows.
                hits = np.random.default_rng(0).binomial(
                    labelled, metrics["accuracy"], size=resamples
                )
                interval = _interval(interval_metric, hits / labelled, confidence)
            else:
                interval = _bootstrap(measure, labelled, interval_metric, resamples, confidence)
    return PerformanceWindow(
        task=task,
        predictions=int(truth.size),
        labelled=labelled,
        label_coverage=labelled / truth.size if truth.size else 0.0,
        metrics=metrics,
        interval=interval,
    )


def _bootstrap(
    measure: Callable[[NDArray[np.intp]], dict[str, float]],
    rows: int,
    metric: str,
    resamples: int,
    confidence: float,
) -> MetricInterval | None:
    rng = np.random.default_rng(0)
    values = []
    for _ in range(resamples):
        value = measure(rng.integers(0, rows, rows)).get(metric)
        if value is not None and math.isfinite(value):
            values.append(value)
    if len(values) < resamples / 2:  # e.g. ROC AUC on resamples with one class
        return None
    return _interval(metric, np.asarray(values), confidence)


def _interval(metric: str, values: NDArray[np.float64], confidence: float) -> MetricInterval:
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return MetricInterval(
        metric=metric,
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=int(values.size),
    )


# --- policy ------------------------------------------------------------------------------


class PerformancePolicy(Frozen):
    """When a model counts as degraded on a window.

    Set ``min_value`` (metrics where higher is better), ``max_value`` (``mae``,
    ``rmse``, ``log_loss``) and/or ``max_relative_drop``: the largest allowed
    relative degradation against the baseline (``0.05`` = 5 % worse, in the
    metric's bad direction).

    Examples
    --------
    >>> PerformancePolicy(metric="f1_macro", max_relative_drop=0.05).min_labels
    100
    """

    metric: str = Field(min_length=1)
    min_value: float | None = None
    max_value: float | None = None
    max_relative_drop: float | None = Field(default=None, ge=0)
    min_labels: int = Field(default=100, ge=1)
    min_coverage: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _direction(self) -> PerformancePolicy:
        lower = self.metric in LOWER_IS_BETTER
        if lower and self.min_value is not None:
            raise ValueError(f"{self.metric} is better when lower: use max_value")
        if not lower and self.max_value is not None:
            raise ValueError(f"{self.metric} is better when higher: use min_value")
        if self.min_value is None and self.max_value is None and self.max_relative_drop is None:
            raise ValueError("set min_value, max_value or max_relative_drop")
        return self


class PerformanceVerdict(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    INSUFFICIENT_LABELS = "insufficient_labels"


class PerformanceResult(Frozen):
    """The verdict on one window, with the numbers behind it."""

    verdict: PerformanceVerdict
    degraded: bool
    metric: str
    value: float | None = None
    baseline: float | None = None
    relative_drop: float | None = Field(
        default=None, description="relative change in the bad direction (0.1 = 10% worse)"
    )
    reasons: tuple[str, ...] = ()
    window: PerformanceWindow
    policy: PerformancePolicy


def evaluate_performance(
    window: PerformanceWindow,
    baseline: Mapping[str, float],
    policy: PerformancePolicy,
) -> PerformanceResult:
    """Compare the window's metric with the baseline (the version's holdout metrics).

    Raises
    ------
    ConfigError
        When ``max_relative_drop`` is set but the baseline lacks the metric.

    Examples
    --------
    >>> window = PerformanceWindow(task=Task.CLASSIFICATION, predictions=500, labelled=400,
    ...                            label_coverage=0.8, metrics={"accuracy": 0.81})
    >>> policy = PerformancePolicy(metric="accuracy", max_relative_drop=0.05)
    >>> result = evaluate_performance(window, {"accuracy": 0.90}, policy)
    >>> result.verdict, round(result.relative_drop, 3)
    (<PerformanceVerdict.DEGRADED: 'degraded'>, 0.1)
    """
    base = baseline.get(policy.metric)
    if policy.max_relative_drop is not None and base is None:
        raise ConfigError(
            f"the baseline has no {policy.metric!r} metric to compare with", field="metric"
        )
    common: dict[str, Any] = {"metric": policy.metric, "window": window, "policy": policy}
    value = window.metrics.get(policy.metric)
    if window.labelled < policy.min_labels or window.label_coverage < policy.min_coverage:
        reason = (
            f"{window.labelled} labels ({window.label_coverage:.1%} coverage); the policy "
            f"needs {policy.min_labels} and {policy.min_coverage:.1%}"
        )
        return PerformanceResult(
            verdict=PerformanceVerdict.INSUFFICIENT_LABELS,
            degraded=False,
            value=value,
            baseline=base,
            reasons=(reason,),
            **common,
        )
    if value is None:
        return PerformanceResult(
            verdict=PerformanceVerdict.INSUFFICIENT_LABELS,
            degraded=False,
            baseline=base,
            reasons=(f"{policy.metric} is not defined on this window",),
            **common,
        )
    lower = policy.metric in LOWER_IS_BETTER

    def relative_drop(at: float) -> float | None:
        if base is None:
            return None
        return ((at - base) if lower else (base - at)) / max(abs(base), _EPS)

    def violations(at: float) -> list[str]:
        found = []
        if policy.min_value is not None and at < policy.min_value:
            found.append(f"{policy.metric} {at:.4g} < minimum {policy.min_value:.4g}")
        if policy.max_value is not None and at > policy.max_value:
            found.append(f"{policy.metric} {at:.4g} > maximum {policy.max_value:.4g}")
        worse = relative_drop(at)
        allowed = policy.max_relative_drop
        if allowed is not None and worse is not None and worse > allowed:
            found.append(
                f"{policy.metric} {at:.4g} is {worse:.1%} worse than the baseline "
                f"{base:.4g} (allowed {allowed:.1%})"
            )
        return found

    drop = relative_drop(value)
    reasons = violations(value)
    interval = window.interval
    if reasons and interval is not None and interval.metric == policy.metric:
        # Degraded only when even the better end of the sampling interval breaks the
        # policy: a noisy window of a healthy model must not trigger retraining.
        noise = (
            f"{interval.confidence:.0%} interval {interval.low:.4g} to {interval.high:.4g} "
            f"over {window.labelled} labels"
        )
        if violations(interval.low if lower else interval.high):
            reasons.append(f"{noise}: worse than allowed even at its better end")
        else:
            return PerformanceResult(
                verdict=PerformanceVerdict.OK,
                degraded=False,
                value=value,
                baseline=base,
                relative_drop=drop,
                reasons=(f"{reasons[0]}, but within sampling noise ({noise})",),
                **common,
            )
    return PerformanceResult(
        verdict=PerformanceVerdict.DEGRADED if reasons else PerformanceVerdict.OK,
        degraded=bool(reasons),
        value=value,
        baseline=base,
        relative_drop=drop,
        reasons=tuple(reasons),
        **common,
    )
