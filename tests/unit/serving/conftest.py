"""Real models for the serving tests: scikit-learn estimators exported with skl2onnx."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from flywheel.artifacts import sha256_hex
from flywheel.registry.models import FeatureSpec, InputSchema, OutputSchema, Task

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Exported:
    """An estimator, its ONNX bytes and the schemas it would be registered with."""

    estimator: Any
    data: bytes
    sha256: str
    x: np.ndarray
    input_schema: InputSchema
    output_schema: OutputSchema

    def load_kwargs(self) -> dict[str, Any]:
        return {
            "expected_sha256": self.sha256,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
        }


def _export(
    estimator: Any, x: np.ndarray, names: list[str], dtype: str, output: OutputSchema
) -> Exported:
    tensor_type = FloatTensorType if dtype == "float32" else DoubleTensorType
    options = {"zipmap": False} if output.task is Task.CLASSIFICATION else None
    model = convert_sklearn(
        estimator, initial_types=[("input", tensor_type([None, x.shape[1]]))], options=options
    )
    data = bytes(model.SerializeToString())
    schema = InputSchema(
        features=tuple(FeatureSpec(name=n) for n in names),
        tensor_dtype=dtype,  # type: ignore[arg-type]
    )
    return Exported(estimator, data, sha256_hex(data), x, schema, output)


def _classifier_output(classes: np.ndarray) -> OutputSchema:
    return OutputSchema(
        task=Task.CLASSIFICATION,
        label_output="label",
        probability_output="probabilities",
        classes=tuple(str(c) for c in classes),
    )


@pytest.fixture(scope="session")
def iris_f32() -> Exported:
    """Three classes with integer labels, float32 input tensor."""
    data = load_iris()
    clf = LogisticRegression(max_iter=500).fit(data.data, data.target)
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in data.feature_names]
    return _export(clf, data.data, names, "float32", _classifier_output(clf.classes_))


@pytest.fixture(scope="session")
def iris_f64_strings() -> Exported:
    """Three classes with string labels, float64 input tensor."""
    data = load_iris()
    y = data.target_names[data.target]
    clf = LogisticRegression(max_iter=500).fit(data.data, y)
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in data.feature_names]
    return _export(clf, data.data, names, "float64", _classifier_output(clf.classes_))


@pytest.fixture(scope="session")
def cancer_f64() -> Exported:
    """Binary classifier on 30 features, float64 input tensor."""
    data = load_breast_cancer()
    clf = LogisticRegression(max_iter=5000).fit(data.data, data.target)
    names = [n.replace(" ", "_") for n in data.feature_names]
    return _export(clf, data.data, names, "float64", _classifier_output(clf.classes_))


@pytest.fixture(scope="session")
def diabetes_f64() -> Exported:
    """Regressor on 10 features, float64 input tensor."""
    data = load_diabetes()
    reg = LinearRegression().fit(data.data, data.target)
    output = OutputSchema(task=Task.REGRESSION, label_output="variable")
    return _export(reg, data.data, list(data.feature_names), "float64", output)
