"""The estimators Flywheel trains, and how a config name becomes a scikit-learn object.

scikit-learn is imported inside the functions: serving never imports it.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from typing import Any

from flywheel.registry.models import Task


class Estimator(StrEnum):
    """Estimator names accepted in a training config."""

    LOGISTIC_REGRESSION = "logistic_regression"
    LINEAR_REGRESSION = "linear_regression"
    RANDOM_FOREST = "random_forest"
    GRADIENT_BOOSTING = "gradient_boosting"
    HIST_GRADIENT_BOOSTING = "hist_gradient_boosting"


_CLASSES: dict[tuple[Estimator, Task], str] = {
    (Estimator.LOGISTIC_REGRESSION, Task.CLASSIFICATION): "sklearn.linear_model.LogisticRegression",
    (Estimator.LINEAR_REGRESSION, Task.REGRESSION): "sklearn.linear_model.LinearRegression",
    (Estimator.RANDOM_FOREST, Task.CLASSIFICATION): "sklearn.ensemble.RandomForestClassifier",
    (Estimator.RANDOM_FOREST, Task.REGRESSION): "sklearn.ensemble.RandomForestRegressor",
    (Estimator.GRADIENT_BOOSTING, Task.CLASSIFICATION): (
        "sklearn.ensemble.GradientBoostingClassifier"
    ),
    (Estimator.GRADIENT_BOOSTING, Task.REGRESSION): "sklearn.ensemble.GradientBoostingRegressor",
    (Estimator.HIST_GRADIENT_BOOSTING, Task.CLASSIFICATION): (
        "sklearn.ensemble.HistGradientBoostingClassifier"
    ),
    (Estimator.HIST_GRADIENT_BOOSTING, Task.REGRESSION): (
        "sklearn.ensemble.HistGradientBoostingRegressor"
    ),
}

#: Estimators trained behind a ``StandardScaler`` (trees take raw features).
SCALED: frozenset[Estimator] = frozenset(
    {Estimator.LOGISTIC_REGRESSION, Estimator.LINEAR_REGRESSION}
)

#: Parameters a config may not set: the seed comes from ``seed``.
RESERVED_PARAMS: frozenset[str] = frozenset({"random_state"})


def supports(estimator: Estimator, task: Task) -> bool:
    """Whether ``estimator`` can be trained for ``task``.

    Examples
    --------
    >>> supports(Estimator.LOGISTIC_REGRESSION, Task.REGRESSION)
    False
    >>> supports(Estimator.RANDOM_FOREST, Task.REGRESSION)
    True
    """
    return (estimator, task) in _CLASSES


def estimator_class(estimator: Estimator, task: Task) -> type[Any]:
    """Import and return the scikit-learn class behind ``estimator`` for ``task``.

    Examples
    --------
    >>> estimator_class(Estimator.RANDOM_FOREST, Task.CLASSIFICATION).__name__
    'RandomForestClassifier'
    """
    module_name, _, class_name = _CLASSES[(estimator, task)].rpartition(".")
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


def unknown_params(estimator: Estimator, task: Task, params: dict[str, Any]) -> list[str]:
    """Names in ``params`` the estimator does not take, in the order given.

    Examples
    --------
    >>> unknown_params(Estimator.RANDOM_FOREST, Task.CLASSIFICATION, {"n_estimatorz": 3})
    ['n_estimatorz']
    """
    known = set(estimator_class(estimator, task)().get_params(deep=False))
    return [name for name in params if name not in known]


def invalid_params(estimator: Estimator, task: Task, params: dict[str, Any]) -> list[str]:
    """Names whose values scikit-learn's own parameter validation rejects.

    Each parameter is checked alone, so the result names the culprits.

    Examples
    --------
    >>> invalid_params(Estimator.RANDOM_FOREST, Task.REGRESSION, {"n_estimators": 0})
    ['n_estimators']
    """
    cls = estimator_class(estimator, task)
    bad: list[str] = []
    for name, value in params.items():
        try:
            cls(**{name: value})._validate_params()
        except (ValueError, TypeError):
            bad.append(name)
    return bad


def build_estimator(estimator: Estimator, task: Task, params: dict[str, Any], *, seed: int) -> Any:
    """A fresh, unfitted scikit-learn estimator (a ``Pipeline`` for linear models).

    ``random_state`` is set from ``seed`` on every estimator that takes one.

    Examples
    --------
    >>> model = build_estimator(
    ...     Estimator.LOGISTIC_REGRESSION, Task.CLASSIFICATION, {"C": 0.5}, seed=7
    ... )
    >>> [name for name, _ in model.steps]
    ['scale', 'model']
    """
    cls = estimator_class(estimator, task)
    model = cls(**params)
    if "random_state" in model.get_params(deep=False):
        model.set_params(random_state=seed)
    if estimator in SCALED:
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline([("scale", StandardScaler()), ("model", model)])
    return model


def model_step(fitted: Any) -> Any:
    """The estimator inside a pipeline (or the estimator itself)."""
    steps = getattr(fitted, "steps", None)
    return steps[-1][1] if steps else fitted
