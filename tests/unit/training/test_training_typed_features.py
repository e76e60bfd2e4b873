"""Typed features: preprocessing fitted by Flywheel, written into the ONNX graph, and the
served model answering raw records exactly as the reference transform + estimator do."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flywheel.errors import ConfigError, DatasetError, InvalidRecordsError
from flywheel.serving.predictor import OnnxModel
from flywheel.serving.validation import RecordValidator
from flywheel.training.config import parse_config
from flywheel.training.conversion import onnx_outputs
from flywheel.training.preprocessing import ColumnOptions, TextSettings, fit_preprocessor
from flywheel.training.trainer import train_from_config

NOTES = [
    "great service",
    "slow support, please help",
    "Cancel my account NOW!",
    "",
    "naïve café — très bien",
    "billing\nerror twice",
]


def _table(path: Path, n: int = 400, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["age,plan,active,note,label"]
    for _ in range(n):
        plan = str(rng.choice(["basic", "pro", "team"]))
        note = str(rng.choice(NOTES)).replace("\n", " ")
        age = "" if rng.random() < 0.1 else f"{rng.normal(40, 9):.1f}"
        active = str(rng.random() < 0.5).lower()
        label = (
            "yes" if (plan == "basic") ^ (rng.random() < 0.15) or "cancel" in note.lower() else "no"
        )
        lines.append(f'{age},{plan},{active},"{note}",{label}')
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(source: Path, estimator: str, **features: Any) -> Any:
    return parse_config(
        {
            "model": "churn",
            "task": "classification",
            "estimator": estimator,
            "seed": 3,
            "dataset": {"source": str(source), "target": "label"},
            "features": {"note": {"type": "text"}, **features},
        }
    )


@pytest.mark.parametrize(
    "estimator",
    [
        "logistic_regression",
        "random_forest",
        "gradient_boosting",
        "hist_gradient_boosting",
        "lightgbm",
        "xgboost",
    ],
)
@pytest.mark.parametrize(("analyzer", "ngrams"), [("word", [1, 2]), ("char", [2, 3])])
@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_every_estimator_reproduces_its_reference_on_raw_rows(
    tmp_path: Path, estimator: str, analyzer: str, ngrams: list[int], encoding: str
) -> None:
    config = _config(
        _table(tmp_path / "t.csv"),
        estimator,
        note={"type": "text", "text": {"analyzer": analyzer, "ngram_range": ngrams}},
        plan={"encoding": encoding},
        age={"indicator": True},
    )

    outcome = train_from_config(config)

    # Double precision throughout: TF-IDF counts are exact, weights and norm in float64
    assert outcome.parity.passed
    assert outcome.parity.precision == "float64"
    assert outcome.parity.label_agreement == 1.0
    assert outcome.parity.max_abs_diff <= 1e-12
    assert outcome.input_schema.typed
    assert [f.dtype for f in outcome.input_schema.features] == [
        "float",
        "categorical",
        "bool",
        "text",
    ]


def test_a_numeric_table_with_gaps_stays_float64_exact(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    rng = np.random.default_rng(1)
    rows = ["a,b,y"] + [
        f"{'' if rng.random() < 0.2 else round(rng.normal(), 3)},{rng.normal():.3f},"
        f"{'p' if rng.random() < 0.5 else 'q'}"
        for _ in range(300)
    ]
    path.write_text("\n".join(rows) + "\n")
    config = parse_config(
        {
            "model": "gaps",
            "task": "classification",
            "estimator": "logistic_regression",
            "dataset": {"source": str(path), "target": "y"},
        }
    )

    outcome = train_from_config(config)

    assert outcome.parity.precision == "float64"
    assert outcome.parity.max_abs_diff <= 1e-12
    assert outcome.input_schema.features[0].nullable
    assert not outcome.input_schema.features[1].nullable
    assert not outcome.input_schema.typed  # numbers only: one input, NaN where missing


def test_the_served_model_scores_raw_records_and_refuses_bad_ones_by_name(tmp_path: Path) -> None:
    outcome = train_from_config(
        _config(_table(tmp_path / "t.csv"), "logistic_regression", plan={"unknown": "error"})
    )
    model = OnnxModel.load(
        outcome.onnx_bytes,
        expected_sha256=hashlib.sha256(outcome.onnx_bytes).hexdigest(),
        input_schema=outcome.input_schema,
        output_schema=outcome.output_schema,
    )
    record = {"age": None, "plan": "basic", "active": True, "note": "Cancel my account"}

    served = model.predict_records([record])
    reference = outcome.estimator.predict_proba(
        fit_again(outcome).transform(
            np.array([[np.nan, "basic", True, "Cancel my account"]], dtype=object)
        )
    )
    assert served.probabilities is not None
    assert np.abs(served.probabilities - reference).max() < 1e-9
    validator = RecordValidator(outcome.input_schema)
    bad = [{**record, "plan": "gold"}, {**record, "note": "x" * 1001}, {**record, "active": "yes"}]
    with pytest.raises(InvalidRecordsError) as refused:
        validator.matrix(bad)
    assert [(e["row"], e["field"]) for e in refused.value.details["errors"]] == [
        (0, "plan"),
        (1, "note"),
        (2, "active"),
    ]


def fit_again(outcome: Any) -> Any:
    """The run's preprocessing, refitted on its training rows (deterministic)."""
    config = outcome.config
    from flywheel.training.trainer import _fit_preprocessor, load_configured_dataset, split_indices

    dataset = load_configured_dataset(config)
    train_idx, _ = split_indices(
        dataset.y, task=config.task, test_size=config.test_size, seed=config.seed
    )
    return _fit_preprocessor(config, dataset, dataset.X[train_idx])


def test_unknown_categories_under_other_are_scored_as_none_of_the_known_ones() -> None:
    rows = np.array([[1.0, "a"], [2.0, "b"], [np.nan, None]], dtype=object)
    pre = fit_preprocessor(rows, ["x", "c"], {"x": "float", "c": "categorical"})

    out = pre.transform(np.array([[5.0, "zzz"], [np.nan, None]], dtype=object))

    assert out.tolist() == [[5.0, 0.0, 0.0], [1.5, 0.0, 0.0]]


def test_text_onnx_matches_the_reference_on_empty_unicode_and_all_empty_batches() -> None:
    import onnx
    from sklearn.linear_model import LinearRegression

    from flywheel.registry.models import Task
    from flywheel.training.conversion import convert_to_onnx

    docs = np.array([[d] for d in NOTES * 5], dtype=object)
    for analyzer in ("word", "char"):
        pre = fit_preprocessor(
            docs,
            ["t"],
            {"t": "text"},
            {"t": ColumnOptions(text=TextSettings(analyzer=analyzer, ngram_range=(1, 2)))},
        )
        x = pre.transform(docs)
        fitted = LinearRegression().fit(x, np.arange(len(docs), dtype=float))
        model = pre.prepend_to(
            onnx.load_from_string(
                convert_to_onnx(fitted, task=Task.REGRESSION, n_features=pre.width).onnx_bytes
            )
        )
        for batch in (
            docs,
            np.array([[""], [""]], dtype=object),
            np.array([["ÀÉ ß"]], dtype=object),
        ):
            got = onnx_outputs(
                model.SerializeToString(), batch, task=Task.REGRESSION, split=pre.split
            )
            want = fitted.predict(pre.transform(batch))
            assert np.abs(got.values - want).max() < 1e-9, (analyzer, batch[:1])


def test_bad_feature_declarations_are_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"features\.note\.text"):
        parse_config(
            {
                "model": "m",
                "task": "classification",
                "estimator": "random_forest",
                "dataset": {"source": "t.csv", "target": "y"},
                "features": {"note": {"type": "text", "text": {"ngram_range": [3, 1]}}},
            }
        )
    with pytest.raises(ConfigError, match=r"features\.plan\.type"):
        parse_config(
            {
                "model": "m",
                "task": "classification",
                "estimator": "random_forest",
                "dataset": {"source": "t.csv", "target": "y"},
                "features": {"plan": {"type": "colour"}},
            }
        )
    source = _table(tmp_path / "t.csv", n=60)
    with pytest.raises(DatasetError, match=r"features\.nope: not a feature"):
        train_from_config(_config(source, "random_forest", nope={"type": "float"}))
    with pytest.raises(DatasetError, match="column 'plan' is declared float but holds"):
        train_from_config(_config(source, "random_forest", plan={"type": "float"}))


def _regression_table(path: Path, n: int = 400) -> Path:
    rng = np.random.default_rng(5)
    lines = ["size,plan,note,price"]
    for _ in range(n):
        plan = str(rng.choice(["basic", "pro", "team"]))
        note = str(rng.choice(NOTES)).replace("\n", " ")
        size = "" if rng.random() < 0.1 else f"{rng.uniform(10, 100):.1f}"
        price = 3 * float(size or 50) + {"basic": 0, "pro": 40, "team": 90}[plan]
        lines.append(f'{size},{plan},"{note}",{price + rng.normal(0, 5):.2f}')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "estimator",
    [
        "linear_regression",
        "ridge",
        "lasso",
        "elastic_net",
        "random_forest",
        "gradient_boosting",
        "hist_gradient_boosting",
        "lightgbm",
        "xgboost",
    ],
)
def test_every_regressor_reproduces_its_reference_on_raw_rows(
    tmp_path: Path, estimator: str
) -> None:
    config = parse_config(
        {
            "model": "price",
            "task": "regression",
            "estimator": estimator,
            "seed": 3,
            "dataset": {"source": str(_regression_table(tmp_path / "r.csv")), "target": "price"},
            "features": {"note": {"type": "text", "text": {"ngram_range": [1, 2]}}},
        }
    )

    outcome = train_from_config(config)

    assert outcome.parity.passed
    assert outcome.parity.precision == "float64"
    assert outcome.parity.max_abs_diff <= 1e-9 * (1 + float(np.abs(outcome.y_holdout).mean()))
    assert outcome.metrics["r2"] > 0.8


def test_data_validation_against_a_typed_models_profile_sees_the_same_features(
    tmp_path: Path,
) -> None:
    """The reference profiles a text feature as two derived numbers; validating the same
    table again must not call the text feature new nor the derived ones missing."""
    from flywheel.training.datasets import load_dataset
    from flywheel.training.validation import DataExpectations, validate_dataset

    source = _table(tmp_path / "t.csv")
    config = _config(source, "random_forest")
    outcome = train_from_config(config)
    again = load_dataset(str(source), target="label", types=config.declared_types)

    report = validate_dataset(again, DataExpectations(), reference=outcome.profile)

    features = next(r for r in report.results if r.check == "features")
    assert features.observed == "4 features as in the reference"
    assert report.passed
    assert not report.warnings
