"""Real skl2onnx exports for the validation tests (built once per session)."""

from __future__ import annotations

import numpy as np
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from flywheel.registry.models import FeatureSpec, InputSchema, OutputSchema, Task

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_NAMES = ("setosa", "versicolor", "virginica")


def schema_for(
    n_features: int, dtype: str = "float32", *, names: tuple[str, ...] | None = None
) -> InputSchema:
    names = names or tuple(f"f{i}" for i in range(n_features))
    return InputSchema(
        features=tuple(FeatureSpec(name=n) for n in names),
        tensor_dtype=dtype,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def iris_classifier_f32() -> bytes:
    """LogisticRegression on iris, float32 input, integer labels 0/1/2, no ZipMap."""
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    model = convert_sklearn(
        clf, initial_types=[("input", FloatTensorType([None, 4]))], options={"zipmap": False}
    )
    return bytes(model.SerializeToString())


@pytest.fixture(scope="session")
def iris_classifier_f64_strings() -> bytes:
    """LogisticRegression on iris with string classes, float64 input."""
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(x, np.array(IRIS_NAMES)[y])
    model = convert_sklearn(
        clf, initial_types=[("input", DoubleTensorType([None, 4]))], options={"zipmap": False}
    )
    return bytes(model.SerializeToString())


@pytest.fixture(scope="session")
def iris_classifier_zipmap() -> bytes:
    """The skl2onnx default: probabilities as a sequence of maps (ZipMap)."""
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    model = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 4]))])
    return bytes(model.SerializeToString())


@pytest.fixture(scope="session")
def diabetes_regressor_f64() -> bytes:
    x, y = load_diabetes(return_X_y=True)
    model = convert_sklearn(
        LinearRegression().fit(x, y), initial_types=[("input", DoubleTensorType([None, 10]))]
    )
    return bytes(model.SerializeToString())


@pytest.fixture
def iris_schemas() -> tuple[InputSchema, OutputSchema]:
    return (
        schema_for(4, "float32", names=IRIS_FEATURES),
        OutputSchema(
            task=Task.CLASSIFICATION,
            label_output="label",
            probability_output="probabilities",
            classes=("0", "1", "2"),
        ),
    )
