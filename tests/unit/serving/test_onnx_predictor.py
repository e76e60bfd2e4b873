"""OnnxModel: verified loading and predictions a client would see."""

from __future__ import annotations

import statistics
import time

import numpy as np
import onnxruntime
import pytest

from flywheel.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    InvalidArtifactError,
    InvalidInputError,
)
from flywheel.registry.models import OutputSchema, Task
from flywheel.serving import OnnxModel, Prediction

# --- loading -------------------------------------------------------------------


def test_bytes_that_do_not_match_the_registered_digest_never_reach_onnxruntime(
    iris_f32, monkeypatch
):
    # Given onnxruntime sessions are being counted
    created: list[object] = []
    real_session = onnxruntime.InferenceSession

    def counting_session(*args, **kwargs):
        created.append(args)
        return real_session(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting_session)
    tampered = iris_f32.data[:-1] + bytes([iris_f32.data[-1] ^ 0xFF])

    # When tampered bytes are loaded against the registered digest
    model = None
    with pytest.raises(ArtifactIntegrityError) as caught:
        model = OnnxModel.load(tampered, **iris_f32.load_kwargs())

    # Then nothing was loaded and no session was ever created
    assert model is None
    assert created == []
    assert caught.value.code == "artifact_integrity"
    # ... while the genuine bytes do create a session
    OnnxModel.load(iris_f32.data, **iris_f32.load_kwargs())
    assert len(created) == 1


def test_session_is_tuned_for_lambda(iris_f32):
    model = OnnxModel.load(iris_f32.data, **iris_f32.load_kwargs())

    settings = model.settings
    assert 1 <= settings.intra_op_threads <= 2
    assert settings.inter_op_threads == 1
    assert settings.spinning is False
    assert settings.graph_optimization == "ORT_ENABLE_ALL"
    assert settings.providers == ("CPUExecutionProvider",)
    assert model.sha256 == iris_f32.sha256


def test_explicit_thread_count_is_used(iris_f32):
    model = OnnxModel.load(iris_f32.data, intra_op_threads=1, **iris_f32.load_kwargs())
    assert model.settings.intra_op_threads == 1


def test_zero_threads_is_a_caller_error(iris_f32):
    with pytest.raises(InvalidInputError) as caught:
        OnnxModel.load(iris_f32.data, intra_op_threads=0, **iris_f32.load_kwargs())
    assert caught.value.field == "intra_op_threads"


def test_bytes_onnxruntime_cannot_load_are_an_invalid_artifact(iris_f32):
    from flywheel.artifacts import sha256_hex

    garbage = b"definitely not onnx"
    kwargs = {**iris_f32.load_kwargs(), "expected_sha256": sha256_hex(garbage)}
    with pytest.raises(InvalidArtifactError) as caught:
        OnnxModel.load(garbage, **kwargs)
    assert "onnxruntime could not load" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tensor_name": "features"}, "input.name"),
        ({"tensor_dtype": "float64"}, "input.dtype"),
    ],
)
def test_a_model_that_disagrees_with_the_input_schema_is_refused(iris_f32, change, field):
    schema = iris_f32.input_schema.model_copy(update=change)
    kwargs = {**iris_f32.load_kwargs(), "input_schema": schema}
    with pytest.raises(InvalidArtifactError) as caught:
        OnnxModel.load(iris_f32.data, **kwargs)
    assert caught.value.field == field


def test_a_model_with_another_feature_count_is_refused(iris_f32, cancer_f64):
    kwargs = {
        **iris_f32.load_kwargs(),
        "input_schema": cancer_f64.input_schema.model_copy(update={"tensor_dtype": "float32"}),
    }
    with pytest.raises(InvalidArtifactError) as caught:
        OnnxModel.load(iris_f32.data, **kwargs)
    assert caught.value.field == "input.shape"


def test_a_missing_output_is_refused(iris_f32):
    output = iris_f32.output_schema.model_copy(update={"probability_output": "probs"})
    kwargs = {**iris_f32.load_kwargs(), "output_schema": output}
    with pytest.raises(InvalidArtifactError) as caught:
        OnnxModel.load(iris_f32.data, **kwargs)
    assert "'probs'" in str(caught.value)


def test_integer_labels_with_non_integer_classes_are_refused(iris_f32):
    output = iris_f32.output_schema.model_copy(update={"classes": ("a", "b", "c")})
    kwargs = {**iris_f32.load_kwargs(), "output_schema": output}
    with pytest.raises(InvalidArtifactError) as caught:
        OnnxModel.load(iris_f32.data, **kwargs)
    assert caught.value.field == "output.classes"


# --- predictions ---------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["iris_f32", "iris_f64_strings", "cancer_f64"])
def test_classifier_returns_registered_class_strings_and_probabilities(request, fixture):
    exported = request.getfixturevalue(fixture)
    model = OnnxModel.load(exported.data, **exported.load_kwargs())
    x = exported.x[::7]

    prediction = model.predict(x)

    expected_labels = tuple(str(c) for c in exported.estimator.predict(x))
    assert prediction.task is Task.CLASSIFICATION
    assert prediction.labels == expected_labels
    assert prediction.classes == exported.output_schema.classes
    assert prediction.probabilities is not None
    assert prediction.probabilities.shape == (len(x), len(prediction.classes))
    assert prediction.probabilities.dtype == np.float64
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        prediction.probabilities, exported.estimator.predict_proba(x), atol=1e-4
    )
    assert len(prediction) == len(x)


def test_string_labels_come_back_as_the_class_names(iris_f64_strings):
    model = OnnxModel.load(iris_f64_strings.data, **iris_f64_strings.load_kwargs())
    labels = model.predict(iris_f64_strings.x[[0, 60, 120]]).labels
    assert labels == ("setosa", "versicolor", "virginica")


def test_regressor_returns_floats(diabetes_f64):
    model = OnnxModel.load(diabetes_f64.data, **diabetes_f64.load_kwargs())
    x = diabetes_f64.x[:25]

    prediction = model.predict(x)

    assert prediction.task is Task.REGRESSION
    assert prediction.labels == ()
    assert prediction.probabilities is None
    assert prediction.values is not None
    assert prediction.values.shape == (25,)
    np.testing.assert_allclose(prediction.values, diabetes_f64.estimator.predict(x), rtol=1e-9)


def test_input_is_cast_to_the_schema_dtype(iris_f32):
    model = OnnxModel.load(iris_f32.data, **iris_f32.load_kwargs())
    as_float64 = iris_f32.x[:3].astype(np.float64)
    as_ints = np.array([[5, 3, 1, 0]])
    fortran = np.asfortranarray(iris_f32.x[:3])

    assert model.predict(as_float64).labels == ("0", "0", "0")
    assert model.predict(as_ints).labels == ("0",)
    assert model.predict(fortran).labels == ("0", "0", "0")


@pytest.mark.parametrize(
    "matrix",
    [np.zeros((1, 3)), np.zeros(4), np.zeros((0, 4)), np.zeros((1, 4, 1)), [["a", "b", "c", "d"]]],
)
def test_malformed_matrices_are_refused(iris_f32, matrix):
    model = OnnxModel.load(iris_f32.data, **iris_f32.load_kwargs())
    with pytest.raises(InvalidInputError) as caught:
        model.predict(matrix)
    assert caught.value.field == "matrix"


def test_outputs_are_read_only(iris_f32):
    model = OnnxModel.load(iris_f32.data, **iris_f32.load_kwargs())
    prediction = model.predict(iris_f32.x[:2])
    assert prediction.probabilities is not None
    with pytest.raises(ValueError, match="read-only"):
        prediction.probabilities[0, 0] = 1.0


def test_a_label_outside_the_registered_classes_is_refused(iris_f64_strings):
    # Given a schema that registered only two of the three classes the model knows
    output = OutputSchema(
        task=Task.CLASSIFICATION, label_output="label", classes=("setosa", "versicolor")
    )
    kwargs = {**iris_f64_strings.load_kwargs(), "output_schema": output}
    model = OnnxModel.load(iris_f64_strings.data, **kwargs)

    # Then predicting a virginica is an error instead of a silently wrong answer
    assert model.predict(iris_f64_strings.x[:1]).labels == ("setosa",)
    with pytest.raises(ArtifactError) as caught:
        model.predict(iris_f64_strings.x[120:121])
    assert caught.value.details["reason"] == "unknown_label"


def test_predict_records_and_to_records_round_trip(iris_f32):
    model = OnnxModel.load(iris_f32.data, **iris_f32.load_kwargs())
    names = iris_f32.input_schema.feature_names
    records = [dict(zip(names, row, strict=True)) for row in iris_f32.x[[0, 100]].tolist()]

    rows = model.predict_records(records).to_records()

    assert [r["label"] for r in rows] == ["0", "2"]
    assert set(rows[0]["probabilities"]) == {"0", "1", "2"}
    assert rows[0]["probabilities"]["0"] > 0.9


def test_regression_to_records(diabetes_f64):
    model = OnnxModel.load(diabetes_f64.data, **diabetes_f64.load_kwargs())
    (row,) = model.predict(diabetes_f64.x[:1]).to_records()
    assert row["value"] == pytest.approx(
        float(diabetes_f64.estimator.predict(diabetes_f64.x[:1])[0])
    )


def test_a_prediction_without_probabilities_has_labels_only():
    prediction = Prediction(task=Task.CLASSIFICATION, labels=("a",), classes=("a", "b"))
    assert prediction.to_records() == [{"label": "a"}]


def test_one_row_stays_in_the_tens_of_microseconds(cancer_f64):
    # Budget with generous slack for shared CI machines; typical is ~30 us.
    model = OnnxModel.load(cancer_f64.data, **cancer_f64.load_kwargs())
    names = cancer_f64.input_schema.feature_names
    record = [dict(zip(names, cancer_f64.x[0].tolist(), strict=True))]
    for _ in range(50):
        model.predict_records(record)

    timings = []
    for _ in range(300):
        start = time.perf_counter()
        model.predict_records(record)
        timings.append(time.perf_counter() - start)

    assert statistics.median(timings) < 500e-6
