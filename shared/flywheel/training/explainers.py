"""Build the explainer artifact of a trained model (ADR 71).

Trees written by the float64 tree writer get exact TreeSHAP over the same node
arrays plus their training covers; ``StandardScaler`` + linear models exact linear
SHAP against the training means (the scaler folded into the coefficients); any
other model a seeded permutation sampler over a background sample of the training
split, evaluated on the ONNX model at serving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.explain.artifact import Explainer
from flywheel.explain.linear import LinearShap
from flywheel.explain.sampling import PermutationShap
from flywheel.registry.models import Task
from flywheel.training import _onnx_trees
from flywheel.training.estimators import model_step

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from numpy.typing import NDArray

__all__ = [
    "BACKGROUND_ROWS",
    "PERMUTATIONS",
    "build_explainer",
    "explained_outputs",
    "model_output_function",
]

#: Background rows and orderings of the sampling explainer (cost: rows x (features + 1) x
#: orderings model rows per explained row).
BACKGROUND_ROWS = 20
PERMUTATIONS = 10


def explained_outputs(task: Task, classes: Sequence[str]) -> tuple[str, ...]:
    """The outputs an explanation covers: the positive class of a binary classifier.

    Examples
    --------
    >>> explained_outputs(Task.CLASSIFICATION, ["no", "yes"])
    ('yes',)
    >>> explained_outputs(Task.REGRESSION, [])
    ('value',)
    """
    if task is Task.REGRESSION:
        return ("value",)
    return (classes[1],) if len(classes) == 2 else tuple(classes)


def _linear(fitted: Any, task: Task) -> LinearShap | None:
    step = model_step(fitted)
    coef = getattr(step, "coef_", None)
    intercept = getattr(step, "intercept_", None)
    if coef is None or intercept is None or not hasattr(step, "predict"):
        return None
    steps = list(getattr(fitted, "steps", [])[:-1])
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(intercept, dtype=np.float64))
    if any(type(transform).__name__ != "StandardScaler" for _, transform in steps):
        return None  # only scalers fold into the coefficients; anything else samples
    for _, transform in reversed(steps):
        mean = np.asarray(transform.mean_ if transform.with_mean else 0.0, dtype=np.float64)
        scale = np.asarray(transform.scale_ if transform.with_std else 1.0, dtype=np.float64)
        coef = coef / scale
        intercept = intercept - coef @ np.broadcast_to(mean, coef.shape[1:])
    if task is Task.CLASSIFICATION and type(step).__name__ != "LogisticRegression":
        return None
    return LinearShap(coef=coef, intercept=intercept, means=np.zeros(coef.shape[1]))


def build_explainer(
    fitted: Any,
    *,
    task: Task,
    classes: Sequence[str],
    feature_names: Sequence[str],
    x_train: NDArray[Any],
    converter: str,
    seed: int = 0,
) -> Explainer:
    """The explainer of ``fitted`` as converted (``converter``), in its documented space.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    >>> fitted = LinearRegression().fit(X, X @ [2.0, 1.0])
    >>> e = build_explainer(fitted, task=Task.REGRESSION, classes=(), feature_names=("a", "b"),
    ...                     x_train=X, converter="skl2onnx")
    >>> e.kind, e.space, [round(v, 9) for v in e.explain(X[:1]).values[0, :, 0].tolist()]
    ('linear', 'value', [-2.0, 0.0])
    """
    outputs = explained_outputs(task, classes)
    columns = tuple(feature_names)
    step = model_step(fitted)
    if converter == "flywheel-trees" and _onnx_trees.is_tree_ensemble(step):
        arrays, space = _onnx_trees.tree_ensemble_arrays(step, n_features=len(columns))
        return Explainer.tree(arrays, columns=columns, outputs=outputs, space=space)
    linear = _linear(fitted, task)
    x = np.asarray(x_train, dtype=np.float64)
    if linear is not None:
        means = x.mean(axis=0)
        linear = LinearShap(coef=linear.coef, intercept=linear.intercept, means=means)
        if task is Task.CLASSIFICATION and len(outputs) == 1 and linear.coef.shape[0] == 1:
            space = "log_odds"
        else:
            space = "margin" if task is Task.CLASSIFICATION else "value"
        return Explainer.linear(linear, columns=columns, outputs=outputs, space=space)
    rng = np.random.default_rng(seed)
    rows = rng.choice(x.shape[0], size=min(BACKGROUND_ROWS, x.shape[0]), replace=False)
    sampler = PermutationShap(background=x[np.sort(rows)], permutations=PERMUTATIONS, seed=seed)
    space = "probability" if task is Task.CLASSIFICATION else "value"
    return Explainer.sampling(sampler, columns=columns, outputs=outputs, space=space)


def model_output_function(
    session: Any, *, task: Task, classes: Sequence[str]
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """``X -> [rows, outputs]``: the ONNX model's probabilities (explained classes) or values.

    What the sampling explainer perturbs at training (global importance).
    """
    from flywheel.training.conversion import onnx_outputs

    keep = [1] if task is Task.CLASSIFICATION and len(classes) == 2 else None

    def run(x: NDArray[np.float64]) -> NDArray[np.float64]:
        values = onnx_outputs(session, x, task=task).values
        if task is Task.REGRESSION:
            return values.reshape(-1, 1)
        return values[:, keep] if keep is not None else values

    return run
