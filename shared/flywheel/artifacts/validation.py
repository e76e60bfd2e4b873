"""Refuse ONNX files that are unsafe or do not match the registered schema.

Runs at registration time (training path).  ``onnx`` is imported lazily: it
belongs to the ``training`` extra and never ships in the serving Lambda.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from flywheel.errors import ArtifactError, InvalidArtifactError, InvalidInputError
from flywheel.models import Frozen
from flywheel.registry.models import InputSchema, OutputSchema, Task

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

__all__ = ["ALLOWED_DOMAINS", "DEFAULT_MAX_BYTES", "OnnxSummary", "validate_onnx"]

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
#: Operator domains a model may use: the standard ONNX and ONNX-ML operator sets.
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
#: Operators outside those sets that a model may still use: onnxruntime's tokenizer,
#: which text features need (``flywheel.training.preprocessing``).
ALLOWED_CONTRIB_OPS = frozenset({("com.microsoft", "Tokenizer")})

# onnx.TensorProto.DataType values, so the module needs no onnx import to load.
_FLOAT, _INT32, _STRING, _INT64, _DOUBLE = 1, 6, 8, 7, 11
_ELEM_BY_DTYPE = {"float32": _FLOAT, "float64": _DOUBLE}
_DTYPE_NAMES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
}
_LABEL_ELEMS = frozenset({_INT64, _INT32, _STRING})
_NUMBER_ELEMS = frozenset({_FLOAT, _DOUBLE})
_CLASS_LABEL_ATTRIBUTES = frozenset(
    {"classlabels_ints", "classlabels_int64s", "classlabels_strings"}
)


class OnnxSummary(Frozen):
    """What a validated ONNX model looks like from the outside.

    Examples
    --------
    >>> OnnxSummary(
    ...     ir_version=8, opsets={"ai.onnx": 17}, input_name="input", input_dtype="float32",
    ...     n_features=4, output_names=("label", "probabilities"), node_count=2,
    ... ).n_features
    4
    """

    ir_version: int
    producer: str = ""
    opsets: dict[str, int]
    input_name: str
    input_dtype: Literal["float32", "float64"]
    n_features: int
    output_names: tuple[str, ...]
    node_count: int
    class_labels: tuple[str, ...] | None = None


def validate_onnx(
    data: bytes,
    input_schema: InputSchema,
    output_schema: OutputSchema,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> OnnxSummary:
    """Check an ONNX model before it can be registered.

    In order: size limit; parses as an ONNX ``ModelProto``; no model-local
    functions or training graphs; no external data (anywhere, including
    subgraphs and constant attributes); only the ``""``/``ai.onnx`` and
    ``ai.onnx.ml`` operator domains (opset imports and every node, including
    subgraphs); ``onnx.checker.check_model(full_check=True)``; exactly one
    input named ``input_schema.tensor_name`` of ``tensor_dtype`` with shape
    ``[batch, len(features)]`` and a dynamic batch dimension; the declared
    label (and probability) outputs exist with usable types; a classifier's
    built-in class labels equal ``output_schema.classes``, in order.

    Parameters
    ----------
    data
        The serialized model.
    input_schema, output_schema
        What the version is being registered with.
    max_bytes
        Largest model accepted.

    Returns
    -------
    OnnxSummary
        Opsets, input/output names, node count and class labels.

    Raises
    ------
    InvalidArtifactError
        The first problem found, named in the message (and ``field``).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from flywheel.registry.models import FeatureSpec
    >>> from flywheel.training.conversion import convert_to_onnx
    >>> fitted = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], ["no", "no", "yes", "yes"])
    >>> onnx_bytes = convert_to_onnx(fitted, task=Task.CLASSIFICATION, n_features=1).onnx_bytes
    >>> input_schema = InputSchema(features=(FeatureSpec(name="x"),))
    >>> output_schema = OutputSchema(
    ...     task=Task.CLASSIFICATION, probability_output="probabilities", classes=("no", "yes")
    ... )
    >>> summary = validate_onnx(onnx_bytes, input_schema, output_schema)
    >>> summary.output_names
    ('label', 'probabilities')
    >>> validate_onnx(b"garbage", input_schema, output_schema)
    Traceback (most recent call last):
    ...
    flywheel.errors.InvalidArtifactError: not an ONNX model: the bytes do not parse as a ModelProto
    """
    if max_bytes < 1:
        raise InvalidInputError("max_bytes must be positive", field="max_bytes")
    if not data:
        raise InvalidArtifactError("the ONNX model is empty", field="artifact")
    if len(data) > max_bytes:
        raise InvalidArtifactError(
            f"the ONNX model is {len(data)} bytes, more than the limit of {max_bytes}",
            field="size_bytes",
            details={"size_bytes": len(data), "max_bytes": max_bytes},
        )
    onnx = _import_onnx()
    model = _parse(onnx, data)
    if len(model.functions) > 0:
        raise InvalidArtifactError(
            "model-local functions are not allowed "
            f"(found {', '.join(repr(f.name) for f in model.functions)})",
            field="functions",
        )
    if len(model.training_info) > 0:
        raise InvalidArtifactError("training graphs (training_info) are not allowed", field="graph")
    graphs = list(_walk_graphs(model.graph))
    _refuse_external_data(onnx, graphs)
    opsets = _check_domains(model, graphs)
    _run_checker(onnx, model)
    n_features = _check_input(model.graph, input_schema)
    outputs = _check_outputs(model.graph, output_schema)
    class_labels = _check_class_labels(model.graph, output_schema)
    return OnnxSummary(
        ir_version=int(model.ir_version),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        opsets=opsets,
        input_name=input_schema.tensor_name,
        input_dtype=input_schema.tensor_dtype,
        n_features=n_features,
        output_names=outputs,
        node_count=sum(len(g.node) for g in graphs),
        class_labels=class_labels,
    )


def _import_onnx() -> ModuleType:
    try:
        import onnx
        import onnx.checker
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ArtifactError(
            "validating ONNX models needs the 'onnx' package (install flywheel-mlops[training])"
        ) from err
    return onnx


def _parse(onnx: ModuleType, data: bytes) -> Any:
    model = onnx.ModelProto()
    try:
        # ParseFromString reads only these bytes: no file access, no external data.
        model.ParseFromString(data)
    except Exception as err:
        raise InvalidArtifactError(
            "not an ONNX model: the bytes do not parse as a ModelProto", field="artifact"
        ) from err
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise InvalidArtifactError("not an ONNX model: it has no graph", field="graph")
    return model


def _walk_graphs(graph: Any) -> Iterator[Any]:
    """The graph and every subgraph nested in node attributes (If, Loop, Scan...)."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _walk_graphs(attribute.g)
            for sub in attribute.graphs:
                yield from _walk_graphs(sub)


def _tensors(graph: Any) -> Iterator[tuple[str, Any]]:
    """Every tensor stored in one graph: initializers and tensor-valued attributes."""
    for tensor in graph.initializer:
        yield f"initializer {tensor.name!r}", tensor
    for sparse in graph.sparse_initializer:
        yield f"sparse initializer {sparse.values.name!r}", sparse.values
        yield f"sparse initializer {sparse.values.name!r}", sparse.indices
    for node in graph.node:
        where = f"attribute of node {node.name or node.op_type!r}"
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield where, attribute.t
            yield from ((where, t) for t in attribute.tensors)
            if attribute.HasField("sparse_tensor"):
                yield where, attribute.sparse_tensor.values
                yield where, attribute.sparse_tensor.indices
            for sparse in attribute.sparse_tensors:
                yield where, sparse.values
                yield where, sparse.indices


def _refuse_external_data(onnx: ModuleType, graphs: list[Any]) -> None:
    external = onnx.TensorProto.EXTERNAL
    for graph in graphs:
        for where, tensor in _tensors(graph):
            if tensor.data_location == external or len(tensor.external_data) > 0:
                raise InvalidArtifactError(
                    f"external tensor data is not allowed ({where}): "
                    "a model must be one self-contained file",
                    field="external_data",
                )


def _check_domains(model: Any, graphs: list[Any]) -> dict[str, int]:
    opsets: dict[str, int] = {}
    contrib = {domain for domain, _ in ALLOWED_CONTRIB_OPS}
    for opset in model.opset_import:
        if opset.domain not in ALLOWED_DOMAINS | contrib:
            raise InvalidArtifactError(
                f"opset domain {opset.domain!r} is not allowed "
                "(only '' / 'ai.onnx' and 'ai.onnx.ml')",
                field="opset_import",
            )
        name = opset.domain or "ai.onnx"
        opsets[name] = max(opsets.get(name, 0), int(opset.version))
    for graph in graphs:
        for node in graph.node:
            if node.domain not in ALLOWED_DOMAINS and (
                (node.domain, node.op_type) not in ALLOWED_CONTRIB_OPS
            ):
                raise InvalidArtifactError(
                    f"node {node.name or '(unnamed)'!r} uses operator {node.op_type!r} from "
                    f"domain {node.domain!r}; only '' / 'ai.onnx' and 'ai.onnx.ml' are allowed",
                    field="graph",
                )
    return opsets


def _run_checker(onnx: ModuleType, model: Any) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:
        # The checker's own text stays in the exception chain for operators.
        raise InvalidArtifactError(
            "the ONNX checker rejected the model (invalid structure, unknown operator "
            "or inconsistent types)",
            field="graph",
            details={"check": "onnx.checker.full_check"},
        ) from err


def _elem_name(elem_type: int) -> str:
    return _DTYPE_NAMES.get(elem_type, f"type {elem_type}")


def _check_typed_inputs(graph: Any, schema: InputSchema) -> int:
    """A model with preprocessing: ``input`` (numbers, if any) and ``strings``."""
    initializers = {t.name for t in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in initializers}
    expected = {schema.string_tensor_name: (_STRING, len(schema.string_features))}
    if schema.numeric_features:
        expected[schema.tensor_name] = (
            _ELEM_BY_DTYPE[schema.tensor_dtype],
            len(schema.numeric_features),
        )
    if set(inputs) != set(expected):
        raise InvalidArtifactError(
            f"the model takes inputs {sorted(inputs)}, the schema declares {sorted(expected)}",
            field="input",
        )
    for name, (elem, width) in expected.items():
        tensor = inputs[name].type.tensor_type
        dims = list(tensor.shape.dim) if tensor.HasField("shape") else []
        ok_width = len(dims) == 2 and dims[1].WhichOneof("value") == "dim_value"
        if tensor.elem_type != elem or not ok_width or dims[1].dim_value != width:
            raise InvalidArtifactError(
                f"input {name!r} does not match the schema ({_elem_name(elem)} [batch, {width}])",
                field=f"input.{name}",
            )
        if dims[0].WhichOneof("value") == "dim_value":
            raise InvalidArtifactError(
                f"input {name!r} has a fixed batch size; the batch dimension must be dynamic",
                field="input.shape",
            )
    return len(schema.features)


def _check_input(graph: Any, schema: InputSchema) -> int:
    if schema.typed:
        return _check_typed_inputs(graph, schema)
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    names = [i.name for i in inputs]
    if len(inputs) != 1:
        raise InvalidArtifactError(
            f"the model must take exactly one input, it takes {len(inputs)}: {names}",
            field="input",
        )
    (value,) = inputs
    if value.name != schema.tensor_name:
        raise InvalidArtifactError(
            f"the model input is named {value.name!r}, the schema declares {schema.tensor_name!r}",
            field="input.name",
        )
    if not value.type.HasField("tensor_type"):
        raise InvalidArtifactError(f"input {value.name!r} must be a tensor", field="input.type")
    tensor = value.type.tensor_type
    if tensor.elem_type != _ELEM_BY_DTYPE[schema.tensor_dtype]:
        raise InvalidArtifactError(
            f"input {value.name!r} is {_elem_name(tensor.elem_type)}, the schema declares "
            f"{schema.tensor_dtype}",
            field="input.dtype",
        )
    dims = list(tensor.shape.dim) if tensor.HasField("shape") else []
    n_features = len(schema.features)
    if len(dims) != 2:
        raise InvalidArtifactError(
            f"input {value.name!r} must have shape [batch, {n_features}], it has rank {len(dims)}",
            field="input.shape",
        )
    batch, width = dims
    if batch.WhichOneof("value") == "dim_value":
        raise InvalidArtifactError(
            f"input {value.name!r} has a fixed batch size of {batch.dim_value}; "
            "the batch dimension must be dynamic (None or a symbolic name)",
            field="input.shape",
        )
    if width.WhichOneof("value") != "dim_value" or width.dim_value != n_features:
        got = width.dim_value if width.WhichOneof("value") == "dim_value" else "unknown"
        raise InvalidArtifactError(
            f"input {value.name!r} has {got} features, the schema declares {n_features}",
            field="input.shape",
        )
    return n_features


def _check_outputs(graph: Any, schema: OutputSchema) -> tuple[str, ...]:
    outputs = {o.name: o for o in graph.output}
    names = tuple(outputs)
    required = [schema.label_output]
    if schema.probability_output is not None:
        required.append(schema.probability_output)
    for name in required:
        if name not in outputs:
            raise InvalidArtifactError(
                f"the model has no output {name!r} (outputs: {list(names)})", field="output"
            )
    label = outputs[schema.label_output]
    if not label.type.HasField("tensor_type"):
        raise InvalidArtifactError(
            f"output {label.name!r} must be a tensor", field=f"output.{label.name}"
        )
    elem = label.type.tensor_type.elem_type
    allowed = _LABEL_ELEMS if schema.task is Task.CLASSIFICATION else _NUMBER_ELEMS
    if elem not in allowed:
        kinds = "int64, int32 or string" if schema.task is Task.CLASSIFICATION else "float"
        raise InvalidArtifactError(
            f"output {label.name!r} is {_elem_name(elem)}; a {schema.task.value} label "
            f"must be {kinds}",
            field=f"output.{label.name}",
        )
    if schema.probability_output is not None:
        _check_probabilities(outputs[schema.probability_output], schema)
    return names


def _check_probabilities(value: Any, schema: OutputSchema) -> None:
    if not value.type.HasField("tensor_type"):
        raise InvalidArtifactError(
            f"output {value.name!r} must be a [batch, classes] tensor, not a sequence of maps "
            "(convert with skl2onnx options={'zipmap': False})",
            field=f"output.{value.name}",
        )
    tensor = value.type.tensor_type
    if tensor.elem_type not in _NUMBER_ELEMS:
        raise InvalidArtifactError(
            f"output {value.name!r} is {_elem_name(tensor.elem_type)}, probabilities are float",
            field=f"output.{value.name}",
        )
    dims = list(tensor.shape.dim) if tensor.HasField("shape") else []
    if dims and len(dims) != 2:
        raise InvalidArtifactError(
            f"output {value.name!r} must have shape [batch, classes], it has rank {len(dims)}",
            field=f"output.{value.name}",
        )
    if (
        schema.task is Task.CLASSIFICATION
        and len(dims) == 2
        and dims[1].WhichOneof("value") == "dim_value"
        and dims[1].dim_value != len(schema.classes)
    ):
        raise InvalidArtifactError(
            f"output {value.name!r} has {dims[1].dim_value} columns, the schema declares "
            f"{len(schema.classes)} classes",
            field=f"output.{value.name}",
        )


def _check_class_labels(graph: Any, schema: OutputSchema) -> tuple[str, ...] | None:
    """Compare the labels baked into the classifier that produces the label output.

    Follows ``Identity`` nodes back from the label output to the ``ai.onnx.ml``
    classifier node that emits it; models that compute labels otherwise are
    not checked here (the predictor still refuses labels outside the schema).
    """
    producers = {out: node for node in graph.node for out in node.output}
    name = schema.label_output
    node = producers.get(name)
    while node is not None and node.op_type == "Identity" and node.domain in ("", "ai.onnx"):
        node = producers.get(node.input[0])
    if node is None or node.domain != "ai.onnx.ml":
        return None
    labels: tuple[str, ...] | None = None
    for attribute in node.attribute:
        if attribute.name in _CLASS_LABEL_ATTRIBUTES and (attribute.ints or attribute.strings):
            labels = tuple(str(int(i)) for i in attribute.ints) or tuple(
                s.decode("utf-8") for s in attribute.strings
            )
    if labels is None or schema.task is not Task.CLASSIFICATION:
        return labels
    if labels != schema.classes:
        raise InvalidArtifactError(
            f"the model's class labels {list(labels)} differ from the registered classes "
            f"{list(schema.classes)}; register str(c) for c in the estimator's classes_, in order",
            field="output.classes",
            details={"model_classes": list(labels), "registered_classes": list(schema.classes)},
        )
    return labels
