"""Hyperparameter search: seeded candidates, k-fold cross-validation, a budget, every trial kept.

:func:`run_search` sees only the rows it is given (the trainer passes the training
split, never the holdout). Candidates come from ``config.seed`` alone, folds are
fixed once for all trials, and ties go to the earliest trial, so the same config
and data give the same trials and the same winner.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import JsonValue

from flywheel.errors import DatasetError, TrainingError
from flywheel.models import Frozen
from flywheel.registry.models import Task
from flywheel.training.entrypoints import build_model
from flywheel.training.search_space import (
    ParamRange,
    SearchConfig,
    SearchMethod,
    SearchMetric,
    default_metric,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

    from flywheel.training.config import TrainingConfig

__all__ = ["SearchReport", "Trial", "candidates", "run_search"]

Stop = Literal["completed", "max_trials", "max_minutes"]

#: scikit-learn scorer names; ``roc_auc`` is one-vs-rest (macro) for more than two classes.
_SCORERS: dict[SearchMetric, str] = {
    SearchMetric.ACCURACY: "accuracy",
    SearchMetric.ROC_AUC: "roc_auc",
    SearchMetric.F1_MACRO: "f1_macro",
    SearchMetric.NEG_LOG_LOSS: "neg_log_loss",
    SearchMetric.NEG_RMSE: "neg_root_mean_squared_error",
    SearchMetric.NEG_MAE: "neg_mean_absolute_error",
    SearchMetric.R2: "r2",
}
#: Draws a random search may spend looking for a candidate it has not tried yet.
_DRAWS_PER_TRIAL = 20


class Trial(Frozen):
    """One candidate's cross-validation: fold scores, their mean and spread, its duration."""

    number: int
    params: dict[str, JsonValue]
    scores: tuple[float, ...] = ()
    mean_score: float | None = None
    std_score: float | None = None
    seconds: float
    #: Why the candidate could not be scored (scikit-learn refused the combination).
    error: str | None = None


class SearchReport(Frozen):
    """What a search did: every trial, the winner, and why it stopped."""

    method: SearchMethod
    metric: SearchMetric
    folds: int
    space: dict[str, JsonValue]
    rows: int
    trials: tuple[Trial, ...]
    best_trial: int
    stopped: Stop
    seconds: float

    @property
    def best(self) -> Trial:
        return self.trials[self.best_trial - 1]

    def summary(self) -> dict[str, JsonValue]:
        """What lineage keeps: the space, the budget's outcome and the winner's fold scores."""
        best = self.best
        return {
            "method": str(self.method),
            "metric": str(self.metric),
            "folds": self.folds,
            "space": self.space,
            "rows": self.rows,
            "trials": len(self.trials),
            "failed_trials": sum(t.error is not None for t in self.trials),
            "stopped": self.stopped,
            "seconds": self.seconds,
            "best_trial": best.number,
            "best_params": best.params,
            "best_scores": list(best.scores),
            "best_mean_score": best.mean_score,
            "best_std_score": best.std_score,
        }


def _value(spec: ParamRange, rng: np.random.Generator) -> JsonValue:
    low, high = float(spec.low), float(spec.high)
    if spec.log:
        drawn = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        drawn = rng.uniform(low, high)
    if spec.integer:
        return int(min(max(round(drawn), spec.low), spec.high))
    return float(min(max(drawn, low), high))


def candidates(search: SearchConfig, *, seed: int) -> list[dict[str, JsonValue]]:
    """The candidates a search tries, in order (at most ``max_trials``, no repeats).

    Grid: every combination of the lists (names sorted), in order. Random: draws
    seeded by ``seed``; a finite space smaller than the budget is exhausted.

    Examples
    --------
    >>> search = SearchConfig.model_validate(
    ...     {"method": "grid", "space": {"b": [1, 2], "a": ["x"]}, "max_trials": 3})
    >>> candidates(search, seed=0)
    [{'a': 'x', 'b': 1}, {'a': 'x', 'b': 2}]
    """
    names = sorted(search.space)
    if search.method is SearchMethod.GRID:
        lists: list[tuple[JsonValue, ...]] = []
        for name in names:
            values = search.space[name]
            assert not isinstance(values, ParamRange)  # the config refuses ranges in a grid
            lists.append(values)
        combos = itertools.islice(itertools.product(*lists), search.max_trials)
        return [dict(zip(names, combo, strict=True)) for combo in combos]
    rng = np.random.default_rng(seed)
    found: list[dict[str, JsonValue]] = []
    seen: set[str] = set()
    for _ in range(search.max_trials * _DRAWS_PER_TRIAL):
        if len(found) == search.max_trials:
            break
        drawn: dict[str, JsonValue] = {}
        for name in names:
            spec = search.space[name]
            if isinstance(spec, ParamRange):
                drawn[name] = _value(spec, rng)
            else:
                drawn[name] = spec[int(rng.integers(len(spec)))]
        key = repr(sorted(drawn.items()))
        if key not in seen:
            seen.add(key)
            found.append(drawn)
    return found


def _folds(
    x: NDArray[Any], y: NDArray[Any], *, task: Task, folds: int, seed: int
) -> list[tuple[NDArray[Any], NDArray[Any]]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if task is Task.CLASSIFICATION:
        counts = np.bincount(np.asarray(y, dtype=np.int64))
        smallest = int(counts[counts > 0].min()) if counts.size else 0
        if smallest < folds:
            raise DatasetError(
                f"search.folds: a class has {smallest} training rows, fewer than {folds} folds",
                field="search.folds",
            )
        splitter: Any = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        if len(y) < folds * 2:
            raise DatasetError(
                f"search.folds: {len(y)} training rows are too few for {folds} folds",
                field="search.folds",
            )
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(x, y))


#: One fold as the trials see it: training rows and labels, validation rows and labels.
Fold = tuple["NDArray[Any]", "NDArray[Any]", "NDArray[Any]", "NDArray[Any]"]


def _prepared(
    x: NDArray[Any],
    y: NDArray[Any],
    splits: list[tuple[NDArray[Any], NDArray[Any]]],
    prepare: Callable[[NDArray[Any]], Callable[[NDArray[Any]], NDArray[Any]]] | None,
) -> list[Fold]:
    folds: list[Fold] = []
    for train_rows, test_rows in splits:
        fit_x, check_x = x[train_rows], x[test_rows]
        if prepare is not None:
            transform = prepare(fit_x)
            fit_x, check_x = transform(fit_x), transform(check_x)
        folds.append((fit_x, y[train_rows], check_x, y[test_rows]))
    return folds


def _score(
    config: TrainingConfig, params: dict[str, JsonValue], folds: list[Fold], scorer: Any
) -> tuple[float, ...]:
    scores = []
    for fit_x, fit_y, check_x, check_y in folds:
        # A built-in estimator, or the entrypoint's pipeline with these keyword arguments.
        model = build_model(
            config.model_copy(update={"hyperparameters": {**config.hyperparameters, **params}})
        )
        model.fit(fit_x, fit_y)
        scores.append(float(scorer(model, check_x, check_y)))
    return tuple(scores)


def run_search(
    config: TrainingConfig,
    x: NDArray[Any],
    y: NDArray[Any],
    *,
    prepare: Callable[[NDArray[Any]], Callable[[NDArray[Any]], NDArray[Any]]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchReport:
    """Cross-validate the candidates of ``config.search`` on ``x``, ``y`` within the budget.

    ``y`` holds class codes for classification. ``prepare`` fits preprocessing on a
    fold's training rows and returns its transform (typed features). No trial starts
    once ``max_minutes`` have passed (the first always runs); a candidate scikit-learn
    refuses is kept as a failed trial.

    Raises
    ------
    DatasetError
        A class has fewer training rows than folds.
    TrainingError
        Every trial failed.

    Examples
    --------
    >>> from flywheel.training.config import parse_config
    >>> from flywheel.training.datasets import load_dataset
    >>> config = parse_config({
    ...     "model": "iris", "task": "classification", "dataset": {"source": "sklearn:iris"},
    ...     "estimator": "logistic_regression",
    ...     "search": {"method": "grid", "space": {"C": [0.1, 1.0]}, "folds": 3}})
    >>> data = load_dataset("sklearn:iris")
    >>> report = run_search(config, data.X, data.y)
    >>> (len(report.trials), report.metric.value, report.best.mean_score > 0.9)
    (2, 'accuracy', True)
    """
    from sklearn.metrics import get_scorer

    search = config.search
    if search is None:
        raise TrainingError("search: the config has no search section", field="search")
    started = clock()
    n_classes = len(np.unique(y)) if config.task is Task.CLASSIFICATION else 0
    metric = search.metric or default_metric(config.task, n_classes)
    name = _SCORERS[metric]
    if metric is SearchMetric.ROC_AUC and n_classes > 2:
        name = "roc_auc_ovr"
    scorer = get_scorer(name)
    splits = _folds(x, y, task=config.task, folds=search.folds, seed=config.seed)
    folds = _prepared(x, y, splits, prepare)
    planned = candidates(search, seed=config.seed)
    trials: list[Trial] = []
    stopped: Stop = "max_trials" if len(planned) == search.max_trials else "completed"
    deadline = None if search.max_minutes is None else started + search.max_minutes * 60
    for number, params in enumerate(planned, start=1):
        if trials and deadline is not None and clock() >= deadline:
            stopped = "max_minutes"
            break
        began = clock()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = _score(config, params, folds, scorer)
        except (ValueError, TypeError) as err:
            trials.append(
                Trial(
                    number=number,
                    params=params,
                    seconds=clock() - began,
                    error=f"{type(err).__name__}: {str(err)[:200]}",
                )
            )
            continue
        mean = float(np.mean(scores))
        trials.append(
            Trial(
                number=number,
                params=params,
                scores=scores,
                mean_score=mean if math.isfinite(mean) else None,
                std_score=float(np.std(scores)) if math.isfinite(mean) else None,
                seconds=clock() - began,
            )
        )
    scored = [t for t in trials if t.mean_score is not None]
    if not scored:
        raise TrainingError(
            f"search: all {len(trials)} trial(s) failed: scikit-learn refused every candidate "
            "of search.space with these hyperparameters",
            field="search",
        )
    best = max(scored, key=lambda t: (t.mean_score, -t.number))
    return SearchReport(
        method=search.method,
        metric=metric,
        folds=search.folds,
        space=search.model_dump(mode="json")["space"],
        rows=len(y),
        trials=tuple(trials),
        best_trial=best.number,
        stopped=stopped,
        seconds=clock() - started,
    )
