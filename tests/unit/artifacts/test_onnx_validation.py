"""validate_onnx: what a registrar sees when a model is accepted or refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from flywheel.artifacts import validate_onnx
from flywheel.errors import InvalidArtifactError, InvalidInputError
from flywheel.registry.models import FeatureSpec, InputSchema, OutputSchema, Task

MakeModel = Callable[..., bytes]
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


# A valid hand-built model (variable = input @ W, 4 float32 features) and ways to break it.
REGRESSOR_SCHEMA = schema_for(4, "float32")
REGRESSOR_OUTPUT = OutputSchema(task=Task.REGRESSION, label_output="variable")


def _weights(name: str = "W") -> onnx.TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, [4, 1], np.ones(4, dtype=np.float32))


def build_model(
    *,
    nodes: list[onnx.NodeProto] | None = None,
    inputs: list[onnx.ValueInfoProto] | None = None,
    outputs: list[onnx.ValueInfoProto] | None = None,
    initializers: list[onnx.TensorProto] | None = None,
    opsets: list[tuple[str, int]] | None = None,
    functions: list[onnx.FunctionProto] | None = None,
) -> onnx.ModelProto:
    """``variable = input @ W``: a valid model unless a part is overridden."""
    graph = helper.make_graph(
        nodes if nodes is not None else [helper.make_node("MatMul", ["input", "W"], ["variable"])],
        "linear",
        inputs
        if inputs is not None
        else [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        outputs
        if outputs is not None
        else [helper.make_tensor_value_info("variable", TensorProto.FLOAT, ["N", 1])],
        initializers if initializers is not None else [_weights()],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in (opsets or [("", 17)])],
        functions=functions or [],
    )


def serialize(model: onnx.ModelProto) -> bytes:
    return bytes(model.SerializeToString())


@pytest.fixture
def make_model() -> MakeModel:
    def _make(**parts: Any) -> bytes:
        return serialize(build_model(**parts))

    return _make


def refused(data: bytes, input_schema=REGRESSOR_SCHEMA, output_schema=REGRESSOR_OUTPUT, **kw):
    with pytest.raises(InvalidArtifactError) as caught:
        validate_onnx(data, input_schema, output_schema, **kw)
    return caught.value


# --- accepted models --------------------------------------------------------


def test_sklearn_float32_classifier_is_accepted_with_a_summary(iris_classifier_f32, iris_schemas):
    summary = validate_onnx(iris_classifier_f32, *iris_schemas)

    assert summary.input_name == "input"
    assert summary.input_dtype == "float32"
    assert summary.n_features == 4
    assert summary.output_names == ("label", "probabilities")
    assert set(summary.opsets) == {"ai.onnx", "ai.onnx.ml"}
    assert summary.node_count >= 1
    assert summary.class_labels == ("0", "1", "2")
    assert summary.producer.startswith("skl2onnx")


def test_sklearn_float64_classifier_with_string_classes_is_accepted(iris_classifier_f64_strings):
    output = OutputSchema(
        task=Task.CLASSIFICATION, probability_output="probabilities", classes=IRIS_NAMES
    )
    summary = validate_onnx(
        iris_classifier_f64_strings, schema_for(4, "float64", names=IRIS_FEATURES), output
    )
    assert summary.input_dtype == "float64"


def test_sklearn_regressor_is_accepted(diabetes_regressor_f64):
    summary = validate_onnx(
        diabetes_regressor_f64,
        schema_for(10, "float64"),
        OutputSchema(task=Task.REGRESSION, label_output="variable"),
    )
    assert summary.output_names == ("variable",)
    assert summary.class_labels is None


def test_hand_built_model_is_accepted(make_model: MakeModel):
    assert validate_onnx(make_model(), REGRESSOR_SCHEMA, REGRESSOR_OUTPUT).node_count == 1


# --- bytes that are not a model ---------------------------------------------


@pytest.mark.parametrize("data", [b"not an onnx model at all", bytes(range(256)) * 4])
def test_garbage_bytes_are_refused(data):
    error = refused(data)
    assert "not an ONNX model" in str(error)
    assert error.code == "invalid_artifact"


def test_empty_bytes_are_refused():
    assert "empty" in str(refused(b""))


def test_oversized_model_is_refused_before_parsing(make_model: MakeModel):
    data = make_model()
    error = refused(data, max_bytes=len(data) - 1)
    assert error.field == "size_bytes"
    assert error.details == {"size_bytes": len(data), "max_bytes": len(data) - 1}


def test_non_positive_limit_is_a_caller_error(make_model: MakeModel):
    with pytest.raises(InvalidInputError):
        validate_onnx(make_model(), REGRESSOR_SCHEMA, REGRESSOR_OUTPUT, max_bytes=0)


# --- operator domains -------------------------------------------------------


def test_custom_domain_operator_is_refused(make_model: MakeModel):
    data = make_model(
        nodes=[
            helper.make_node("MatMul", ["input", "W"], ["mm"]),
            helper.make_node("Exfiltrate", ["mm"], ["variable"], domain="com.evil", name="leak"),
        ],
        opsets=[("", 17), ("com.evil", 1)],
    )
    error = refused(data)
    assert "com.evil" in str(error)


def test_custom_node_domain_without_opset_import_is_refused(make_model: MakeModel):
    data = make_model(
        nodes=[
            helper.make_node("MatMul", ["input", "W"], ["mm"]),
            helper.make_node("Exfiltrate", ["mm"], ["variable"], domain="com.evil", name="leak"),
        ]
    )
    error = refused(data)
    assert "'leak'" in str(error)
    assert "'Exfiltrate'" in str(error)
    assert "'com.evil'" in str(error)


def test_custom_domain_hidden_in_a_subgraph_is_refused(make_model: MakeModel):
    # Given an If node whose then-branch calls a custom-domain operator
    branch_out = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1])
    then_branch = helper.make_graph(
        [helper.make_node("Evil", ["mm"], ["b"], domain="com.evil", name="hidden")],
        "then",
        [],
        [branch_out],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["mm"], ["b"])], "else", [], [branch_out]
    )
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    data = make_model(
        nodes=[
            helper.make_node("MatMul", ["input", "W"], ["mm"]),
            helper.make_node(
                "If", ["cond"], ["variable"], then_branch=then_branch, else_branch=else_branch
            ),
        ],
        initializers=[_weights(), cond],
    )
    # Then validation finds it
    assert "'hidden'" in str(refused(data))


def test_model_local_functions_are_refused():
    function = helper.make_function(
        "com.local",
        "Double",
        ["x"],
        ["y"],
        [helper.make_node("Add", ["x", "x"], ["y"])],
        [helper.make_opsetid("", 17)],
    )
    data = serialize(build_model(functions=[function], opsets=[("", 17), ("com.local", 1)]))
    error = refused(data)
    assert error.field == "functions"
    assert "'Double'" in str(error)


# --- external data ----------------------------------------------------------


def _external(tensor: onnx.TensorProto, location: str = "../../etc/passwd") -> onnx.TensorProto:
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def test_external_initializer_is_refused(make_model: MakeModel):
    error = refused(make_model(initializers=[_external(_weights())]))
    assert error.field == "external_data"
    assert "initializer 'W'" in str(error)


def test_external_data_entries_are_refused_even_without_the_location_flag(make_model):
    tensor = _weights()
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    assert refused(make_model(initializers=[tensor])).field == "external_data"


def test_external_data_in_a_constant_attribute_is_refused(make_model: MakeModel):
    data = make_model(
        nodes=[
            helper.make_node("Constant", [], ["W"], value=_external(_weights()), name="const"),
            helper.make_node("MatMul", ["input", "W"], ["variable"]),
        ],
        initializers=[],
    )
    error = refused(data)
    assert error.field == "external_data"
    assert "'const'" in str(error)


# --- the ONNX checker -------------------------------------------------------


def test_unknown_standard_operator_is_refused_by_the_checker(make_model: MakeModel):
    data = make_model(nodes=[helper.make_node("NotAnOp", ["input", "W"], ["variable"])])
    error = refused(data)
    assert "checker" in str(error)
    # our message, not the library's text
    assert "No Op registered" not in str(error)


def test_inconsistent_shapes_are_refused_by_the_full_check(make_model: MakeModel):
    bad_weights = helper.make_tensor("W", TensorProto.FLOAT, [3, 1], [1.0, 1.0, 1.0])
    assert "checker" in str(refused(make_model(initializers=[bad_weights])))


# --- input ------------------------------------------------------------------


def test_wrong_input_name_is_refused(make_model: MakeModel):
    schema = REGRESSOR_SCHEMA.model_copy(update={"tensor_name": "features"})
    error = refused(make_model(), input_schema=schema)
    assert error.field == "input.name"
    assert "'input'" in str(error)
    assert "'features'" in str(error)


def test_wrong_input_dtype_is_refused(make_model: MakeModel):
    error = refused(make_model(), input_schema=schema_for(4, "float64"))
    assert error.field == "input.dtype"
    assert "float32" in str(error)
    assert "float64" in str(error)


def test_wrong_feature_count_is_refused(make_model: MakeModel):
    error = refused(make_model(), input_schema=schema_for(5, "float32"))
    assert error.field == "input.shape"
    assert "4 features" in str(error)
    assert "declares 5" in str(error)


def test_fixed_batch_dimension_is_refused(make_model: MakeModel):
    data = make_model(inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])])
    error = refused(data)
    assert error.field == "input.shape"
    assert "batch" in str(error)


def test_rank_one_input_is_refused(make_model: MakeModel):
    data = make_model(
        nodes=[helper.make_node("Identity", ["input"], ["variable"])],
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, [4])],
        outputs=[helper.make_tensor_value_info("variable", TensorProto.FLOAT, [4])],
        initializers=[],
    )
    assert "rank 1" in str(refused(data))


def test_two_inputs_are_refused(make_model: MakeModel):
    data = make_model(
        nodes=[helper.make_node("MatMul", ["input", "other"], ["variable"])],
        inputs=[
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("other", TensorProto.FLOAT, [4, 1]),
        ],
        initializers=[],
    )
    error = refused(data)
    assert error.field == "input"
    assert "['input', 'other']" in str(error)


# --- outputs ----------------------------------------------------------------


def test_missing_label_output_is_refused(make_model: MakeModel):
    output = OutputSchema(task=Task.REGRESSION, label_output="prediction")
    error = refused(make_model(), output_schema=output)
    assert "'prediction'" in str(error)
    assert "['variable']" in str(error)


def test_missing_probability_output_is_refused(iris_classifier_f32, iris_schemas):
    ins, outs = iris_schemas
    outs = outs.model_copy(update={"probability_output": "probs"})
    assert "no output 'probs'" in str(refused(iris_classifier_f32, ins, outs))


def test_zipmap_probabilities_are_refused_with_a_hint(iris_classifier_zipmap, iris_schemas):
    ins, outs = iris_schemas
    outs = outs.model_copy(
        update={"label_output": "output_label", "probability_output": "output_probability"}
    )
    error = refused(iris_classifier_zipmap, ins, outs)
    assert "zipmap" in str(error)


def test_probability_columns_must_match_the_declared_classes(iris_classifier_f32, iris_schemas):
    ins, outs = iris_schemas
    outs = outs.model_copy(update={"classes": ("0", "1")})
    assert "3 columns" in str(refused(iris_classifier_f32, ins, outs))


def test_classes_in_the_wrong_order_are_refused(iris_classifier_f32, iris_schemas):
    ins, outs = iris_schemas
    outs = outs.model_copy(update={"classes": ("2", "1", "0")})
    error = refused(iris_classifier_f32, ins, outs)
    assert error.field == "output.classes"
    assert error.details["model_classes"] == ["0", "1", "2"]


def test_float_label_for_a_classifier_is_refused(make_model: MakeModel):
    output = OutputSchema(task=Task.CLASSIFICATION, label_output="variable", classes=("a", "b"))
    error = refused(make_model(), output_schema=output)
    assert "classification label" in str(error)


def test_regressor_with_integer_output_is_refused(iris_classifier_f32, iris_schemas):
    ins, _ = iris_schemas
    output = OutputSchema(task=Task.REGRESSION, label_output="label")
    assert "int64" in str(refused(iris_classifier_f32, ins, output))
