"""``entrypoint:`` in a training config: the user's code builds the model, Flywheel the rest."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from flywheel.errors import ConfigError, TrainingError
from flywheel.sdk import Flywheel
from flywheel.training.config import parse_config

USER_CODE = """
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build(C=1.0):
    return Pipeline([
        ("scale", StandardScaler()),
        ("pca", PCA(n_components=5, svd_solver="randomized")),
        ("model", LogisticRegression(C=C, max_iter=2000)),
    ])


def forest():
    forest = RandomForestClassifier(n_estimators=8)
    return Pipeline([("scale", StandardScaler()), ("model", forest)])


class Clip(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.clip(X, -3, 3)


def clipped():
    return Pipeline([("clip", Clip()), ("model", LogisticRegression(max_iter=2000))])


def regressor():
    from sklearn.linear_model import LinearRegression
    return LinearRegression()


def broken():
    raise RuntimeError("no model today")


def not_a_model():
    return "a string"


NOT_CALLABLE = 42
"""


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A user package in its own folder, under a name no other test imports."""
    folder = tmp_path_factory.mktemp("user-code")
    name = f"userpkg_{uuid.uuid4().hex[:8]}"
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text('__version__ = "2.1.0"\n')
    (folder / name / "models.py").write_text(textwrap.dedent(USER_CODE))
    return folder, name


@pytest.fixture
def user_package(package_dir: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run from the folder that holds the package, as a user would."""
    monkeypatch.chdir(package_dir[0])
    return package_dir[1]


def _config(entrypoint: str, **overrides: Any) -> dict[str, Any]:
    return {
        "model": "cancer",
        "task": "classification",
        "dataset": {"source": "sklearn:breast_cancer"},
        "entrypoint": entrypoint,
        "seed": 5,
        **overrides,
    }


def test_an_entrypoint_model_is_trained_converted_and_registered(user_package: str) -> None:
    fw = Flywheel.in_memory(actor="ana")

    report = fw.train_from_dict(
        _config(f"{user_package}.models:build", hyperparameters={"C": 0.5}), reason="pca"
    )

    version = report.version
    assert version.status == "pending_approval"
    assert version.parity is not None
    assert version.parity.passed
    assert version.parity.precision == "float64"
    assert version.metrics["accuracy"] > 0.9
    assert version.hyperparameters["C"] == 0.5
    lineage = version.lineage
    assert lineage.entrypoint is not None
    assert lineage.entrypoint.spec == f"{user_package}.models:build"
    assert lineage.entrypoint.package_version == "2.1.0"
    assert lineage.training_config["entrypoint"] == f"{user_package}.models:build"
    assert [e.action for e in fw.audit_entries("cancer")] == [
        "version_registered",
        "approval_requested",
    ]


def test_every_random_state_in_the_pipeline_comes_from_the_seed(user_package: str) -> None:
    from flywheel.training.entrypoints import build_model

    model = build_model(parse_config(_config(f"{user_package}.models:build", seed=11)))

    assert model.named_steps["pca"].random_state == 11
    assert model.named_steps["model"].random_state == 11


def test_reproduce_re_runs_the_entrypoint_and_matches(user_package: str) -> None:
    fw = Flywheel.in_memory(actor="ana")
    fw.train_from_dict(_config(f"{user_package}.models:build"))

    report = fw.reproduce("cancer", 1)

    assert report.reproduced
    assert report.onnx_sha256_match


def test_a_tree_behind_preprocessing_falls_back_to_float32_and_says_why(
    user_package: str,
) -> None:
    fw = Flywheel.in_memory(actor="ana")

    version = fw.train_from_dict(_config(f"{user_package}.models:forest")).version

    assert version.parity is not None
    assert version.parity.precision == "float32"
    assert version.parity.passed
    assert version.input_schema.tensor_dtype == "float32"


@pytest.mark.parametrize(
    ("entrypoint", "error", "says"),
    [
        ("nosuchpkg_xyz.models:build", ConfigError, "no module named 'nosuchpkg_xyz'"),
        ("{pkg}.models:missing", ConfigError, "has no attribute 'missing'"),
        ("{pkg}.models:NOT_CALLABLE", ConfigError, "is not callable"),
        ("{pkg}.models:not_a_model", ConfigError, "has no fit()"),
        ("{pkg}.models:broken", ConfigError, "raised RuntimeError"),
        ("{pkg}.models:regressor", ConfigError, "without predict_proba()"),
        ("{pkg}.models:clipped", TrainingError, "no converter for Clip (step 'clip')"),
    ],
)
def test_a_bad_entrypoint_is_refused_naming_it_and_nothing_is_registered(
    user_package: str, entrypoint: str, error: type[Exception], says: str
) -> None:
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(error) as raised:
        fw.train_from_dict(_config(entrypoint.format(pkg=user_package)))

    assert str(raised.value).startswith("entrypoint: ")
    assert says in str(raised.value)
    assert "\n" not in str(raised.value)
    assert fw.list_models().items == []


def test_a_hyperparameter_the_entrypoint_does_not_take_is_named(user_package: str) -> None:
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(ConfigError, match=r"^hyperparameters\.gamma: "):
        fw.train_from_dict(_config(f"{user_package}.models:build", hyperparameters={"gamma": 1}))

    assert fw.list_models().items == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"estimator": "random_forest"}, "entrypoint"),
        ({"entrypoint": None}, "estimator"),
        ({"entrypoint": "not a path"}, "entrypoint"),
    ],
)
def test_the_config_takes_exactly_one_well_formed_way_to_build(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**_config("pkg.models:build"), **changes})

    assert raised.value.field == field


def test_a_classifier_for_a_regression_config_is_refused() -> None:
    config = {
        "model": "diabetes",
        "task": "regression",
        "dataset": {"source": "sklearn:diabetes"},
        "entrypoint": "sklearn.linear_model:LogisticRegression",
    }
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(ConfigError, match=r"^entrypoint: .* returned a classifier"):
        fw.train_from_dict(config)

    assert fw.list_models().items == []
