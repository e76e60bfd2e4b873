"""Fixtures for the training tests: bundled datasets and a config builder.

scikit-learn's OpenMP pools are pinned to one thread (the root conftest sets
``OMP_NUM_THREADS``) so the suite stays fast and timings stable on small runners.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from flywheel.training.config import TrainingConfig, parse_config
from flywheel.training.datasets import Dataset, load_dataset

if TYPE_CHECKING:
    from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

#: Small but realistic settings: every estimator trains in well under a second.
SMALL_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"max_iter": 2000},
    "linear_regression": {},
    "random_forest": {"n_estimators": 15, "max_depth": 8},
    "gradient_boosting": {"n_estimators": 20, "max_depth": 3},
    "hist_gradient_boosting": {"max_iter": 30},
}

DATASET_TASKS = {
    "sklearn:breast_cancer": "classification",
    "sklearn:iris": "classification",
    "sklearn:wine": "classification",
    "sklearn:diabetes": "regression",
}


@pytest.fixture(scope="session")
def bundled() -> Callable[[str], Dataset]:
    """Load a bundled dataset once per session."""
    cache: dict[str, Dataset] = {}

    def get(source: str) -> Dataset:
        if source not in cache:
            cache[source] = load_dataset(source)
        return cache[source]

    return get


@pytest.fixture
def make_config() -> Callable[..., TrainingConfig]:
    """Build a valid config for a bundled dataset; keyword overrides win."""

    def make(
        source: str = "sklearn:breast_cancer",
        estimator: str = "random_forest",
        **overrides: Any,
    ) -> TrainingConfig:
        data: dict[str, Any] = {
            "model": "test-model",
            "task": DATASET_TASKS[source],
            "dataset": {"source": source},
            "estimator": estimator,
            "hyperparameters": dict(SMALL_HYPERPARAMETERS[estimator]),
            "seed": 11,
        }
        data.update(overrides)
        return parse_config(data)

    return make
