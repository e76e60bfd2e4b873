"""Write a :class:`~flywheel.training.preprocessing.Preprocessor` as ONNX nodes in front of
an estimator's graph (standard operators in double precision; text through
``com.microsoft.Tokenizer`` and ``TfIdfVectorizer`` counts, weighted in double)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.training.preprocessing import (
    _CONTRIB,
    _PAD,
    NUMERIC_INPUT,
    PREPROCESSING_OPSET,
    STRING_INPUT,
    CategoricalStep,
    NumericStep,
    Preprocessor,
    TextStep,
)

if TYPE_CHECKING:
    import onnx

#: What the estimator's graph reads once preprocessing feeds it.
_FEATURES = "flywheel_features"
#: The output of :func:`features_model`: that matrix in double precision.
FEATURES_OUTPUT = "features"
_MIN_IR_VERSION = 9


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"pp_{stem}_{self._n}"

    def const(self, stem: str, value: Any, dtype: Any = None) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        array = np.asarray(value, dtype=dtype)
        self.initializers.append(numpy_helper.from_array(array, name=name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs: Any) -> str:
        from onnx import helper

        domain = attrs.pop("domain", "")
        out = self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out


def _numeric(b: _Builder, steps: list[NumericStep]) -> list[str]:
    """All numbers at once: gaps filled, then the flagged columns' missing indicators."""
    from onnx import TensorProto

    missing = b.node("IsNaN", [NUMERIC_INPUT], "isnan")
    fills = b.const("fills", [[s.fill for s in steps]], np.float64)
    out = [b.node("Where", [missing, fills, NUMERIC_INPUT], "filled")]
    flagged = [s.column for s in steps if s.indicator]
    if flagged:
        picked = b.node("Gather", [missing, b.const("flagged", flagged, np.int64)], "flags",
                        axis=1)  # fmt: skip
        out.append(b.node("Cast", [picked], "flag", to=TensorProto.DOUBLE))
    return out


def _categorical(b: _Builder, step: CategoricalStep) -> list[str]:
    from onnx import TensorProto

    column = b.node("Gather", [STRING_INPUT, b.const("idx", [step.column], np.int64)], "col",
                    axis=1)  # fmt: skip
    categories = b.const("cats", np.array([list(step.categories)], dtype=object))
    equal = b.node("Equal", [column, categories], "eq")
    onehot = b.node("Cast", [equal], "onehot", to=TensorProto.DOUBLE)
    if step.encoding == "onehot":
        return [onehot]
    arange = b.const("codes", np.arange(len(step.categories), dtype=np.float64)[:, None])
    code = b.node("MatMul", [onehot, arange], "code")
    hits = b.node("ReduceSum", [onehot, b.const("axis", [1], np.int64)], "hits", keepdims=1)
    offset = b.node("Sub", [hits, b.const("one", 1.0, np.float64)], "offset")
    return [b.node("Add", [code, offset], "ordinal")]


def _text(b: _Builder, step: TextStep) -> list[str]:
    from onnx import TensorProto

    column = b.node("Gather", [STRING_INPUT, b.const("idx", [step.column], np.int64)], "col",
                    axis=1)  # fmt: skip
    flat = b.node("Reshape", [column, b.const("flat", [-1], np.int64)], "flat")
    lower = b.node("StringNormalizer", [flat], "lower", case_change_action="LOWER", locale="C")
    pattern = r"\w\w+" if step.analyzer == "word" else "."
    toks = b.node("Tokenizer", [lower], "tokens", domain=_CONTRIB, mark=0, mincharnum=1,
                  pad_value=_PAD, tokenexp=pattern)  # fmt: skip
    low, high = step.ngram_range
    by_n: dict[int, list[int]] = {n: [] for n in range(1, high + 1)}
    for i, gram in enumerate(step.vocabulary):
        by_n[len(gram)].append(i)
    pool: list[str] = []
    indexes: list[int] = []
    counts: list[int] = []
    for n in range(1, high + 1):
        counts.append(len(pool))
        for i in by_n[n]:
            pool.extend(step.vocabulary[i])
            indexes.append(i)
    # Counts (exact in float32), then the idf weights and the norm in double precision.
    tf = b.node(
        "TfIdfVectorizer", [toks], "tf", mode="TF", min_gram_length=low,
        max_gram_length=high, max_skip_count=0, ngram_counts=counts, ngram_indexes=indexes,
        pool_strings=pool,
    )  # fmt: skip
    counts64 = b.node("Cast", [tf], "tf64", to=TensorProto.DOUBLE)
    idf = b.const("idf", [list(step.idf)], np.float64)
    wide = b.node("Mul", [counts64, idf], "tfidf")
    squares = b.node("Mul", [wide, wide], "sq")
    total = b.node("ReduceSum", [squares, b.const("axis", [1], np.int64)], "ss", keepdims=1)
    norm = b.node("Sqrt", [total], "norm")
    safe = b.node("Max", [norm, b.const("tiny", np.finfo(np.float64).tiny, np.float64)], "safe")
    return [b.node("Div", [wide, safe], "l2")]


def _columns(pre: Preprocessor) -> tuple[_Builder, list[str]]:
    """The preprocessing nodes and the estimator matrix's column blocks, in order."""
    b = _Builder()
    numeric = pre.numeric_steps
    columns: list[str] = _numeric(b, numeric) if numeric else []
    for step in pre.steps:
        if isinstance(step, NumericStep):
            continue
        if isinstance(step, CategoricalStep):
            columns.extend(_categorical(b, step))
        else:
            columns.extend(_text(b, step))
    return b, columns


def _raw_inputs(pre: Preprocessor) -> list[Any]:
    """The value infos of the raw ``input`` (double) and ``strings`` tensors."""
    from onnx import TensorProto, helper

    n_numeric = len(pre.features) - len(pre.string_features)
    inputs = []
    if n_numeric:
        inputs.append(
            helper.make_tensor_value_info(NUMERIC_INPUT, TensorProto.DOUBLE, [None, n_numeric])
        )
    if pre.string_features:
        inputs.append(
            helper.make_tensor_value_info(
                STRING_INPUT, TensorProto.STRING, [None, len(pre.string_features)]
            )
        )
    return inputs


def _estimator_input_is_float32(model: onnx.ModelProto) -> bool:
    from onnx import TensorProto

    original = next(i for i in model.graph.input if i.name == NUMERIC_INPUT)
    return bool(original.type.tensor_type.elem_type == TensorProto.FLOAT)


def _concat(b: _Builder, columns: list[str], out: str, *, float32: bool) -> None:
    """``out``: the blocks side by side, cast to float32 when the estimator reads float32."""
    from onnx import TensorProto, helper

    if float32:
        wide = b.name("features64")
        b.nodes.append(helper.make_node("Concat", columns, [wide], name=wide, axis=1))
        b.nodes.append(helper.make_node("Cast", [wide], [out], name=out, to=TensorProto.FLOAT))
    else:
        b.nodes.append(helper.make_node("Concat", columns, [out], name=out, axis=1))


def _opsets(pre: Preprocessor, existing: dict[str, int]) -> list[Any]:
    from onnx import helper

    opsets = dict(existing)
    opsets[""] = max(opsets.get("", 0), PREPROCESSING_OPSET)
    if pre.uses_tokenizer:
        opsets[_CONTRIB] = 1
    return [helper.make_opsetid(d, v) for d, v in sorted(opsets.items())]


def prepend(pre: Preprocessor, model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose ``input`` is computed from the raw inputs by ``pre``."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == NUMERIC_INPUT:
                node.input[i] = _FEATURES
    b, columns = _columns(pre)
    _concat(b, columns, _FEATURES, float32=_estimator_input_is_float32(model))
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend([*b.nodes, *existing])
    graph.initializer.extend(b.initializers)
    kept = [i for i in graph.input if i.name != NUMERIC_INPUT]
    del graph.input[:]
    graph.input.extend([*_raw_inputs(pre), *kept])
    opsets = _opsets(pre, {o.domain: o.version for o in out.opset_import})
    del out.opset_import[:]
    out.opset_import.extend(opsets)
    out.ir_version = max(out.ir_version, _MIN_IR_VERSION)
    return out


def features_model(pre: Preprocessor, model: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """The preprocessing alone: raw inputs → ``features``, the matrix ``model`` reads.

    The nodes are :func:`prepend`'s, so onnxruntime computes the same values; a
    float32 estimator's matrix is rounded to float32 and widened back to double.
    """
    from onnx import TensorProto, helper

    b, columns = _columns(pre)
    float32 = model is not None and _estimator_input_is_float32(model)
    _concat(b, columns, _FEATURES, float32=float32)
    if float32:
        b.nodes.append(
            helper.make_node("Cast", [_FEATURES], [FEATURES_OUTPUT], name=FEATURES_OUTPUT,
                             to=TensorProto.DOUBLE)
        )  # fmt: skip
    else:
        b.nodes.append(
            helper.make_node("Identity", [_FEATURES], [FEATURES_OUTPUT], name=FEATURES_OUTPUT)
        )
    output = helper.make_tensor_value_info(FEATURES_OUTPUT, TensorProto.DOUBLE, [None, pre.width])
    graph = helper.make_graph(
        b.nodes, "flywheel_preprocessing", _raw_inputs(pre), [output], b.initializers
    )
    return helper.make_model(
        graph, opset_imports=_opsets(pre, {}), ir_version=_MIN_IR_VERSION,
        producer_name="flywheel",
    )  # fmt: skip
