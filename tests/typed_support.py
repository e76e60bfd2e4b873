"""The churn example's table (``examples/churn/make_data.py``) trained the way Flywheel trains
it, and its holdout rows as the JSON records a caller sends."""

from __future__ import annotations

import csv
import functools
import math
import tempfile
from pathlib import Path
from typing import Any

from examples.churn.make_data import rows
from flywheel.training.config import parse_config
from flywheel.training.trainer import TrainingOutcome, train_from_config

#: The example's feature block (``examples/churn/churn.yaml``).
FEATURES: dict[str, Any] = {
    "age": {"type": "float", "impute": "median", "indicator": True},
    "tenure_months": {"type": "int"},
    "monthly_spend": {"type": "float"},
    "plan": {"type": "categorical", "unknown": "error"},
    "region": {"type": "categorical", "unknown": "other"},
    "autopay": {"type": "bool"},
    "support_note": {
        "type": "text",
        "max_length": 500,
        "text": {"analyzer": "word", "ngram_range": [1, 2], "max_features": 100},
    },
}
SMALL: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 15, "max_depth": 8},
    "gradient_boosting": {"n_estimators": 30},
    "hist_gradient_boosting": {"max_iter": 40},
    "lightgbm": {"n_estimators": 40},
    "xgboost": {"n_estimators": 40},
}


@functools.cache
def churn_csv(n: int = 900) -> Path:
    """The generated table, written once per test session."""
    path = Path(tempfile.mkdtemp(prefix="churn-")) / "churn.csv"
    table = rows(n)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return path


def churn_config(
    estimator: str | None = None, *, task: str = "classification", entrypoint: str | None = None
) -> dict[str, Any]:
    """A training config for the table: ``churned`` or, for regression, ``monthly_spend``."""
    features = dict(FEATURES)
    target = "churned"
    if task == "regression":
        target = "monthly_spend"
        del features["monthly_spend"]
    config: dict[str, Any] = {
        "model": "churn",
        "task": task,
        "dataset": {"source": str(churn_csv()), "target": target},
        "seed": 5,
        "features": features,
    }
    if entrypoint is not None:
        config["entrypoint"] = entrypoint
    else:
        config["estimator"] = estimator
        config["hyperparameters"] = SMALL.get(str(estimator), {})
    return config


@functools.cache
def trained_churn(
    estimator: str | None = None, *, task: str = "classification", entrypoint: str | None = None
) -> TrainingOutcome:
    """Train once per session and configuration."""
    config = churn_config(estimator, task=task, entrypoint=entrypoint)
    return train_from_config(parse_config(config))


def holdout_records(outcome: TrainingOutcome, n: int) -> list[dict[str, Any]]:
    """The first ``n`` holdout rows as JSON records: ``null`` gaps, booleans, integers."""
    specs = outcome.input_schema.features
    records = []
    for row in outcome.X_holdout[:n].tolist():
        record: dict[str, Any] = {}
        for spec, value in zip(specs, row, strict=True):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                record[spec.name] = None
            elif spec.dtype == "bool":
                record[spec.name] = bool(value)
            elif spec.dtype == "int":
                record[spec.name] = int(value)
            else:
                record[spec.name] = value
        records.append(record)
    return records
