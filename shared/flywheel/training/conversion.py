"""Convert a fitted estimator to ONNX and prove on the holdout that nothing was lost.

Every estimator Flywheel trains converts in float64 (``tensor(double)`` input and
outputs): ``logistic_regression`` and ``linear_regression`` (``StandardScaler``
pipelines) through skl2onnx with ``DoubleTensorType``; ``random_forest``,
``gradient_boosting`` and ``hist_gradient_boosting`` through
:mod:`flywheel.training._onnx_trees` (ADR 4).  ``precision="float32"`` (or a float64
path that cannot model the estimator, e.g. categorical splits) uses skl2onnx with
``FloatTensorType`` and records ``precision="float32"`` and the reason; the input
schema's ``tensor_dtype`` must follow :attr:`OnnxConversion.precision`.  A parity check
on the holdout (:class:`~flywheel.training.config.ParityTolerances`) raises
:class:`~flywheel.errors.ParityError` carrying the figures; nothing is registered.

Notes
-----
Outputs: every model takes one input ``input`` of shape ``[N, n_features]``.
Classifiers are fitted on string labels and return ``label`` (string ``[N]``, one of
``OutputSchema.classes``) and ``probabilities`` (``[N, n_classes]``, columns in
``OutputSchema.classes`` order); regressors return ``prediction`` (``[N, 1]``).

Precision: float64 conversions reproduce scikit-learn to a few ulps (measured on the
bundled datasets: max |Δ| <= 2e-16 in probability, <= 2e-12 in regression predictions).

Parity: on the holdout, per row, ``|Δ|`` is the largest absolute difference between
the ONNX and scikit-learn probabilities (classifiers) or predictions (regressors); the
report gives the max and the 99th percentile over rows, and the share of rows with the
same label.  Default limits:

* float64: ``max |Δ| <= 1e-5``.
* float32: ``p99 |Δ| <= 1e-4`` and ``max |Δ| <= 1e-3``, scaled by ``1 + mean |y_hat|``
  for regressors; the report records the scaled, absolute limits.
* labels: every row whose top two scikit-learn probabilities differ by more than twice
  the probability limit must get the same label.  Closer rows are ties within
  tolerance: they count in ``label_agreement`` but do not fail parity (a random forest
  with an even number of trees produces exact ties).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from flywheel.errors import ParityError, TrainingError
from flywheel.models import Frozen
from flywheel.registry.models import ParityReport, Task
from flywheel.training import _onnx_trees

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import onnx
    from numpy.typing import NDArray

    from flywheel.training.config import ParityTolerances, Precision

INPUT_NAME = _onnx_trees.INPUT_NAME
LABEL_OUTPUT = _onnx_trees.LABEL_OUTPUT
PROBABILITY_OUTPUT = _onnx_trees.PROBABILITY_OUTPUT
PREDICTION_OUTPUT = _onnx_trees.PREDICTION_OUTPUT

#: Opsets for skl2onnx conversions (onnxruntime >= 1.15 runs them).
SKL2ONNX_TARGET_OPSET: dict[str, int] = {"": 18, "ai.onnx.ml": 3}


class OnnxConversion(Frozen):
    """An ONNX model and how it was produced.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> fitted = LinearRegression().fit([[0.0], [1.0]], [1.0, 3.0])
    >>> conversion = convert_to_onnx(fitted, task=Task.REGRESSION, n_features=1)
    >>> (conversion.precision, conversion.converter, conversion.label_output)
    ('float64', 'skl2onnx', 'prediction')
    """

    onnx_bytes: bytes
    precision: Literal["float64", "float32"]
    converter: Literal["flywheel-trees", "skl2onnx"]
    input_name: str = INPUT_NAME
    label_output: str
    probability_output: str | None = None
    fallback_reason: str | None = None


class ModelOutputs(BaseModel):
    """Predictions on a batch: labels (classifiers) and probabilities or predictions.

    ``labels`` are class names (a numpy ``str`` array); ``values`` is
    ``[N, n_classes]`` probabilities for classifiers and ``[N]`` predictions for
    regressors, always float64 (float32 outputs are widened).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    labels: np.ndarray[Any, np.dtype[np.str_]] | None
    values: np.ndarray[Any, np.dtype[np.float64]]


def _skl2onnx(
    estimator: Any, *, task: Task, n_features: int, precision: Precision
) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    from flywheel.training.estimators import model_step

    tensor_type = DoubleTensorType if precision == "float64" else FloatTensorType
    options = (
        {id(model_step(estimator)): {"zipmap": False}} if task is Task.CLASSIFICATION else None
    )
    with warnings.catch_warnings():
        # skl2onnx 1.20 passes numpy bools as int attributes; protobuf < 7 (pinned) accepts them.
        warnings.filterwarnings(
            "ignore", message=r"Field onnx\.AttributeProto\.ints", category=DeprecationWarning
        )
        model: onnx.ModelProto = convert_sklearn(
            estimator,
            initial_types=[(INPUT_NAME, tensor_type([None, n_features]))],
            options=options,
            target_opset=SKL2ONNX_TARGET_OPSET,
        )
    if task is Task.REGRESSION:
        _rename_output(model, model.graph.output[0].name, PREDICTION_OUTPUT)
    # skl2onnx names the graph with a random UUID; a fixed name keeps the bytes reproducible.
    model.graph.name = f"flywheel_{type(model_step(estimator)).__name__}"
    return model


def _rename_output(model: onnx.ModelProto, old: str, new: str) -> None:
    if old == new:
        return
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for output in model.graph.output:
        if output.name == old:
            output.name = new


def convert_to_onnx(
    estimator: Any,
    *,
    task: Task,
    n_features: int,
    precision: Precision = "float64",
    metadata: Mapping[str, str] | None = None,
) -> OnnxConversion:
    """Convert a fitted estimator (or ``StandardScaler`` pipeline) to ONNX bytes.

    Parameters
    ----------
    estimator
        A fitted estimator built by :func:`~flywheel.training.estimators.build_estimator`.
    task
        Decides the outputs (``label`` + ``probabilities`` or ``prediction``).
    n_features
        Width of the ``input`` tensor.
    precision
        ``"float64"`` (default) tries double precision first and falls back to
        float32 when the estimator cannot be written in double; ``"float32"``
        converts in float32 directly.
    metadata
        String key/values stored in the model's ``metadata_props``.

    Raises
    ------
    TrainingError
        When no converter can handle the estimator, or the result fails the ONNX
        checker.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> fitted = RandomForestRegressor(n_estimators=3, random_state=0).fit(
    ...     [[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0]
    ... )
    >>> convert_to_onnx(fitted, task=Task.REGRESSION, n_features=1).converter
    'flywheel-trees'
    """
    import onnx

    from flywheel.training.estimators import model_step

    fallback_reason: str | None = None
    converter: Literal["flywheel-trees", "skl2onnx"] = "skl2onnx"
    model: onnx.ModelProto | None = None
    final: Precision = precision
    step = model_step(estimator)
    if precision == "float64" and _onnx_trees.is_tree_ensemble(step):
        try:
            model = _onnx_trees.tree_ensemble_to_onnx(step, n_features=n_features)
            converter = "flywheel-trees"
        except _onnx_trees.UnsupportedTreeModelError as err:
            fallback_reason = f"float64 tree writer does not support {err}"
            final = "float32"
    if model is None:
        try:
            model = _skl2onnx(estimator, task=task, n_features=n_features, precision=final)
        except Exception as err:  # skl2onnx raises many types; keep them out of the message
            if final == "float32":
                raise TrainingError(
                    f"estimator: skl2onnx cannot convert {type(step).__name__} ({final})",
                    field="estimator",
                ) from err
            fallback_reason = f"skl2onnx cannot convert {type(step).__name__} in float64"
            final = "float32"
            try:
                model = _skl2onnx(estimator, task=task, n_features=n_features, precision=final)
            except Exception as err32:
                raise TrainingError(
                    f"estimator: skl2onnx cannot convert {type(step).__name__}",
                    field="estimator",
                ) from err32
    stamp(model, final, metadata or {})
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise TrainingError(
            "estimator: the converted ONNX model fails the ONNX checker", field="estimator"
        ) from err
    classifier = task is Task.CLASSIFICATION
    return OnnxConversion(
        onnx_bytes=model.SerializeToString(),
        precision=final,
        converter=converter,
        label_output=LABEL_OUTPUT if classifier else PREDICTION_OUTPUT,
        probability_output=PROBABILITY_OUTPUT if classifier else None,
        fallback_reason=fallback_reason,
    )


def stamp(model: onnx.ModelProto, precision: Precision, metadata: Mapping[str, str]) -> None:
    """Deterministic provenance in the model (no run ids or clocks: bytes stay stable)."""
    del model.metadata_props[:]
    for key, value in sorted({**metadata, "flywheel.precision": precision}.items()):
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value


def onnx_session(onnx_bytes: bytes) -> Any:
    """An onnxruntime CPU session with one thread (summation order stays fixed).

    Raises
    ------
    TrainingError
        When onnxruntime cannot load the model.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own C++-backed types
        raise TrainingError("onnxruntime cannot load the converted model") from err


def onnx_outputs(
    model: bytes | Any,
    X: NDArray[Any],  # noqa: N803
    *,
    task: Task,
    split: Callable[[NDArray[Any]], tuple[NDArray[np.float64], NDArray[Any]]] | None = None,
) -> ModelOutputs:
    """Run an ONNX model (bytes or a session from :func:`onnx_session`) on ``X``.

    The input is cast to the model's input type (float64 or float32). A model with
    preprocessing takes raw rows; ``split`` turns them into its ``input`` and ``strings``.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> fitted = LinearRegression().fit([[0.0], [1.0]], [1.0, 3.0])
    >>> model = convert_to_onnx(fitted, task=Task.REGRESSION, n_features=1).onnx_bytes
    >>> onnx_outputs(model, np.array([[2.0]]), task=Task.REGRESSION).values
    array([5.])
    """
    session = onnx_session(model) if isinstance(model, bytes) else model
    feed: dict[str, NDArray[Any]]
    if split is not None:
        numbers, strings = split(X)
        names = {i.name for i in session.get_inputs()}
        feed = {n: v for n, v in (("input", numbers), ("strings", strings)) if n in names}
    else:
        model_input = session.get_inputs()[0]
        dtype = np.float64 if model_input.type == "tensor(double)" else np.float32
        feed = {model_input.name: np.ascontiguousarray(X, dtype=dtype)}
    if task is Task.CLASSIFICATION:
        labels, proba = session.run([LABEL_OUTPUT, PROBABILITY_OUTPUT], feed)
        return ModelOutputs(
            labels=np.asarray(labels).astype(str).ravel(),
            values=np.asarray(proba, dtype=np.float64),
        )
    (prediction,) = session.run([PREDICTION_OUTPUT], feed)
    return ModelOutputs(labels=None, values=np.asarray(prediction, dtype=np.float64).ravel())


def sklearn_outputs(
    estimator: Any,
    X: NDArray[np.float64],  # noqa: N803
    *,
    task: Task,
) -> ModelOutputs:
    """scikit-learn's own labels and probabilities (or predictions) on ``X``."""
    if task is Task.CLASSIFICATION:
        return ModelOutputs(
            labels=np.asarray(estimator.predict(X)).astype(str).ravel(),
            values=np.asarray(estimator.predict_proba(X), dtype=np.float64),
        )
    return ModelOutputs(
        labels=None, values=np.asarray(estimator.predict(X), dtype=np.float64).ravel()
    )


def _row_abs_diff(reference: ModelOutputs, candidate: ModelOutputs) -> NDArray[np.float64]:
    diff = np.abs(candidate.values - reference.values)
    return diff.max(axis=1) if diff.ndim == 2 else diff


def measure_parity(
    reference: ModelOutputs,
    candidate: ModelOutputs,
    *,
    task: Task,
    precision: Precision,
    tolerances: ParityTolerances,
) -> ParityReport:
    """Compare ONNX outputs (``candidate``) with scikit-learn's (``reference``).

    See the module docstring for the figures and limits.

    Examples
    --------
    >>> from flywheel.training.config import ParityTolerances
    >>> ref = ModelOutputs(labels=None, values=np.array([1.0, 2.0]))
    >>> onnx_out = ModelOutputs(labels=None, values=np.array([1.0, 2.0 + 1e-9]))
    >>> report = measure_parity(
    ...     ref, onnx_out, task=Task.REGRESSION, precision="float64",
    ...     tolerances=ParityTolerances(),
    ... )
    >>> (report.passed, report.max_abs_diff < 1e-8)
    (True, True)
    """
    if reference.values.shape != candidate.values.shape:
        raise TrainingError(
            f"ONNX output shape {candidate.values.shape} differs from scikit-learn's "
            f"{reference.values.shape}"
        )
    rows = int(reference.values.shape[0])
    diff = _row_abs_diff(reference, candidate)
    max_diff = float(diff.max()) if rows else 0.0
    p99_diff = float(np.quantile(diff, 0.99)) if rows else 0.0
    if math.isnan(max_diff) or math.isnan(p99_diff):
        max_diff = p99_diff = math.inf

    scale = 1.0
    if task is Task.REGRESSION and precision == "float32":
        scale = 1.0 + float(np.mean(np.abs(reference.values))) if rows else 1.0
    max_limit: float | None
    p99_limit: float | None
    if precision == "float64":
        max_limit, p99_limit = tolerances.float64_max_abs_diff, None
        probability_tolerance = tolerances.float64_max_abs_diff
    else:
        max_limit = (
            None
            if tolerances.float32_max_abs_diff is None
            else tolerances.float32_max_abs_diff * scale
        )
        p99_limit = tolerances.float32_p99_abs_diff * scale
        probability_tolerance = tolerances.float32_p99_abs_diff

    passed = (max_limit is None or max_diff <= max_limit) and (
        p99_limit is None or p99_diff <= p99_limit
    )
    label_agreement: float | None = None
    if task is Task.CLASSIFICATION:
        assert reference.labels is not None
        assert candidate.labels is not None
        same = reference.labels == candidate.labels
        label_agreement = float(same.mean()) if rows else 1.0
        top_two = np.sort(reference.values, axis=1)[:, -2:]
        decisive = (top_two[:, 1] - top_two[:, 0]) > 2 * probability_tolerance
        decisive_agreement = float(same[decisive].mean()) if decisive.any() else 1.0
        passed = passed and decisive_agreement >= tolerances.min_label_agreement
    return ParityReport(
        rows=rows,
        precision=precision,
        label_agreement=label_agreement,
        max_abs_diff=max_diff,
        p99_abs_diff=p99_diff,
        max_abs_diff_limit=max_limit,
        p99_abs_diff_limit=p99_limit,
        passed=passed,
    )


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.3g}"


def check_parity(report: ParityReport) -> ParityReport:
    """Return ``report`` if it passed; raise :class:`ParityError` with its figures otherwise.

    Examples
    --------
    >>> from flywheel.registry.models import ParityReport
    >>> check_parity(ParityReport(
    ...     rows=10, precision="float32", max_abs_diff=0.2, p99_abs_diff=1e-7,
    ...     max_abs_diff_limit=0.0, passed=False,
    ... ))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    flywheel.errors.ParityError: ONNX parity failed (float32, 10 rows): ...
    """
    if report.passed:
        return report
    agreement = (
        "" if report.label_agreement is None else f", label agreement {report.label_agreement:.4%}"
    )
    raise ParityError(
        f"ONNX parity failed ({report.precision}, {report.rows} rows): "
        f"max |Δ| {_fmt(report.max_abs_diff)} (limit {_fmt(report.max_abs_diff_limit)}), "
        f"p99 |Δ| {_fmt(report.p99_abs_diff)} (limit {_fmt(report.p99_abs_diff_limit)})"
        f"{agreement}",
        field="parity",
        details=report.model_dump(mode="json"),
    )
