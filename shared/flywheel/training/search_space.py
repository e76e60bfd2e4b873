"""The ``search:`` section of a training config: what to tune, how, and on what budget.

A space maps hyperparameter names of the configured estimator to a list of values
(grid or random search) or to a range ``{low, high, log}`` (random search only;
integer bounds sample integers). :func:`check_space` validates names and values
the way ``hyperparameters`` are validated.

Examples
--------
>>> search = SearchConfig.model_validate(
...     {"space": {"max_depth": [3, 5], "learning_rate": {"low": 0.01, "high": 0.3, "log": True}}}
... )
>>> (search.method.value, search.folds, search.max_trials)
('random', 5, 20)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, JsonValue, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from flywheel.models import Frozen
from flywheel.registry.models import Task
from flywheel.training.estimators import RESERVED_PARAMS, Estimator, invalid_params, unknown_params

__all__ = [
    "ParamRange",
    "SearchConfig",
    "SearchMethod",
    "SearchMetric",
    "check_space",
    "default_metric",
    "metric_fits",
]


class SearchMethod(StrEnum):
    """How candidates are drawn from the space."""

    GRID = "grid"
    RANDOM = "random"


class SearchMetric(StrEnum):
    """Cross-validation scores a search can maximise (higher is better for each)."""

    ACCURACY = "accuracy"
    ROC_AUC = "roc_auc"
    F1_MACRO = "f1_macro"
    NEG_LOG_LOSS = "neg_log_loss"
    NEG_RMSE = "neg_rmse"
    NEG_MAE = "neg_mae"
    R2 = "r2"


_CLASSIFICATION = frozenset(
    {SearchMetric.ACCURACY, SearchMetric.ROC_AUC, SearchMetric.F1_MACRO, SearchMetric.NEG_LOG_LOSS}
)


def metric_fits(metric: SearchMetric, task: Task) -> bool:
    """Whether ``metric`` scores models of ``task``.

    Examples
    --------
    >>> metric_fits(SearchMetric.NEG_RMSE, Task.CLASSIFICATION)
    False
    """
    return (metric in _CLASSIFICATION) is (task is Task.CLASSIFICATION)


def default_metric(task: Task, n_classes: int) -> SearchMetric:
    """``roc_auc`` for two classes, ``accuracy`` for more, ``neg_rmse`` for regression.

    Examples
    --------
    >>> default_metric(Task.CLASSIFICATION, 3).value
    'accuracy'
    """
    if task is Task.REGRESSION:
        return SearchMetric.NEG_RMSE
    return SearchMetric.ROC_AUC if n_classes == 2 else SearchMetric.ACCURACY


class ParamRange(Frozen):
    """Values between ``low`` and ``high`` (inclusive); both integers: integers only.

    Examples
    --------
    >>> ParamRange(low=2, high=10).integer, ParamRange(low=0.01, high=1, log=True).integer
    (True, False)
    """

    low: int | float
    high: int | float
    #: Sample uniformly on a log scale (both bounds must be positive).
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    @model_validator(mode="after")
    def _ordered(self) -> ParamRange:
        if self.low >= self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


Choices = Annotated[tuple[JsonValue, ...], Field(min_length=1)]


def _problem(field: str, message: str) -> PydanticCustomError:
    """An error naming ``field`` below ``search`` (the config's error formatter appends it)."""
    return PydanticCustomError("flywheel", "{message}", {"message": message, "subfield": field})


class SearchConfig(Frozen):
    """Grid or random search with k-fold cross-validation on the training split."""

    method: SearchMethod = SearchMethod.RANDOM
    space: dict[str, Choices | ParamRange] = Field(min_length=1)
    #: Folds of the cross-validation (stratified for classification).
    folds: int = Field(default=5, ge=2, le=20)
    #: ``None``: :func:`default_metric` for the task and the number of classes.
    metric: SearchMetric | None = None
    max_trials: int = Field(default=20, ge=1, le=1000)
    #: Wall-clock budget; no trial starts after it (the first always runs).
    max_minutes: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _values_are_lists_or_ranges(cls, data: Any) -> Any:
        space = data.get("space") if isinstance(data, dict) else None
        if not isinstance(space, dict):
            return data
        for name, values in space.items():
            if isinstance(values, dict):
                try:
                    ParamRange.model_validate(values)
                except ValidationError as err:
                    first = err.errors(include_url=False)[0]
                    message = str(first["msg"]).removeprefix("Value error, ")
                    where = ".".join(str(p) for p in first["loc"])
                    raise _problem(
                        f"space.{name}", f"{where}: {message}" if where else message
                    ) from None
            elif not isinstance(values, list | tuple) or not values:
                raise _problem(f"space.{name}", "a list of values or a range {low, high}")
        return data

    @model_validator(mode="after")
    def _grid_needs_lists(self) -> SearchConfig:
        if self.method is SearchMethod.GRID:
            for name, values in self.space.items():
                if isinstance(values, ParamRange):
                    raise _problem(f"space.{name}", "grid search needs a list of values")
        return self


def check_space(
    search: SearchConfig, *, estimator: Estimator, task: Task, fixed: dict[str, Any]
) -> tuple[str, str] | None:
    """The first problem of ``search`` for ``estimator``: ``(field, message)``, or ``None``.

    ``field`` is relative to ``search`` (``space.max_depth``, ``metric``).

    Examples
    --------
    >>> search = SearchConfig.model_validate({"space": {"max_depth": [3, -1]}})
    >>> check_space(search, estimator=Estimator.RANDOM_FOREST, task=Task.CLASSIFICATION, fixed={})
    ('space.max_depth', 'invalid value -1 for random_forest (classification)')
    """
    if search.metric is not None and not metric_fits(search.metric, task):
        return "metric", f"{search.metric} does not score {task} models"
    for name, values in search.space.items():
        field = f"space.{name}"
        if name in RESERVED_PARAMS:
            return field, "set the seed with the top-level `seed` field"
        if unknown_params(estimator, task, {name: None}):
            return field, f"{estimator} ({task}) has no parameter {name!r}"
        if name in fixed:
            return field, "also set in hyperparameters; tune it or fix it, not both"
        candidates = (values.low, values.high) if isinstance(values, ParamRange) else values
        for value in candidates:
            if invalid_params(estimator, task, {name: value}):
                return field, f"invalid value {value!r} for {estimator} ({task})"
    return None
