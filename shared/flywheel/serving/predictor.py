"""Serve an ONNX model: verified load, then predictions with minimal per-call overhead.

The serving path depends on numpy and onnxruntime only: it never imports
``onnx``, scikit-learn or pickle.  onnxruntime itself is imported inside
:meth:`OnnxModel.load`, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    InvalidArtifactError,
    InvalidInputError,
)
from flywheel.registry.models import FeatureSpec, InputSchema, OutputSchema, Task

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "FEATURES_OUTPUT",
    "MAX_DEFAULT_INTRA_OP_THREADS",
    "OnnxFeatures",
    "OnnxModel",
    "Prediction",
    "RuntimeSettings",
    "default_intra_op_threads",
    "records_to_matrix",
    "split_typed",
    "string_problem",
]

#: The output of a preprocessing graph (an explainer's ``preprocessing.onnx``).
FEATURES_OUTPUT = "features"
#: Lambda gives at most a few vCPUs to small functions; more threads only contend.
MAX_DEFAULT_INTRA_OP_THREADS = 2
#: Lambda allocates CPU in proportion to memory: one full vCPU per 1,769 MB.
LAMBDA_MB_PER_VCPU = 1769


def default_intra_op_threads(environ: Mapping[str, str] | None = None) -> int:
    """Intra-op threads for a session: one per full vCPU this function really has.

    In Lambda ``os.cpu_count()`` reports the host's CPUs whatever the memory size,
    while the function's CPU share is ``memory / 1769 MB``: a 1,024 MB function
    has 0.58 of a vCPU, and a second thread only adds a wake-up per run (measured
    on 1 row: 16 µs with 2 threads against 11 µs with 1).  Outside Lambda: the CPU
    count, capped at :data:`MAX_DEFAULT_INTRA_OP_THREADS`.

    Examples
    --------
    >>> default_intra_op_threads({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"})
    1
    >>> default_intra_op_threads({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}) <= 2
    True
    """
    env = os.environ if environ is None else environ
    cpus = os.cpu_count() or 1
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if memory.isdigit():
        cpus = min(cpus, max(1, int(memory) // LAMBDA_MB_PER_VCPU))
    return min(cpus, MAX_DEFAULT_INTRA_OP_THREADS)


_NUMPY_DTYPES: dict[str, type[np.floating[Any]]] = {"float32": np.float32, "float64": np.float64}
_ORT_INPUT_TYPES = {"float32": "tensor(float)", "float64": "tensor(double)"}
_ORT_INT_LABELS = frozenset({"tensor(int64)", "tensor(int32)"})
_ORT_NUMBERS = frozenset({"tensor(float)", "tensor(double)"})


# Results and settings are plain frozen dataclasses rather than pydantic models:
# they hold numpy arrays and are built on every call of the hot path.
@dataclass(frozen=True, slots=True)
class Prediction:
    """The model's answer for a batch of rows.

    Attributes
    ----------
    task
        Classification or regression.
    labels
        Classifiers: one registered class string per row; empty for regressors.
    probabilities
        Classifiers with a probability output: ``[rows, classes]`` float64,
        columns in the order of ``classes``; otherwise ``None``.
    values
        Regressors: one float64 per row; otherwise ``None``.
    classes
        The registered classes (empty for regressors).

    Examples
    --------
    >>> p = Prediction(task=Task.REGRESSION, values=np.array([1.5]))
    >>> len(p), p.to_records()
    (1, [{'value': 1.5}])
    """

    task: Task
    labels: tuple[str, ...] = ()
    probabilities: NDArray[np.float64] | None = None
    values: NDArray[np.float64] | None = None
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.values) if self.values is not None else len(self.labels)

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per row.

        Examples
        --------
        >>> p = Prediction(
        ...     task=Task.CLASSIFICATION, labels=("b",),
        ...     probabilities=np.array([[0.25, 0.75]]), classes=("a", "b"),
        ... )
        >>> p.to_records()
        [{'label': 'b', 'probabilities': {'a': 0.25, 'b': 0.75}}]
        """
        if self.values is not None:
            return [{"value": v} for v in self.values.tolist()]
        if self.probabilities is None:
            return [{"label": label} for label in self.labels]
        return [
            {"label": label, "probabilities": dict(zip(self.classes, row, strict=True))}
            for label, row in zip(self.labels, self.probabilities.tolist(), strict=True)
        ]


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """How the onnxruntime session was actually configured (read back from it).

    Examples
    --------
    >>> RuntimeSettings(1, 1, False, "ORT_ENABLE_ALL", ("CPUExecutionProvider",)).intra_op_threads
    1
    """

    intra_op_threads: int
    inter_op_threads: int
    spinning: bool
    graph_optimization: str
    providers: tuple[str, ...]


def string_problem(spec: FeatureSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for a categorical or text ``spec`` (``None``: it is).

    Examples
    --------
    >>> plan = FeatureSpec(name="plan", dtype="categorical", categories=("basic", "pro"))
    >>> print(string_problem(plan, "team"))
    is not a known category (basic, pro)
    >>> string_problem(FeatureSpec(name="note", dtype="text", max_length=3), "long")
    'is longer than 3 characters'
    """
    if value is None:
        return None if spec.nullable else "must not be null"
    if type(value) is not str:
        if spec.dtype == "categorical" and type(value) is int:
            value = str(value)
        else:
            return f"must be a string, got {_type_name(value)}"
    if spec.dtype == "categorical":
        if spec.unknown == "error" and value not in spec.categories:
            known = ", ".join(spec.categories[:10]) + (", ..." if len(spec.categories) > 10 else "")
            return f"is not a known category ({known})"
    elif spec.max_length is not None and len(value) > spec.max_length:
        return f"is longer than {spec.max_length} characters"
    return None


class _MatrixPlan:
    """Precomputed per-schema facts that make ``records → matrix`` cheap."""

    __slots__ = (
        "dtype",
        "fast_types",
        "kinds",
        "n",
        "names",
        "nullable",
        "numeric_idx",
        "specs",
        "string_idx",
        "typed",
    )

    def __init__(self, schema: InputSchema) -> None:
        self.specs = schema.features
        self.names = tuple(f.name for f in schema.features)
        self.kinds = tuple(f.dtype for f in schema.features)
        self.nullable = tuple(f.nullable for f in schema.features)
        self.n = len(self.names)
        self.typed = schema.typed
        self.dtype: Any = object if self.typed else _NUMPY_DTYPES[schema.tensor_dtype]
        self.numeric_idx = [i for i, f in enumerate(schema.features) if not f.is_string]
        self.string_idx = [i for i, f in enumerate(schema.features) if f.is_string]
        accepted: dict[str, frozenset[type]] = {
            "float": frozenset({float, int}),
            "int": frozenset({int}),
            "bool": frozenset({bool}),
            # Strings are checked after the fast pass (categories, lengths).
            "categorical": frozenset(),
            "text": frozenset(),
        }
        self.fast_types = tuple(accepted[kind] for kind in self.kinds)

    def build(self, records: Sequence[Mapping[str, Any]]) -> NDArray[np.floating[Any]]:
        if isinstance(records, Mapping) or not isinstance(records, Sequence) or not records:
            raise InvalidInputError("records must be a non-empty list of objects", field="records")
        names, fast_types, n = self.names, self.fast_types, self.n
        rows: list[list[Any]] = []
        for i, record in enumerate(records):
            if type(record) is not dict and not isinstance(record, Mapping):
                raise InvalidInputError(
                    f"record {i} is not an object", field="records", details={"row": i}
                )
            try:
                row = [record[name] for name in names]
            except KeyError:
                missing = next(name for name in names if name not in record)
                raise _feature_error(i, missing, "is missing") from None
            if len(record) != n:
                unknown = next(str(k) for k in record if k not in names)
                raise InvalidInputError(
                    f"record {i}: unknown field {unknown!r}", field=unknown, details={"row": i}
                )
            for j, value in enumerate(row):
                if type(value) not in fast_types[j]:
                    row[j] = self._convert(i, j, value)
            rows.append(row)
        if self.typed:
            return self._typed_matrix(rows)
        try:
            if self.dtype is np.float32:
                # Values beyond float32 become inf and are refused just below.
                with np.errstate(over="ignore"):
                    matrix = np.array(rows, dtype=self.dtype)
            else:
                matrix = np.array(rows, dtype=self.dtype)
        except OverflowError:
            raise InvalidInputError("a feature value is out of range", field="records") from None
        if not np.isfinite(matrix).all():
            self._refuse_non_finite(matrix)
        return matrix

    def _typed_matrix(self, rows: list[list[Any]]) -> NDArray[Any]:
        matrix = np.empty((len(rows), self.n), dtype=object)
        matrix[:] = rows
        if self.numeric_idx:
            numbers = np.asarray(matrix[:, self.numeric_idx], dtype=np.float64)
            if not np.isfinite(numbers).all():
                for k, j in enumerate(self.numeric_idx):
                    column = numbers[:, k]
                    bad = np.isinf(column) if self.nullable[j] else ~np.isfinite(column)
                    if bad.any():
                        raise _feature_error(int(np.argmax(bad)), self.names[j],
                                             "must be a finite number")  # fmt: skip
        return matrix

    def _convert(self, i: int, j: int, value: Any) -> Any:
        name, kind = self.names[j], self.kinds[j]
        if kind in ("categorical", "text"):
            reason = string_problem(self.specs[j], value)
            if reason is not None:
                raise _feature_error(i, name, reason)
            return "" if value is None else str(value)
        if value is None:
            if self.nullable[j]:
                return math.nan
            raise _feature_error(i, name, "must not be null")
        if isinstance(value, np.generic):
            value = value.item()
        if kind == "bool":
            if type(value) is bool:
                return value
            raise _feature_error(i, name, f"must be true or false, got {_type_name(value)}")
        if type(value) is bool or not isinstance(value, int | float):
            raise _feature_error(i, name, f"must be a number, got {_type_name(value)}")
        if kind == "int" and not (isinstance(value, int) or value.is_integer()):
            raise _feature_error(i, name, f"must be an integer, got {value!r}")
        return value

    def _refuse_non_finite(self, matrix: NDArray[np.floating[Any]]) -> None:
        for j, name in enumerate(self.names):
            column = matrix[:, j]
            bad = np.isinf(column) if self.nullable[j] else ~np.isfinite(column)
            if bad.any():
                row = int(np.argmax(bad))
                raise _feature_error(row, name, "must be a finite number")


def _feature_error(row: int, name: str, reason: str) -> InvalidInputError:
    return InvalidInputError(
        f"record {row}: feature {name!r} {reason}", field=name, details={"row": row}
    )


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def split_typed(
    matrix: NDArray[Any], numeric_idx: Sequence[int], string_idx: Sequence[int]
) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """A typed model's two inputs from ``[rows, features]`` in schema order.

    Missing numbers (``None``) become NaN and missing strings ``""``.

    Examples
    --------
    >>> numbers, strings = split_typed(np.array([[1, None, "a"]], dtype=object), [0, 1], [2])
    >>> numbers.tolist(), strings.tolist()
    ([[1.0, nan]], [['a']])
    """
    rows = matrix.shape[0]
    try:
        numbers = np.array(matrix[:, numeric_idx], dtype=np.float64)
    except (TypeError, ValueError):
        numbers = np.empty((rows, len(numeric_idx)), dtype=np.float64)
        for k, j in enumerate(numeric_idx):
            numbers[:, k] = [math.nan if v is None else float(v) for v in matrix[:, j]]
    strings = np.empty((rows, len(string_idx)), dtype=object)
    for k, j in enumerate(string_idx):
        strings[:, k] = ["" if v is None else str(v) for v in matrix[:, j]]
    return numbers, strings


def records_to_matrix(
    records: Sequence[Mapping[str, Any]], schema: InputSchema
) -> NDArray[np.floating[Any]]:
    """Turn JSON-like records into the model's input matrix, columns in schema order.

    Every record must carry exactly the schema's features: ``float`` features
    take numbers, ``int`` features integers (``3.0`` is fine), ``bool``
    features ``true``/``false``; ``null`` is accepted (as NaN) only for
    nullable features.  Declared ranges are not enforced here.

    Parameters
    ----------
    records
        One mapping per row.
    schema
        The model version's input schema (feature order and tensor dtype).

    Returns
    -------
    numpy.ndarray
        ``[len(records), len(features)]`` of the schema's ``tensor_dtype``.

    Raises
    ------
    InvalidInputError
        With ``field`` set to the offending feature (or field) name and
        ``details["row"]`` to the record index.

    Examples
    --------
    >>> from flywheel.registry.models import FeatureSpec
    >>> schema = InputSchema(features=(FeatureSpec(name="a"), FeatureSpec(name="b")))
    >>> records_to_matrix([{"b": 2, "a": 1.5}], schema)
    array([[1.5, 2. ]])
    >>> records_to_matrix([{"a": 1.5}], schema)
    Traceback (most recent call last):
    ...
    flywheel.errors.InvalidInputError: record 0: feature 'b' is missing
    """
    return _MatrixPlan(schema).build(records)


class OnnxModel:
    """An ONNX model loaded for serving: verified, configured for Lambda, schema-checked.

    Create with :meth:`load`; then :meth:`predict` (a matrix) or
    :meth:`predict_records` (JSON-like rows).  Thread-safe.

    Examples
    --------
    >>> import hashlib
    >>> from sklearn.linear_model import LogisticRegression
    >>> from flywheel.registry.models import FeatureSpec
    >>> from flywheel.training.conversion import convert_to_onnx
    >>> X = [[20.0, 1.0], [30.0, 2.0], [40.0, 24.0], [50.0, 36.0]]  # age, tenure
    >>> fitted = LogisticRegression().fit(X, ["churn", "churn", "stay", "stay"])
    >>> onnx_bytes = convert_to_onnx(fitted, task=Task.CLASSIFICATION, n_features=2).onnx_bytes
    >>> inputs = InputSchema(features=(FeatureSpec(name="age"), FeatureSpec(name="tenure")))
    >>> outputs = OutputSchema(
    ...     task=Task.CLASSIFICATION, probability_output="probabilities", classes=("churn", "stay")
    ... )
    >>> model = OnnxModel.load(onnx_bytes, expected_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
    ...                        input_schema=inputs, output_schema=outputs)
    >>> model.predict_records([{"age": 42.0, "tenure": 3.0}]).labels
    ('churn',)
    """

    __slots__ = (
        "_class_set",
        "_classes",
        "_dtype",
        "_input_name",
        "_input_schema",
        "_label_map",
        "_n_features",
        "_output_names",
        "_output_schema",
        "_plan",
        "_session",
        "_settings",
        "_sha256",
        "_string_input",
        "_string_labels",
        "_task",
    )

    def __init__(
        self,
        session: Any,
        *,
        sha256: str,
        input_schema: InputSchema,
        output_schema: OutputSchema,
    ) -> None:
        # Private: build models with OnnxModel.load, which verifies the bytes first.
        self._session = session
        self._sha256 = sha256
        self._input_schema = input_schema
        self._output_schema = output_schema
        self._plan = _MatrixPlan(input_schema)
        self._dtype = _NUMPY_DTYPES[input_schema.tensor_dtype]
        self._n_features = len(input_schema.features)
        self._task = output_schema.task
        self._classes = output_schema.classes
        self._class_set = frozenset(output_schema.classes)
        self._input_name, self._string_input = _check_session_inputs(session, input_schema)
        label_type = _check_session_outputs(session, output_schema)
        self._output_names = [output_schema.label_output]
        if output_schema.probability_output is not None:
            self._output_names.append(output_schema.probability_output)
        self._string_labels = label_type == "tensor(string)"
        self._label_map: dict[int, str] = {}
        if output_schema.task is Task.CLASSIFICATION and not self._string_labels:
            self._label_map = _int_label_map(output_schema.classes)
        stored = session.get_session_options()
        self._settings = RuntimeSettings(
            intra_op_threads=int(stored.intra_op_num_threads),
            inter_op_threads=int(stored.inter_op_num_threads),
            spinning=stored.get_session_config_entry("session.intra_op.allow_spinning") != "0",
            graph_optimization=str(stored.graph_optimization_level.name),
            providers=tuple(session.get_providers()),
        )

    @classmethod
    def load(
        cls,
        data: bytes,
        *,
        expected_sha256: str,
        input_schema: InputSchema,
        output_schema: OutputSchema,
        intra_op_threads: int | None = None,
    ) -> OnnxModel:
        """Verify the bytes, then open an onnxruntime session tuned for Lambda.

        The SHA-256 is checked before anything is parsed.  The session runs on
        the CPU provider with all graph optimizations, ``intra_op_threads``
        (default: :func:`default_intra_op_threads`), one inter-op thread and thread
        spinning off (ADR 21).  The session's input and outputs are then checked
        against the schemas.

        Parameters
        ----------
        data
            The model bytes, as read from the artifact store.
        expected_sha256
            The registered digest (``ArtifactRef.sha256``).
        input_schema, output_schema
            The registered schemas of the version.
        intra_op_threads
            Threads for one operator; at least 1.

        Raises
        ------
        ArtifactIntegrityError
            The bytes do not hash to ``expected_sha256``; no session is created.
        InvalidArtifactError
            onnxruntime cannot load the model, or it does not match the schemas.

        Examples
        --------
        >>> import hashlib
        >>> from sklearn.ensemble import RandomForestRegressor
        >>> from flywheel.registry.models import FeatureSpec
        >>> from flywheel.training.conversion import convert_to_onnx
        >>> fitted = RandomForestRegressor(n_estimators=1, bootstrap=False, random_state=0).fit(
        ...     [[0.0], [1.0]], [1.0, 3.0]
        ... )  # one tree: 1.0 for x <= 0.5, else 3.0
        >>> data = convert_to_onnx(fitted, task=Task.REGRESSION, n_features=1).onnx_bytes
        >>> ins = InputSchema(features=(FeatureSpec(name="x"),))
        >>> outs = OutputSchema(task=Task.REGRESSION, label_output="prediction")
        >>> model = OnnxModel.load(data, expected_sha256=hashlib.sha256(data).hexdigest(),
        ...                        input_schema=ins, output_schema=outs, intra_op_threads=1)
        >>> model.settings.intra_op_threads, model.settings.spinning
        (1, False)
        >>> OnnxModel.load(data, expected_sha256="0" * 64, input_schema=ins, output_schema=outs)
        Traceback (most recent call last):
        ...
        flywheel.errors.ArtifactIntegrityError: model bytes do not match the registered SHA-256; ...
        """
        digest = hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(digest, expected_sha256.lower()):
            raise ArtifactIntegrityError(
                "model bytes do not match the registered SHA-256; refusing to load them",
                field="sha256",
            )
        if intra_op_threads is None:
            intra_op_threads = default_intra_op_threads()
        if intra_op_threads < 1:
            raise InvalidInputError("intra_op_threads must be at least 1", field="intra_op_threads")

        session = _open_session(data, intra_op_threads, field="artifact")
        return cls(session, sha256=digest, input_schema=input_schema, output_schema=output_schema)

    @property
    def sha256(self) -> str:
        """Digest of the loaded bytes (equal to the registered one)."""
        return self._sha256

    @property
    def input_schema(self) -> InputSchema:
        return self._input_schema

    @property
    def output_schema(self) -> OutputSchema:
        return self._output_schema

    @property
    def settings(self) -> RuntimeSettings:
        """The session configuration, as onnxruntime reports it."""
        return self._settings

    def predict(self, matrix: NDArray[Any]) -> Prediction:
        """Run the model on ``[rows, features]``, cast to the schema's tensor dtype.

        Raises
        ------
        InvalidInputError
            Wrong shape, no rows, or values that are not numbers.
        ArtifactError
            The model failed at run time or answered outside the schema.

        Examples
        --------
        >>> import hashlib
        >>> from sklearn.ensemble import RandomForestRegressor
        >>> from flywheel.registry.models import FeatureSpec
        >>> from flywheel.training.conversion import convert_to_onnx
        >>> fitted = RandomForestRegressor(n_estimators=1, bootstrap=False, random_state=0).fit(
        ...     [[0.0], [1.0]], [1.0, 3.0]
        ... )  # one tree: 1.0 for x <= 0.5, else 3.0
        >>> data = convert_to_onnx(fitted, task=Task.REGRESSION, n_features=1).onnx_bytes
        >>> model = OnnxModel.load(
        ...     data, expected_sha256=hashlib.sha256(data).hexdigest(),
        ...     input_schema=InputSchema(features=(FeatureSpec(name="x"),)),
        ...     output_schema=OutputSchema(task=Task.REGRESSION, label_output="prediction"),
        ... )
        >>> model.predict(np.array([[0.2], [0.9]])).values.tolist()
        [1.0, 3.0]
        """
        try:
            x = np.asarray(matrix, dtype=object if self._plan.typed else self._dtype)
        except (TypeError, ValueError):
            raise InvalidInputError("the input matrix must be numeric", field="matrix") from None
        if x.ndim != 2 or x.shape[1] != self._n_features or x.shape[0] == 0:
            raise InvalidInputError(
                f"the input matrix must have shape [rows >= 1, {self._n_features}], "
                f"got {list(x.shape)}",
                field="matrix",
            )
        feed = self._feed(x)
        try:
            outputs = self._session.run(self._output_names, feed)
        except Exception as err:
            raise ArtifactError(
                "the model failed to run on this input", details={"reason": "inference_failed"}
            ) from err
        rows = x.shape[0]
        if self._task is Task.REGRESSION:
            return Prediction(task=self._task, values=self._values(outputs[0], rows))
        return Prediction(
            task=self._task,
            labels=self._labels(outputs[0]),
            probabilities=self._probabilities(outputs[1], rows) if len(outputs) > 1 else None,
            classes=self._classes,
        )

    def _feed(self, x: NDArray[Any]) -> dict[str, NDArray[Any]]:
        if not self._plan.typed:
            return {self._input_name: x if x.flags.c_contiguous else np.ascontiguousarray(x)}
        return _typed_feed(self._plan, self._dtype, self._input_name, self._string_input, x)

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> Prediction:
        """:func:`records_to_matrix` then :meth:`predict`.

        Examples
        --------
        >>> import hashlib
        >>> from sklearn.ensemble import RandomForestRegressor
        >>> from flywheel.registry.models import FeatureSpec
        >>> from flywheel.training.conversion import convert_to_onnx
        >>> fitted = RandomForestRegressor(n_estimators=1, bootstrap=False, random_state=0).fit(
        ...     [[0.0], [1.0]], [1.0, 3.0]
        ... )  # one tree: 1.0 for x <= 0.5, else 3.0
        >>> data = convert_to_onnx(fitted, task=Task.REGRESSION, n_features=1).onnx_bytes
        >>> model = OnnxModel.load(
        ...     data, expected_sha256=hashlib.sha256(data).hexdigest(),
        ...     input_schema=InputSchema(features=(FeatureSpec(name="x"),)),
        ...     output_schema=OutputSchema(task=Task.REGRESSION, label_output="prediction"),
        ... )
        >>> model.predict_records([{"x": 1.0}]).to_records()
        [{'value': 3.0}]
        """
        return self.predict(self._plan.build(records))

    def _labels(self, raw: NDArray[Any]) -> tuple[str, ...]:
        values = raw.reshape(-1).tolist()
        if self._string_labels:
            labels = tuple(values)
            if self._class_set.issuperset(labels):
                return labels
        else:
            try:
                return tuple(map(self._label_map.__getitem__, values))
            except KeyError:
                pass
        raise ArtifactError(
            "the model returned a label that is not among the registered classes",
            details={"reason": "unknown_label"},
        )

    def _probabilities(self, raw: NDArray[Any], rows: int) -> NDArray[np.float64]:
        probabilities = np.asarray(raw, dtype=np.float64)
        if probabilities.shape != (rows, len(self._classes)):
            raise ArtifactError(
                f"the model returned probabilities of shape {list(probabilities.shape)}, "
                f"expected [{rows}, {len(self._classes)}]",
                details={"reason": "bad_output_shape"},
            )
        probabilities.flags.writeable = False
        return probabilities

    def _values(self, raw: NDArray[Any], rows: int) -> NDArray[np.float64]:
        values = np.asarray(raw, dtype=np.float64)
        if values.size != rows:
            raise ArtifactError(
                f"the model returned {values.size} values for {rows} rows",
                details={"reason": "bad_output_shape"},
            )
        values = values.reshape(rows)
        values.flags.writeable = False
        return values


class OnnxFeatures:
    """A typed model's preprocessing on its own: the model's inputs → the estimator's columns.

    The graph comes from a verified explainer artifact (ADR 71); it takes what the
    model takes (``input``, ``strings``) and returns ``features``, double ``[rows,
    width]``: the matrix exact explanations need.  Create with :meth:`load`.

    Examples
    --------
    >>> from flywheel.training.preprocessing import fit_preprocessor
    >>> pre = fit_preprocessor(np.array([[1.0, "a"], [np.nan, "b"]], dtype=object),
    ...                        ["x", "c"], {"x": "float", "c": "categorical"})
    >>> schema = InputSchema(features=(
    ...     FeatureSpec(name="x", nullable=True),
    ...     FeatureSpec(name="c", dtype="categorical", categories=("a", "b"))))
    >>> features = OnnxFeatures.load(pre.features_graph().SerializeToString(),
    ...                              input_schema=schema, width=3, intra_op_threads=1)
    >>> features.transform(np.array([[None, "b"]], dtype=object)).tolist()
    [[1.0, 0.0, 1.0]]
    """

    __slots__ = ("_dtype", "_input_name", "_plan", "_session", "_string_input", "_width")

    def __init__(self, session: Any, *, input_schema: InputSchema, width: int) -> None:
        # Private: build with OnnxFeatures.load, which checks the graph against the schema.
        self._session = session
        self._plan = _MatrixPlan(input_schema)
        self._dtype = _NUMPY_DTYPES[input_schema.tensor_dtype]
        self._width = width
        self._input_name, self._string_input = _check_session_inputs(session, input_schema)
        outputs = session.get_outputs()
        shape = list(outputs[0].shape) if len(outputs) == 1 else []
        if (
            len(outputs) != 1
            or outputs[0].name != FEATURES_OUTPUT
            or outputs[0].type != "tensor(double)"
            or len(shape) != 2
            or shape[1] != width
        ):
            raise InvalidArtifactError(
                f"the preprocessing graph must return {FEATURES_OUTPUT!r} as double "
                f"[batch, {width}]",
                field="explainer",
            )

    @classmethod
    def load(
        cls,
        graph: bytes,
        *,
        input_schema: InputSchema,
        width: int,
        intra_op_threads: int | None = None,
    ) -> OnnxFeatures:
        """Open a session on ``graph`` (bytes of an already verified artifact).

        Raises
        ------
        InvalidArtifactError
            onnxruntime cannot load it, or its inputs and output do not fit.
        """
        threads = default_intra_op_threads() if intra_op_threads is None else intra_op_threads
        session = _open_session(graph, max(1, threads), field="explainer")
        return cls(session, input_schema=input_schema, width=width)

    def transform(self, matrix: NDArray[Any]) -> NDArray[np.float64]:
        """``[rows, width]`` float64 for a validated ``[rows, features]`` matrix.

        Raises
        ------
        ArtifactError
            The graph failed at run time or answered another shape.
        """
        x = np.asarray(matrix, dtype=object if self._plan.typed else self._dtype)
        if self._plan.typed:
            feed = _typed_feed(self._plan, self._dtype, self._input_name, self._string_input, x)
        else:
            feed = {self._input_name: np.ascontiguousarray(x)}
        try:
            (features,) = self._session.run([FEATURES_OUTPUT], feed)
        except Exception as err:
            raise ArtifactError(
                "the preprocessing graph failed to run on this input",
                details={"reason": "inference_failed"},
            ) from err
        out = np.asarray(features, dtype=np.float64)
        if out.shape != (x.shape[0], self._width):
            raise ArtifactError(
                f"the preprocessing graph returned shape {list(out.shape)}",
                details={"reason": "bad_output_shape"},
            )
        return out


def _open_session(data: bytes, intra_op_threads: int, *, field: str) -> Any:
    """An onnxruntime CPU session tuned for Lambda (ADR 21); ``field`` names a failure."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:
        what = "the model" if field == "artifact" else f"the {field}'s graph"
        raise InvalidArtifactError(f"onnxruntime could not load {what}", field=field) from err


def _typed_feed(
    plan: _MatrixPlan, dtype: Any, input_name: str, string_input: str, x: NDArray[Any]
) -> dict[str, NDArray[Any]]:
    try:
        numbers, strings = split_typed(x, plan.numeric_idx, plan.string_idx)
    except (TypeError, ValueError):
        raise InvalidInputError(
            "the input matrix holds a string where a number belongs", field="matrix"
        ) from None
    feed: dict[str, NDArray[Any]] = {string_input: strings}
    if plan.numeric_idx:
        feed[input_name] = numbers.astype(dtype, copy=False)
    return feed


def _check_session_inputs(session: Any, schema: InputSchema) -> tuple[str, str]:
    """The numeric and string input names, once they match the schema."""
    if not schema.typed:
        return _check_session_input(session, schema), schema.string_tensor_name
    inputs = {i.name: i for i in session.get_inputs()}
    expected = {schema.string_tensor_name: ("tensor(string)", len(schema.string_features))}
    if schema.numeric_features:
        expected[schema.tensor_name] = (
            _ORT_INPUT_TYPES[schema.tensor_dtype],
            len(schema.numeric_features),
        )
    if set(inputs) != set(expected):
        raise InvalidArtifactError(
            f"the model takes inputs {sorted(inputs)}, the schema declares {sorted(expected)}",
            field="input",
        )
    for name, (kind, width) in expected.items():
        arg = inputs[name]
        shape = list(arg.shape)
        if arg.type != kind or len(shape) != 2 or shape[1] != width:
            raise InvalidArtifactError(
                f"input {name!r} is {arg.type} {shape}, the schema declares {kind} "
                f"[batch, {width}]",
                field=f"input.{name}",
            )
    return schema.tensor_name, schema.string_tensor_name


def _check_session_input(session: Any, schema: InputSchema) -> str:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InvalidArtifactError(
            f"the model must take exactly one input, it takes {len(inputs)}", field="input"
        )
    (arg,) = inputs
    if arg.name != schema.tensor_name:
        raise InvalidArtifactError(
            f"the model input is named {arg.name!r}, the schema declares {schema.tensor_name!r}",
            field="input.name",
        )
    if arg.type != _ORT_INPUT_TYPES[schema.tensor_dtype]:
        raise InvalidArtifactError(
            f"input {arg.name!r} is {arg.type}, the schema declares {schema.tensor_dtype}",
            field="input.dtype",
        )
    shape = list(arg.shape)
    if len(shape) != 2 or shape[1] != len(schema.features):
        raise InvalidArtifactError(
            f"input {arg.name!r} has shape {shape}, the schema declares "
            f"[batch, {len(schema.features)}]",
            field="input.shape",
        )
    return str(arg.name)


def _check_session_outputs(session: Any, schema: OutputSchema) -> str:
    outputs = {o.name: o for o in session.get_outputs()}
    for name in (schema.label_output, schema.probability_output):
        if name is not None and name not in outputs:
            raise InvalidArtifactError(
                f"the model has no output {name!r} (outputs: {sorted(outputs)})", field="output"
            )
    label_type = str(outputs[schema.label_output].type)
    if schema.task is Task.CLASSIFICATION:
        allowed = _ORT_INT_LABELS | {"tensor(string)"}
    else:
        allowed = _ORT_NUMBERS
    if label_type not in allowed:
        raise InvalidArtifactError(
            f"output {schema.label_output!r} is {label_type}, not a usable "
            f"{schema.task.value} label",
            field=f"output.{schema.label_output}",
        )
    if schema.probability_output is not None:
        probability_type = str(outputs[schema.probability_output].type)
        if probability_type not in _ORT_NUMBERS:
            raise InvalidArtifactError(
                f"output {schema.probability_output!r} is {probability_type}; probabilities "
                "must be a float tensor (convert with options={'zipmap': False})",
                field=f"output.{schema.probability_output}",
            )
    return label_type


def _int_label_map(classes: tuple[str, ...]) -> dict[int, str]:
    try:
        return {int(c): c for c in classes}
    except ValueError:
        raise InvalidArtifactError(
            f"the model returns integer labels but the registered classes {list(classes)} "
            "are not integers",
            field="output.classes",
        ) from None
