"""Holdout metrics, computed the same way from ONNX outputs and from scikit-learn's."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.registry.models import Task

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from flywheel.training.conversion import ModelOutputs

CLASSIFICATION_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS = ("mae", "rmse", "r2")


def holdout_metrics(
    y_true: NDArray[Any],
    outputs: ModelOutputs,
    *,
    task: Task,
    classes: Sequence[str] = (),
) -> dict[str, float]:
    """Metrics of one model's outputs on the holdout.

    Classification: ``accuracy``, ``precision_macro``, ``recall_macro``,
    ``f1_macro`` (zero division counts as 0), ``roc_auc`` (binary; one-vs-rest
    macro for more classes; left out when the holdout lacks a class) and
    ``log_loss``.  Regression: ``mae``, ``rmse``, ``r2``.

    For classification ``y_true`` holds class codes (indices into ``classes``) and
    ``outputs.labels`` class names; labels outside ``classes`` count as wrong.

    Examples
    --------
    >>> from flywheel.training.conversion import ModelOutputs
    >>> out = ModelOutputs(labels=None, values=np.array([1.0, 2.0, 4.0]))
    >>> holdout_metrics(np.array([1.0, 2.0, 3.0]), out, task=Task.REGRESSION)["mae"]
    0.3333333333333333
    """
    from sklearn import metrics

    if task is Task.REGRESSION:
        y = np.asarray(y_true, dtype=np.float64)
        prediction = outputs.values
        return {
            "mae": float(metrics.mean_absolute_error(y, prediction)),
            "rmse": float(math.sqrt(metrics.mean_squared_error(y, prediction))),
            "r2": float(metrics.r2_score(y, prediction)),
        }

    assert outputs.labels is not None
    y = np.asarray(y_true, dtype=np.int64)
    code = {name: i for i, name in enumerate(classes)}
    labels = np.fromiter((code.get(str(v), -1) for v in outputs.labels), dtype=np.int64)
    proba = outputs.values
    n_classes = proba.shape[1]
    class_ids = list(range(n_classes))
    result = {
        "accuracy": float(metrics.accuracy_score(y, labels)),
        "precision_macro": float(
            metrics.precision_score(y, labels, labels=class_ids, average="macro", zero_division=0)
        ),
        "recall_macro": float(
            metrics.recall_score(y, labels, labels=class_ids, average="macro", zero_division=0)
        ),
        "f1_macro": float(
            metrics.f1_score(y, labels, labels=class_ids, average="macro", zero_division=0)
        ),
    }
    if len(np.unique(y)) == n_classes:
        if n_classes == 2:
            result["roc_auc"] = float(metrics.roc_auc_score(y, proba[:, 1]))
        else:
            result["roc_auc"] = float(
                metrics.roc_auc_score(
                    y, proba, multi_class="ovr", average="macro", labels=class_ids
                )
            )
    # float32 outputs can overshoot 1 by an ulp and miss a row sum of 1: clip, renormalise.
    clipped = np.clip(proba, 0.0, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    result["log_loss"] = float(metrics.log_loss(y, clipped, labels=class_ids))
    return result
