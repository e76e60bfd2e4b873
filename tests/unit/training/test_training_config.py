"""Training configs: YAML/JSON/TOML loading and errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flywheel.errors import ConfigError
from flywheel.registry.models import Task
from flywheel.training.config import TrainingConfig, load_config, parse_config
from flywheel.training.estimators import Estimator

VALID: dict[str, Any] = {
    "model": "cancer",
    "task": "classification",
    "dataset": {"source": "sklearn:breast_cancer"},
    "estimator": "random_forest",
    "hyperparameters": {"n_estimators": 20, "max_depth": 4},
    "seed": 7,
    "test_size": 0.3,
    "description": "baseline forest",
}

YAML = """\
model: cancer
task: classification
dataset:
  source: "sklearn:breast_cancer"
estimator: random_forest
hyperparameters:
  n_estimators: 20
  max_depth: 4
seed: 7
test_size: 0.3
description: baseline forest
"""

TOML = """\
model = "cancer"
task = "classification"
estimator = "random_forest"
seed = 7
test_size = 0.3
description = "baseline forest"

[dataset]
source = "sklearn:breast_cancer"

[hyperparameters]
n_estimators = 20
max_depth = 4
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [("c.yaml", YAML), ("c.yml", YAML), ("c.json", json.dumps(VALID)), ("c.toml", TOML)],
)
def test_yaml_json_and_toml_give_the_same_config(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)

    config = load_config(path)

    assert config == TrainingConfig.model_validate(VALID)
    assert config.estimator is Estimator.RANDOM_FOREST
    assert config.task is Task.CLASSIFICATION
    assert config.parity.float64_max_abs_diff == 1e-5


def test_the_lineage_dump_validates_back_to_the_same_config() -> None:
    config = parse_config(VALID)

    stored = json.loads(json.dumps(config.model_dump(mode="json")))

    assert TrainingConfig.model_validate(stored) == config
    assert parse_config(stored) == config


def test_a_relative_dataset_path_is_resolved_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "churn.yaml"
    path.write_text(
        "model: churn\ntask: classification\nestimator: logistic_regression\n"
        "dataset: {source: ../data/churn.csv, target: churned}\n"
    )

    config = load_config(path)

    assert Path(config.dataset.source) == tmp_path / "configs" / "../data/churn.csv"


def _error_for(**changes: Any) -> ConfigError:
    data = {**VALID, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"model": "Bad Name"}, "model", "invalid model name"),
        ({"dataset": {"source": "sklearn:mnist"}}, "dataset.source", "unknown bundled dataset"),
        ({"dataset": {"source": "data.xlsx"}}, "dataset.source", ".csv or .parquet"),
        ({"dataset": {"source": "https://x/y.csv"}}, "dataset.source", "s3://bucket/key"),
        ({"dataset": {"source": "s3://bucket-name/k.txt"}}, "dataset.source", ".csv or .parquet"),
        ({"dataset": {"source": "data.csv"}}, "dataset.target", "target column"),
        (
            {"dataset": {"source": "d.csv", "target": "y", "features": ["a", "a"]}},
            "dataset.features",
            "duplicate",
        ),
        (
            {"dataset": {"source": "d.csv", "target": "y", "features": ["a", "y"]}},
            "dataset.features",
            "also listed as a feature",
        ),
        ({"dataset": {"source": "sklearn:diabetes"}}, "dataset.source", "regression dataset"),
        ({"estimator": "linear_regression"}, "estimator", "does not do classification"),
        ({"estimator": "catboost"}, "estimator", "Input should be"),
        ({"task": "ranking"}, "task", "Input should be"),
        (
            {"hyperparameters": {"n_estimatorz": 10}},
            "hyperparameters.n_estimatorz",
            "no parameter 'n_estimatorz'",
        ),
        (
            {"hyperparameters": {"n_estimators": -1}},
            "hyperparameters.n_estimators",
            "invalid value -1",
        ),
        (
            {"hyperparameters": {"random_state": 3}},
            "hyperparameters.random_state",
            "seed",
        ),
        ({"test_size": 0.95}, "test_size", "less than 0.9"),
        ({"test_size": 0}, "test_size", "greater than 0"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        (
            {"parity": {"float64_max_abs_diff": -1}},
            "parity.float64_max_abs_diff",
            "greater than or",
        ),
        ({"precision": "float16"}, "precision", "Input should be"),
        ({"feature_ranges": {"x": {"minimum": 2, "maximum": 1}}}, "feature_ranges.x", "> maximum"),
        ({"colour": "blue"}, "colour", "Extra inputs"),
        ({"owner": "  "}, "owner", "at least 1 character"),
        ({"intended_use": "x" * 4001}, "intended_use", "at most 4000 characters"),
        ({"limitations": ["fine", ""]}, "limitations.1", "at least 1 character"),
        ({"limitations": {"a": "b"}}, "limitations", "valid tuple"),
        ({"limitations": ["x"] * 51}, "limitations", "at most 50 items"),
    ],
)
def test_config_errors_name_the_field(changes: dict[str, Any], field: str, fragment: str) -> None:
    error = _error_for(**changes)

    assert error.field == field
    message = str(error)
    assert message.startswith(f"{field}: ")
    assert "\n" not in message
    assert fragment in message


def test_owner_intended_use_and_limitations_are_kept_with_the_lineage() -> None:
    config = parse_config(
        {**VALID, "owner": " oncology-ml ", "intended_use": "second opinion",
         "limitations": "one hospital's patients"}
    )  # fmt: skip

    assert config.owner == "oncology-ml"
    assert config.limitations == ("one hospital's patients",)  # one string is one item
    # what lineage stores reads back the same (the model card reads it from there)
    assert parse_config(config.model_dump(mode="json")) == config


def test_logistic_regression_is_refused_for_regression() -> None:
    error = _error_for(
        task="regression",
        estimator="logistic_regression",
        dataset={"source": "sklearn:diabetes"},
        hyperparameters={},
    )

    assert error.field == "estimator"
    assert str(error) == "estimator: logistic_regression does not do regression"


def test_several_problems_are_all_listed_in_details() -> None:
    error = _error_for(model="BAD", seed=-3)

    assert str(error).endswith("(and 1 more)")
    assert [e["field"] for e in error.details["errors"]] == ["model", "seed"]


def test_a_missing_required_field_is_named() -> None:
    data = {k: v for k, v in VALID.items() if k != "estimator"}

    with pytest.raises(ConfigError, match=r"^estimator: name an estimator, or an entrypoint"):
        parse_config(data)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.yaml", "model: [unclosed\n", "config: invalid YAML at line 2"),
        ("c.json", '{"model": }', "config: invalid JSON at line 1, column 11"),
        ("c.toml", "model = \n", "config: c.toml is not valid TOML"),
        ("c.yaml", "- just\n- a list\n", "config: the top level must be a mapping"),
        ("c.ini", "[x]", "config: c.ini is not .yaml, .yml, .json or .toml"),
    ],
)
def test_unreadable_files_give_one_line_config_errors(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value) == message
    assert caught.value.field == "config"


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config: file not found"):
        load_config(tmp_path / "nope.yaml")
