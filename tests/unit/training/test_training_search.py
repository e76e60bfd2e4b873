"""Hyperparameter search: seeded, cross-validated on the training split only, within budget."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from flywheel.errors import ConfigError, DatasetError
from flywheel.registry.models import Task
from flywheel.training import search as search_module
from flywheel.training.config import TrainingConfig, parse_config
from flywheel.training.datasets import Dataset, load_dataset
from flywheel.training.estimators import model_step
from flywheel.training.reproduce import reproduce
from flywheel.training.search import candidates, run_search
from flywheel.training.search_space import SearchConfig
from flywheel.training.trainer import split_indices, train, train_from_config

CANCER: dict[str, Any] = {
    "model": "cancer",
    "task": "classification",
    "dataset": {"source": "sklearn:breast_cancer"},
    "estimator": "logistic_regression",
    "hyperparameters": {"max_iter": 2000},
    "seed": 11,
}
LOG_C = {"C": {"low": 0.001, "high": 100.0, "log": True}}


def _config(search: dict[str, Any], **overrides: Any) -> TrainingConfig:
    return parse_config({**CANCER, **overrides, "search": search})


@pytest.fixture(scope="module")
def cancer() -> Dataset:
    return load_dataset("sklearn:breast_cancer")


def _train_split(config: TrainingConfig, data: Dataset) -> tuple[Any, Any]:
    rows, _ = split_indices(data.y, task=config.task, test_size=config.test_size, seed=config.seed)
    return data.X[rows], data.y[rows]


def test_the_same_config_and_data_give_the_same_trials_and_winner(cancer: Dataset) -> None:
    config = _config({"space": LOG_C, "max_trials": 6, "folds": 3})
    x, y = _train_split(config, cancer)

    first, second = run_search(config, x, y), run_search(config, x, y)

    assert [(t.params, t.scores) for t in first.trials] == [
        (t.params, t.scores) for t in second.trials
    ]
    assert first.best_trial == second.best_trial
    assert first.best.params == second.best.params
    reseeded = config.model_copy(update={"seed": 12})
    assert candidates(reseeded.search, seed=12) != candidates(config.search, seed=11)  # type: ignore[arg-type]


def test_the_winner_has_the_best_mean_score_and_ties_go_to_the_earliest(cancer: Dataset) -> None:
    # warm_start changes nothing for a model fitted once: the two trials tie exactly
    config = _config(
        {"method": "grid", "space": {"C": [0.01, 1.0], "warm_start": [True, False]}, "folds": 3}
    )
    x, y = _train_split(config, cancer)

    report = run_search(config, x, y)

    by_c = {c: [t for t in report.trials if t.params["C"] == c] for c in (0.01, 1.0)}
    assert all(a.scores == b.scores for a, b in by_c.values())
    best_score = max(t.mean_score for t in report.trials if t.mean_score is not None)
    assert report.best.mean_score == best_score
    assert report.best.params["warm_start"] is True  # the earlier of the tied pair


class _Recording(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier that notes every row it is fitted on or asked about."""

    seen: set[bytes] = set()

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    def _note(self, x: Any) -> None:
        _Recording.seen.update(row.tobytes() for row in np.asarray(x))

    def fit(self, x: Any, y: Any) -> _Recording:
        self._note(x)
        self.inner.fit(x, y)
        self.classes_ = self.inner.classes_
        return self

    def predict(self, x: Any) -> Any:
        self._note(x)
        return self.inner.predict(x)

    def predict_proba(self, x: Any) -> Any:
        self._note(x)
        return self.inner.predict_proba(x)


def test_holdout_rows_never_reach_a_trial(cancer: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a search whose every trial model records the rows it sees
    real = search_module.build_model
    monkeypatch.setattr(search_module, "build_model", lambda *a, **k: _Recording(real(*a, **k)))
    _Recording.seen = set()
    config = _config({"space": LOG_C, "max_trials": 3, "folds": 3})
    train_rows, holdout_rows = split_indices(
        cancer.y, task=Task.CLASSIFICATION, test_size=config.test_size, seed=config.seed
    )

    # When the trainer runs the search and fits the winner
    outcome = train(config, cancer)

    # Then the trials saw every training row and not one holdout row
    assert outcome.search is not None
    assert _Recording.seen == {row.tobytes() for row in cancer.X[train_rows]}
    assert not _Recording.seen & {row.tobytes() for row in cancer.X[holdout_rows]}
    assert outcome.search.rows == len(train_rows)
    assert outcome.n_holdout == len(holdout_rows)


def test_the_winner_is_refitted_on_the_training_split_and_recorded_in_lineage(
    cancer: Dataset,
) -> None:
    config = _config({"space": LOG_C, "max_trials": 4, "folds": 3})

    outcome = train(config, cancer)

    assert outcome.search is not None
    best = outcome.search.best
    assert model_step(outcome.estimator).get_params()["C"] == best.params["C"]
    assert outcome.hyperparameters["C"] == best.params["C"]
    lineage = outcome.lineage.search
    assert lineage is not None
    assert lineage["best_params"] == best.params
    assert lineage["best_scores"] == list(best.scores)
    assert (lineage["trials"], lineage["metric"], lineage["space"]) == (4, "roc_auc", LOG_C)
    assert len(outcome.search.trials) == 4
    assert outcome.metrics["roc_auc"] > 0.95  # the holdout, scored once by the fitted winner


def test_max_trials_bounds_the_search(cancer: Dataset) -> None:
    config = _config({"space": LOG_C, "max_trials": 3, "folds": 2})

    report = run_search(config, *_train_split(config, cancer))

    assert [t.number for t in report.trials] == [1, 2, 3]
    assert report.stopped == "max_trials"


def test_no_trial_starts_after_max_minutes(cancer: Dataset) -> None:
    # A clock on which every reading is 25 seconds after the previous one
    ticks = iter(range(0, 10_000, 25))
    config = _config({"space": LOG_C, "max_trials": 50, "folds": 2, "max_minutes": 1})

    report = run_search(config, *_train_split(config, cancer), clock=lambda: float(next(ticks)))

    assert report.stopped == "max_minutes"
    assert 1 <= len(report.trials) < 50
    assert report.seconds >= 60


def test_a_finite_space_smaller_than_the_budget_is_tried_once_each() -> None:
    grid = SearchConfig.model_validate(
        {"method": "grid", "space": {"a": [1, 2], "b": ["x", "y"]}, "max_trials": 10}
    )
    random = grid.model_copy(update={"method": "random"})

    assert candidates(grid, seed=0) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]
    drawn = candidates(random, seed=0)
    assert sorted(map(repr, drawn)) == sorted(map(repr, candidates(grid, seed=0)))


def test_integer_and_log_ranges_stay_inside_their_bounds() -> None:
    search = SearchConfig.model_validate(
        {
            "space": {
                "depth": {"low": 2, "high": 6},
                "rate": {"low": 0.001, "high": 0.1, "log": True},
            },
            "max_trials": 200,
        }
    )

    drawn = candidates(search, seed=3)

    assert all(isinstance(c["depth"], int) and 2 <= c["depth"] <= 6 for c in drawn)
    assert all(0.001 <= c["rate"] <= 0.1 for c in drawn)  # type: ignore[operator]
    assert {c["depth"] for c in drawn} == {2, 3, 4, 5, 6}


def test_a_candidate_scikit_learn_refuses_is_a_failed_trial_not_a_failed_search(
    cancer: Dataset,
) -> None:
    # lbfgs (the default solver) does not do an l1 penalty
    config = _config({"method": "grid", "space": {"penalty": ["l1", "l2"]}, "folds": 2})

    report = run_search(config, *_train_split(config, cancer))

    refused, fitted = report.trials
    assert refused.error is not None
    assert refused.mean_score is None
    assert report.best is fitted
    assert report.summary()["failed_trials"] == 1


def test_the_metric_defaults_by_task_and_class_count() -> None:
    iris = parse_config(
        {
            "model": "iris",
            "task": "classification",
            "dataset": {"source": "sklearn:iris"},
            "estimator": "logistic_regression",
            "search": {"space": {"C": [0.5, 1.0]}, "folds": 3},
        }
    )
    diabetes = parse_config(
        {
            "model": "diabetes",
            "task": "regression",
            "dataset": {"source": "sklearn:diabetes"},
            "estimator": "random_forest",
            "hyperparameters": {"n_estimators": 5},
            "search": {"space": {"max_depth": [2, 4]}, "folds": 3},
        }
    )
    flowers, sugar = load_dataset("sklearn:iris"), load_dataset("sklearn:diabetes")

    assert run_search(iris, flowers.X, flowers.y).metric == "accuracy"
    regression = run_search(diabetes, sugar.X, sugar.y)
    assert regression.metric == "neg_rmse"
    assert all(s < 0 for s in regression.best.scores)  # negated: higher is better


def test_too_few_rows_per_class_for_the_folds_names_search_folds(cancer: Dataset) -> None:
    config = _config({"space": LOG_C, "folds": 20})

    with pytest.raises(DatasetError, match=r"^search\.folds: a class has 3 training rows"):
        run_search(config, cancer.X[:40], np.array([0] * 3 + [1] * 37))


@pytest.mark.parametrize(
    ("search", "field", "message"),
    [
        ({"space": {"max_depth": [3]}}, "search.space.max_depth", "has no parameter"),
        ({"space": {"C": [1.0, -1.0]}}, "search.space.C", "invalid value -1.0"),
        ({"space": {"C": {"low": 0.0, "high": 1.0, "log": True}}}, "search.space.C", "low > 0"),
        ({"space": {"C": {"low": 2, "high": 1}}}, "search.space.C", "must be below high"),
        ({"method": "grid", "space": LOG_C}, "search.space.C", "grid search needs a list"),
        ({"space": {"C": 1.0}}, "search.space.C", "a list of values or a range"),
        ({"space": {"max_iter": [10]}}, "search.space.max_iter", "also set in hyperparameters"),
        ({"space": {"random_state": [1]}}, "search.space.random_state", "top-level `seed`"),
        ({"space": LOG_C, "metric": "neg_rmse"}, "search.metric", "does not score classification"),
        ({"space": LOG_C, "folds": 1}, "search.folds", "greater than or equal to 2"),
        ({"space": {}}, "search.space", "at least 1 item"),
    ],
)
def test_a_bad_search_section_names_its_field(
    search: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(search)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert message in str(caught.value)


def test_reproduce_repeats_the_recorded_trials_whatever_the_time_budget(cancer: Dataset) -> None:
    from flywheel.registry.models import ArtifactRef, ModelVersion

    config = _config({"space": LOG_C, "max_trials": 3, "folds": 2, "max_minutes": 30})
    outcome = train(config, cancer, run_id="r1")
    ref = ArtifactRef(
        uri="memory://m", sha256=outcome.onnx_sha256, size_bytes=len(outcome.onnx_bytes)
    )
    version = ModelVersion(
        **outcome.version_draft(ref).model_dump(),
        version=1,
        status="candidate",
        created_by="ana",
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
        updated_by="ana",
    )

    report = reproduce(version, outcome.onnx_bytes, dataset=cancer, run_id="r2")

    assert report.reproduced
    assert report.onnx_sha256_match


def test_preprocessing_is_fitted_on_each_folds_training_rows_only(cancer: Dataset) -> None:
    config = _config({"space": LOG_C, "max_trials": 2, "folds": 3})
    x, y = _train_split(config, cancer)
    fitted_on: list[int] = []

    def prepare(rows: Any) -> Any:
        fitted_on.append(len(rows))
        return lambda data: data

    report = run_search(config, x, y, prepare=prepare)

    # once per fold (not per trial), each time on the other two folds' rows
    assert len(fitted_on) == 3
    assert sum(fitted_on) == 2 * len(x)
    assert len(report.trials) == 2


def test_typed_features_are_tuned_with_their_preprocessing(tmp_path: Any) -> None:
    from tests.unit.training.test_training_typed_features import _table

    config = parse_config(
        {
            "model": "churn",
            "task": "classification",
            "estimator": "logistic_regression",
            "hyperparameters": {"max_iter": 2000},
            "seed": 3,
            "dataset": {"source": str(_table(tmp_path / "churn.csv")), "target": "label"},
            "features": {"note": {"type": "text"}},
            "search": {"method": "grid", "space": {"C": [0.01, 1.0]}, "folds": 3},
        }
    )

    outcome = train_from_config(config)

    assert outcome.search is not None
    assert all(t.error is None for t in outcome.search.trials)
    assert outcome.parity.passed


def test_an_entrypoints_pipeline_is_searched_over_its_keyword_arguments(cancer: Dataset) -> None:
    # Given a config whose model comes from a callable (here scikit-learn's own class)
    config = parse_config(
        {
            **{k: v for k, v in CANCER.items() if k not in ("estimator", "hyperparameters")},
            "entrypoint": "sklearn.ensemble:RandomForestClassifier",
            "hyperparameters": {"n_estimators": 10},
            "search": {"method": "grid", "space": {"max_depth": [1, 4]}, "folds": 3},
        }
    )

    outcome = train(config, cancer)

    # Then each candidate was built by calling it with the trial's arguments, and the
    # winner is the fitted model
    assert outcome.search is not None
    assert [t.params for t in outcome.search.trials] == [{"max_depth": 1}, {"max_depth": 4}]
    assert outcome.estimator.max_depth == outcome.search.best.params["max_depth"]
    assert outcome.parity.passed
