"""The estimators Flywheel trains, and how a config name becomes a scikit-learn object.

scikit-learn, LightGBM and XGBoost are imported inside the functions: serving never
imports them.  LightGBM and XGBoost come through
:mod:`flywheel.training.lightgbm_estimators` and
:mod:`flywheel.training.xgboost_estimators`, which list the hyperparameters a config
may set (ADR 5).
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
    RIDGE = "ridge"
    LASSO = "lasso"
    ELASTIC_NET = "elastic_net"
    RANDOM_FOREST = "random_forest"
    GRADIENT_BOOSTING = "gradient_boosting"
    HIST_GRADIENT_BOOSTING = "hist_gradient_boosting"
    LIGHTGBM = "lightgbm"
    XGBOOST = "xgboost"


_CLASSES: dict[tuple[Estimator, Task], str] = {
    (Estimator.LOGISTIC_REGRESSION, Task.CLASSIFICATION): "sklearn.linear_model.LogisticRegression",
    (Estimator.LINEAR_REGRESSION, Task.REGRESSION): "sklearn.linear_model.LinearRegression",
    (Estimator.RIDGE, Task.REGRESSION): "sklearn.linear_model.Ridge",
    (Estimator.LASSO, Task.REGRESSION): "sklearn.linear_model.Lasso",
    (Estimator.ELASTIC_NET, Task.REGRESSION): "sklearn.linear_model.ElasticNet",
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
    (Estimator.LIGHTGBM, Task.CLASSIFICATION): (
        "flywheel.training.lightgbm_estimators.LightGBMClassifier"
    ),
    (Estimator.LIGHTGBM, Task.REGRESSION): (
        "flywheel.training.lightgbm_estimators.LightGBMRegressor"
    ),
    (Estimator.XGBOOST, Task.CLASSIFICATION): (
        "flywheel.training.xgboost_estimators.XGBoostClassifier"
    ),
    (Estimator.XGBOOST, Task.REGRESSION): "flywheel.training.xgboost_estimators.XGBoostRegressor",
}

#: Estimators trained behind a ``StandardScaler`` (trees take raw features).
SCALED: frozenset[Estimator] = frozenset(
    {
        Estimator.LOGISTIC_REGRESSION,
        Estimator.LINEAR_REGRESSION,
        Estimator.RIDGE,
        Estimator.LASSO,
        Estimator.ELASTIC_NET,
    }
)

#: Estimators whose accepted hyperparameters are the keys of their class's
#: ``_parameter_constraints`` (the library takes more than Flywheel converts).
CURATED: frozenset[Estimator] = frozenset({Estimator.LIGHTGBM, Estimator.XGBOOST})

#: Estimators only the float64 tree writer converts (no ``precision: float32``).
FLOAT64_ONLY: frozenset[Estimator] = CURATED

#: Modules holding the settings every run of a curated estimator gets (``FIXED_PARAMS``).
_FIXED_PARAMS_MODULES: dict[Estimator, str] = {
    Estimator.LIGHTGBM: "flywheel.training.lightgbm_estimators",
    Estimator.XGBOOST: "flywheel.training.xgboost_estimators",
}

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
    >>> unknown_params(Estimator.XGBOOST, Task.REGRESSION, {"booster": "dart", "max_depth": 3})
    ['booster']
    """
    cls = estimator_class(estimator, task)
    if estimator in CURATED:
        known = set(cls._parameter_constraints)
    else:
        known = set(cls().get_params(deep=False))
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


def conflicting_params(estimator: Estimator, params: dict[str, Any]) -> dict[str, str]:
    """Parameters valid alone but not together (name -> reason), for logistic regression.

    ``l1_ratio`` chooses the penalty (0: l2, 1: l1, between: elastic net); scikit-learn
    1.8 deprecated ``penalty`` for it, and only some solvers take l1.

    Examples
    --------
    >>> conflicting_params(Estimator.LOGISTIC_REGRESSION, {"l1_ratio": 0.5})
    {'l1_ratio': "l1_ratio 0.5 (elastic net) needs solver 'saga', not 'lbfgs'"}
    """
    if estimator is not Estimator.LOGISTIC_REGRESSION:
        return {}
    if "penalty" in params:
        return {"penalty": "deprecated by scikit-learn; set l1_ratio (0: l2, 1: l1) and C"}
    if "l1_ratio" in params and params["l1_ratio"] is None:
        return {"l1_ratio": "give a number from 0 (l2) to 1 (l1)"}
    solver = params.get("solver", "lbfgs")
    l1_ratio = params.get("l1_ratio", 0.0)
    if not isinstance(l1_ratio, int | float) or not 0 < l1_ratio <= 1:
        return {}
    named = "solver" if "solver" in params else "l1_ratio"
    if l1_ratio < 1 and solver != "saga":
        return {named: f"l1_ratio {l1_ratio} (elastic net) needs solver 'saga', not {solver!r}"}
    if l1_ratio == 1 and solver not in ("saga", "liblinear"):
        return {named: f"l1_ratio 1 (l1) needs solver 'saga' or 'liblinear', not {solver!r}"}
    return {}


def build_estimator(estimator: Estimator, task: Task, params: dict[str, Any], *, seed: int) -> Any:
    """A fresh, unfitted scikit-learn estimator (a ``Pipeline`` for linear models).

    ``random_state`` is set from ``seed`` on every estimator that takes one; LightGBM
    and XGBoost get their ``FIXED_PARAMS`` and one thread unless ``n_jobs`` is given.

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
    if estimator in _FIXED_PARAMS_MODULES:
        fixed = importlib.import_module(_FIXED_PARAMS_MODULES[estimator]).FIXED_PARAMS
        model.set_params(**fixed, n_jobs=params.get("n_jobs") or 1)
    if estimator in SCALED:
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline([("scale", StandardScaler()), ("model", model)])
    return model


def model_step(fitted: Any) -> Any:
    """The estimator inside a pipeline (or the estimator itself)."""
    steps = getattr(fitted, "steps", None)
    return steps[-1][1] if steps else fitted
