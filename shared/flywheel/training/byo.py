"""Bring a model trained elsewhere: an ONNX file, its schema and a reference sample.

:func:`import_onnx` checks the graph (:func:`~flywheel.artifacts.validation.validate_onnx`),
runs it with ONNX Runtime on the sample, compares the given expected outputs (when
there are any) with the usual parity tolerances, and profiles the sample for drift.
The result registers like a trained version; its lineage says what is not known
(training data, code, seed), so ``flywheel reproduce`` refuses it (ADR 70).

Examples
--------
>>> load_schema({
...     "task": "regression",
...     "features": [{"name": "x", "minimum": 0}],
... }).label_output
'prediction'
"""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from flywheel.artifacts.validation import OnnxSummary, validate_onnx
from flywheel.drift.profile import ReferenceProfile, build_profile, score_column
from flywheel.errors import ConfigError, DatasetError, InvalidArtifactError, config_error
from flywheel.models import Frozen
from flywheel.registry.models import (
    ArtifactRef,
    FeatureSpec,
    ImportedLineage,
    InputSchema,
    Lineage,
    OutputSchema,
    ParityReport,
    Task,
    VersionDraft,
    trainable_task,
)
from flywheel.training.config import ParityTolerances
from flywheel.training.conversion import (
    ModelOutputs,
    check_parity,
    measure_parity,
    onnx_session,
)
from flywheel.training.lineage import dependency_lock_hash, library_versions

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

TableFormat = Literal["csv", "parquet"]
_FORMATS: dict[str, TableFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

#: Where a mismatch found by ``validate_onnx`` is fixed in the schema file.
_SCHEMA_FIELDS = {
    "input.shape": "schema.features",
    "input.dtype": "schema.input.dtype",
    "input.name": "schema.input.name",
    "output": "schema.outputs",
    "output.classes": "schema.classes",
}


def read_file(path: str | Path, *, field: str) -> bytes:
    """The bytes of a local file given on the command line, or one line naming ``field``.

    Examples
    --------
    >>> read_file("no/such/model.onnx", field="onnx")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    flywheel.errors.DatasetError: onnx: file not found: no/such/model.onnx
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{field}: file not found: {path}", field=field)
    try:
        return path.read_bytes()
    except OSError:
        raise DatasetError(f"{field}: could not read {path}", field=field) from None


def load_schema_file(path: str | Path) -> ModelSchema:
    """Read and validate a schema file (YAML or JSON).

    Raises
    ------
    ConfigError
        Unreadable file, bad syntax, or a bad field (``schema.features.0.name: ...``).
    """
    import yaml

    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"schema: {path.name} is not .yaml, .yml or .json", field="schema")
    try:
        data = yaml.safe_load(read_file(path, field="schema").decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ConfigError(
            f"schema: {path.name} is not valid YAML or JSON", field="schema"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("schema: the top level must be a mapping", field="schema")
    return load_schema(data)


def _error(field: str, message: str) -> PydanticCustomError:
    """A validation error that names its sub-field (``config_error`` reads ``subfield``)."""
    return PydanticCustomError("flywheel", "{message}", {"message": message, "subfield": field})


class OutputNames(Frozen):
    """The graph's outputs: a classifier's ``label`` (and ``probabilities``), a regressor's
    ``prediction``.

    Examples
    --------
    >>> OutputNames(label="output_label", probabilities="output_probability").label
    'output_label'
    """

    label: str | None = Field(default=None, min_length=1)
    probabilities: str | None = Field(default=None, min_length=1)
    prediction: str | None = Field(default=None, min_length=1)


class InputTensor(Frozen):
    """The graph's input tensor; what is left out is read from the graph."""

    name: str | None = Field(default=None, min_length=1)
    dtype: Literal["float32", "float64"] | None = None


class ModelSchema(Frozen):
    """The schema file of ``flywheel register``: features, task, outputs and classes.

    Examples
    --------
    >>> schema = ModelSchema.model_validate({
    ...     "task": "classification", "classes": [0, 1],
    ...     "features": [{"name": "age", "dtype": "int", "minimum": 0, "maximum": 130}],
    ...     "outputs": {"probabilities": "probabilities"},
    ... })
    >>> (schema.classes, schema.label_output)
    (('0', '1'), 'label')
    """

    task: Task
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    outputs: OutputNames = Field(default_factory=OutputNames)
    classes: tuple[str, ...] = ()
    input: InputTensor = Field(default_factory=InputTensor)
    parity: ParityTolerances = Field(default_factory=ParityTolerances)
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("task")
    @classmethod
    def _trainable(cls, task: Task) -> Task:
        return trainable_task(task)

    @field_validator("classes", mode="before")
    @classmethod
    def _class_names(cls, classes: Any) -> Any:
        if isinstance(classes, list | tuple):
            return tuple(str(c) if isinstance(c, int | str) else c for c in classes)
        return classes

    @field_validator("features")
    @classmethod
    def _unique_features(cls, features: tuple[FeatureSpec, ...]) -> tuple[FeatureSpec, ...]:
        names = [f.name for f in features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate features {duplicates}")
        for i, spec in enumerate(features):
            if spec.is_string:  # the sample is read as numbers; Flywheel trains typed models
                raise _error(
                    f"{i}.dtype",
                    f"{spec.dtype} features are not supported for an imported model (numbers "
                    "and booleans only): train it with Flywheel to keep its preprocessing",
                )
        return features

    @model_validator(mode="after")
    def _outputs_fit_task(self) -> ModelSchema:
        out = self.outputs
        if self.task is Task.CLASSIFICATION:
            if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
                raise _error("classes", "a classifier declares at least two distinct classes")
            if out.prediction is not None:
                raise _error(
                    "outputs.prediction", "a classifier names outputs.label (and probabilities)"
                )
            return self
        if self.classes:
            raise _error("classes", "a regressor declares no classes")
        if out.label is not None or out.probabilities is not None:
            raise _error("outputs", "a regressor has one output, named by outputs.prediction")
        return self

    @property
    def label_output(self) -> str:
        """The classifier's label output or the regressor's prediction output (with defaults)."""
        if self.task is Task.CLASSIFICATION:
            return self.outputs.label or "label"
        return self.outputs.prediction or "prediction"


def load_schema(data: Mapping[str, Any]) -> ModelSchema:
    """Validate a schema mapping (read from ``schema.yaml``).

    Raises
    ------
    ConfigError
        Naming the first bad field, e.g. ``schema.features.0.dtype: ...``.

    Examples
    --------
    >>> load_schema({"task": "classification", "features": [{"name": "x"}], "classes": ["a"]})
    Traceback (most recent call last):
    ...
    flywheel.errors.ConfigError: schema.classes: a classifier declares at least two distinct classes
    """
    try:
        return ModelSchema.model_validate(dict(data))
    except ValidationError as err:
        error = config_error(err)
        raise ConfigError(
            f"schema.{error}", field=f"schema.{error.field}", details=error.details
        ) from None


def table_format(name: str, *, field: str) -> TableFormat:
    """``csv`` or ``parquet`` from a file name's suffix.

    Examples
    --------
    >>> table_format("sample.parquet", field="reference")
    'parquet'
    """
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix not in _FORMATS:
        raise DatasetError(f"{field}: {name} is not a .csv or .parquet file", field=field)
    return _FORMATS[suffix]


def read_table(content: bytes, *, file_format: TableFormat, field: str) -> Any:
    """A ``pyarrow.Table`` from CSV or Parquet bytes.

    Examples
    --------
    >>> read_table(b"x,y\\n1,2\\n", file_format="csv", field="reference").num_rows
    1
    """
    import pyarrow as pa
    from pyarrow import csv, parquet

    try:
        if file_format == "csv":
            return csv.read_csv(io.BytesIO(content))
        return parquet.read_table(io.BytesIO(content))
    except (pa.ArrowException, OSError):
        raise DatasetError(f"{field}: not a readable {file_format} file", field=field) from None


def _numbers(table: Any, name: str, *, field: str) -> NDArray[np.float64]:
    import pyarrow as pa

    if name not in table.column_names:
        raise DatasetError(f"{field}: no column {name!r}", field=f"{field}.{name}")
    try:
        column = table.column(name).cast(pa.float64())
    except (pa.ArrowException, ValueError):
        raise DatasetError(
            f"{field}.{name}: the column is not numeric", field=f"{field}.{name}"
        ) from None
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _feature_matrix(table: Any, features: tuple[FeatureSpec, ...]) -> NDArray[np.float64]:
    columns = []
    for i, spec in enumerate(features):
        values = _numbers(table, spec.name, field="reference")
        where = f"reference.{spec.name}"
        missing = np.isnan(values)
        if missing.any() and not spec.nullable:
            raise DatasetError(
                f"{where}: {int(missing.sum())} missing values, and schema.features.{i} is "
                "not nullable",
                field=where,
            )
        present = values[~missing]
        if np.isinf(present).any():
            raise DatasetError(f"{where}: infinite values", field=where)
        if spec.dtype == "int" and not np.all(present == np.round(present)):
            raise DatasetError(f"{where}: non-integer values for an int feature", field=where)
        if spec.dtype == "bool" and not np.isin(present, (0.0, 1.0)).all():
            raise DatasetError(f"{where}: values other than 0/1 for a bool feature", field=where)
        low = spec.minimum if spec.minimum is not None else -np.inf
        high = spec.maximum if spec.maximum is not None else np.inf
        outside = int(((present < low) | (present > high)).sum())
        if outside:
            raise DatasetError(
                f"{where}: {outside} values outside [{low}, {high}] (schema.features.{i})",
                field=where,
            )
        columns.append(values)
    return np.column_stack(columns)


def _label_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _graph_input(onnx_bytes: bytes) -> tuple[str, Literal["float32", "float64"]] | None:
    """The graph's single input name and float type, when it has exactly that."""
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(onnx_bytes)
    except Exception:  # validate_onnx reports unparsable bytes
        return None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        return None
    elem = inputs[0].type.tensor_type.elem_type
    return inputs[0].name, "float32" if elem == onnx.TensorProto.FLOAT else "float64"


def registry_schemas(schema: ModelSchema, onnx_bytes: bytes) -> tuple[InputSchema, OutputSchema]:
    """The registry's input and output schemas for ``schema`` and this graph.

    Examples
    --------
    >>> schema = load_schema({"task": "regression", "features": [{"name": "x"}],
    ...                       "input": {"name": "X", "dtype": "float32"}})
    >>> registry_schemas(schema, b"")[0].tensor_dtype
    'float32'
    """
    graph = _graph_input(onnx_bytes) or ("input", "float64")
    input_schema = InputSchema(
        features=schema.features,
        tensor_name=schema.input.name or graph[0],
        tensor_dtype=schema.input.dtype or graph[1],
    )
    output_schema = OutputSchema(
        task=schema.task,
        label_output=schema.label_output,
        probability_output=schema.outputs.probabilities,
        classes=schema.classes,
    )
    return input_schema, output_schema


def _validate(
    onnx_bytes: bytes, input_schema: InputSchema, output_schema: OutputSchema
) -> OnnxSummary:
    try:
        return validate_onnx(onnx_bytes, input_schema, output_schema)
    except InvalidArtifactError as err:
        field = _SCHEMA_FIELDS.get(err.field or "", f"onnx.{err.field or 'model'}")
        raise InvalidArtifactError(
            f"{field}: {err.message}", field=field, details=err.details
        ) from None


def run_model(
    onnx_bytes: bytes,
    X: NDArray[np.float64],  # noqa: N803
    output_schema: OutputSchema,
) -> ModelOutputs:
    """Run the graph on ``X`` with ONNX Runtime, by the output names of ``output_schema``.

    Labels are class names; ``values`` are ``[N, classes]`` probabilities (a one-hot of
    the labels for a classifier without a probability output) or ``[N]`` predictions.

    Raises
    ------
    InvalidArtifactError
        The model fails on the sample, or returns labels outside ``classes`` or
        outputs of the wrong shape.
    """
    session = onnx_session(onnx_bytes)
    model_input = session.get_inputs()[0]
    dtype = np.float64 if model_input.type == "tensor(double)" else np.float32
    names = [output_schema.label_output]
    if output_schema.probability_output is not None:
        names.append(output_schema.probability_output)
    try:
        raw = session.run(names, {model_input.name: np.ascontiguousarray(X, dtype=dtype)})
    except Exception as err:  # onnxruntime's own error types
        raise InvalidArtifactError(
            "reference: ONNX Runtime failed to run the model on the sample", field="reference"
        ) from err
    rows = X.shape[0]
    if output_schema.task is Task.REGRESSION:
        values = np.asarray(raw[0], dtype=np.float64)
        if values.size != rows:
            raise InvalidArtifactError(
                f"schema.outputs.prediction: output {names[0]!r} has shape {values.shape}, "
                f"not one value per row",
                field="schema.outputs.prediction",
            )
        return ModelOutputs(labels=None, values=values.reshape(rows))
    return _classifier_outputs(raw, rows, output_schema)


def _classifier_outputs(raw: list[Any], rows: int, schema: OutputSchema) -> ModelOutputs:
    labels = np.asarray([_label_text(v) for v in np.asarray(raw[0]).ravel()], dtype=np.str_)
    unknown = sorted(set(labels.tolist()) - set(schema.classes))
    if labels.shape != (rows,) or unknown:
        raise InvalidArtifactError(
            f"schema.classes: the model returned labels {unknown[:5]} not among the declared "
            f"classes {list(schema.classes)}",
            field="schema.classes",
        )
    if len(raw) == 1:
        return ModelOutputs(labels=labels, values=_one_hot(labels, schema.classes))
    probabilities = np.asarray(raw[1], dtype=np.float64)
    if probabilities.shape != (rows, len(schema.classes)):
        raise InvalidArtifactError(
            f"schema.outputs.probabilities: shape {probabilities.shape}, expected "
            f"[{rows}, {len(schema.classes)}]",
            field="schema.outputs.probabilities",
        )
    return ModelOutputs(labels=labels, values=probabilities)


def _one_hot(labels: NDArray[np.str_], classes: tuple[str, ...]) -> NDArray[np.float64]:
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(labels), len(classes)), dtype=np.float64)
    out[np.arange(len(labels)), [index[str(label)] for label in labels]] = 1.0
    return out


def expected_outputs(table: Any, output_schema: OutputSchema, rows: int) -> ModelOutputs:
    """The expected outputs file as :class:`ModelOutputs` (the parity reference).

    Columns: a regressor's prediction output name; a classifier's label output name and,
    when the model has a probability output, one column per class (named by the class).

    Raises
    ------
    DatasetError
        A missing column, a row count other than the sample's, or an unknown label.
    """
    if table.num_rows != rows:
        raise DatasetError(
            f"expected: {table.num_rows} rows, the reference sample has {rows}", field="expected"
        )
    if output_schema.task is Task.REGRESSION:
        values = _numbers(table, output_schema.label_output, field="expected")
        return ModelOutputs(labels=None, values=values)
    name = output_schema.label_output
    if name not in table.column_names:
        raise DatasetError(f"expected: no column {name!r} (the labels)", field=f"expected.{name}")
    labels = np.asarray([_label_text(v) for v in table.column(name).to_pylist()], dtype=np.str_)
    unknown = sorted(set(labels.tolist()) - set(output_schema.classes))
    if unknown:
        raise DatasetError(
            f"expected.{name}: labels {unknown[:5]} are not among the declared classes",
            field=f"expected.{name}",
        )
    if output_schema.probability_output is None:
        return ModelOutputs(labels=labels, values=_one_hot(labels, output_schema.classes))
    values = np.column_stack([_numbers(table, c, field="expected") for c in output_schema.classes])
    return ModelOutputs(labels=labels, values=values)


class ImportedModel(BaseModel):
    """A checked ONNX model, ready to upload and register (see :meth:`version_draft`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    onnx_bytes: bytes = Field(repr=False)
    onnx_sha256: str
    summary: OnnxSummary
    input_schema: InputSchema
    output_schema: OutputSchema
    parity: ParityReport | None
    profile: ReferenceProfile = Field(repr=False)
    lineage: Lineage
    description: str = ""

    def version_draft(
        self, artifact: ArtifactRef, *, reference_profile: ArtifactRef | None = None
    ) -> VersionDraft:
        """The registry record, once the ONNX bytes are stored as ``artifact``.

        Raises
        ------
        InvalidArtifactError
            When ``artifact`` is not these bytes.
        """
        if artifact.sha256 != self.onnx_sha256:
            raise InvalidArtifactError(
                "artifact.sha256 does not match the imported ONNX model", field="artifact"
            )
        return VersionDraft(
            name=self.name,
            artifact=artifact,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            parity=self.parity,
            reference_profile=reference_profile,
            lineage=self.lineage,
            description=self.description,
            tags={"origin": "imported"},
        )


def import_onnx(
    name: str,
    onnx_bytes: bytes,
    schema: ModelSchema,
    *,
    reference: bytes,
    reference_name: str,
    expected: bytes | None = None,
    expected_name: str | None = None,
    artifact_name: str = "model.onnx",
    run_id: str | None = None,
) -> ImportedModel:
    """Check an ONNX model trained elsewhere against its schema and a reference sample.

    Parameters
    ----------
    name
        The model's registry name.
    onnx_bytes, schema
        The graph and what it takes and returns.
    reference, reference_name
        A CSV or Parquet sample (by ``reference_name``'s suffix) with every feature as
        a column; it is run through the model and becomes the drift reference profile.
    expected, expected_name
        The outputs the model gave on the sample where it was trained; compared with
        ONNX Runtime's with ``schema.parity`` (a failure raises ``ParityError``).
    artifact_name
        The file the bytes came from (recorded in the lineage).
    run_id
        Identifier of this import in the lineage (default: a random one).

    Raises
    ------
    InvalidArtifactError
        The graph fails validation or does not match the schema (naming the field).
    DatasetError
        The sample or the expected outputs do not fit the schema.
    ParityError
        The expected outputs differ from ONNX Runtime's beyond the tolerances.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> from flywheel.training.conversion import convert_to_onnx
    >>> fitted = LinearRegression().fit([[0.0], [1.0]], [1.0, 3.0])
    >>> graph = convert_to_onnx(fitted, task=Task.REGRESSION, n_features=1).onnx_bytes
    >>> imported = import_onnx(
    ...     "line", graph, load_schema({"task": "regression", "features": [{"name": "x"}]}),
    ...     reference=b"x\\n0\\n1\\n2\\n", reference_name="sample.csv",
    ...     expected=b"prediction\\n1\\n3\\n5\\n", expected_name="expected.csv",
    ... )
    >>> (imported.parity.passed, imported.lineage.reproducible, imported.profile.rows)
    (True, False, 3)
    """
    input_schema, output_schema = registry_schemas(schema, onnx_bytes)
    summary = _validate(onnx_bytes, input_schema, output_schema)
    sample = read_table(
        reference, file_format=table_format(reference_name, field="reference"), field="reference"
    )
    if sample.num_rows == 0:
        raise DatasetError("reference: the sample has no rows", field="reference")
    x = _feature_matrix(sample, schema.features)
    outputs = run_model(onnx_bytes, x, output_schema)

    parity: ParityReport | None = None
    expected_sha256: str | None = None
    if expected is not None:
        label = expected_name or "expected"
        table = read_table(
            expected, file_format=table_format(label, field="expected"), field="expected"
        )
        reference_outputs = expected_outputs(table, output_schema, x.shape[0])
        parity = check_parity(
            measure_parity(
                reference_outputs,
                outputs,
                task=schema.task,
                precision=input_schema.tensor_dtype,
                tolerances=schema.parity,
            )
        )
        expected_sha256 = hashlib.sha256(expected).hexdigest()

    scores = outputs.values if schema.task is Task.REGRESSION else score_column(outputs.values)
    profile = build_profile(x, input_schema.feature_names, predictions=scores)
    lineage = Lineage(
        dependency_lock_hash=dependency_lock_hash(),
        library_versions=library_versions(),
        training_run_id=run_id or f"import-{uuid.uuid4().hex}",
        reproducible=False,
        imported=ImportedLineage(
            artifact_name=artifact_name,
            producer=summary.producer,
            opsets=summary.opsets,
            reference_name=reference_name,
            reference_sha256=hashlib.sha256(reference).hexdigest(),
            reference_rows=int(x.shape[0]),
            expected_name=expected_name if expected is not None else None,
            expected_sha256=expected_sha256,
        ),
    )
    return ImportedModel(
        name=name,
        onnx_bytes=onnx_bytes,
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        summary=summary,
        input_schema=input_schema,
        output_schema=output_schema,
        parity=parity,
        profile=profile,
        lineage=lineage,
        description=schema.description or "",
    )
