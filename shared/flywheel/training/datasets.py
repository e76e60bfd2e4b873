"""Load a training set into a :class:`Dataset` with a content hash for lineage.

:func:`load_dataset` reads a dataset bundled with scikit-learn, a local CSV or Parquet
file, or an ``s3://`` object, and checks it against the rules listed under Notes.

Notes
-----
Sources:

``sklearn:<name>``
    A dataset bundled with scikit-learn (``breast_cancer``, ``iris``, ``wine``:
    classification; ``diabetes``: regression).  No network access.  The hash is
    :func:`array_sha256` over ``X``, ``y``, feature names and class names.
``path/to/file.csv`` or ``.parquet``
    A local file with a header row (CSV) or a schema (Parquet).  The hash is the
    SHA-256 of the file bytes.
``s3://bucket/key.csv`` or ``.parquet``
    Read through the injected ``fetch(uri) -> bytes``; hashed like a local file.

Rules:

* Features have a type (:data:`~flywheel.registry.models.FeatureType`): declared in the
  config (``features:``) or inferred (:func:`infer_types`). Numbers may be missing (NaN),
  as may booleans and categories (``None``); the model imputes them. A dataset with
  categorical or text features has an object ``X`` (numbers, booleans, strings, ``None``);
  an all-numeric one a float64 ``X``.  The target has no missing values.
* Classification targets become ``int64`` codes into :attr:`Dataset.classes`:
  the labels as strings, sorted the way scikit-learn sorts ``classes_`` for
  string targets (code-point order, so ``"10" < "2"``).  Training fits on those
  strings, so the ONNX ``label`` output, the probability columns and
  ``OutputSchema.classes`` all share this order.  Bundled datasets use
  scikit-learn's class names (``benign``/``malignant``), sorted the same way.
* Regression targets are ``float64``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from flywheel.errors import DatasetError, FlywheelError
from flywheel.registry.models import STRING_TYPES, FeatureType, Task

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from numpy.typing import NDArray

FeatureDtype = FeatureType
#: A string column with at most this many distinct values (and short values) is inferred
#: categorical; otherwise text.
MAX_INFERRED_CATEGORIES = 50

#: Bundled scikit-learn datasets and their natural task.
SKLEARN_DATASETS: dict[str, Task] = {
    "breast_cancer": Task.CLASSIFICATION,
    "iris": Task.CLASSIFICATION,
    "wine": Task.CLASSIFICATION,
    "diabetes": Task.REGRESSION,
}

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")
_FILE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

SourceKind = Literal["sklearn", "file", "s3"]


def parse_source(source: str) -> tuple[SourceKind, str, Literal["csv", "parquet"] | None]:
    """Split a dataset source into its kind, its name or location, and its file format.

    Raises ``ValueError`` with a message for humans when the source is not one of
    the supported forms.

    Examples
    --------
    >>> parse_source("sklearn:iris")
    ('sklearn', 'iris', None)
    >>> parse_source("s3://data-bucket/churn/2025-01.parquet")
    ('s3', 's3://data-bucket/churn/2025-01.parquet', 'parquet')
    """
    if source.startswith("sklearn:"):
        name = source.removeprefix("sklearn:")
        if name not in SKLEARN_DATASETS:
            raise ValueError(
                f"unknown bundled dataset {name!r}; use one of "
                + ", ".join(f"sklearn:{n}" for n in SKLEARN_DATASETS)
            )
        return "sklearn", name, None
    suffix = Path(source.split("?", 1)[0]).suffix.lower()
    file_format = _FILE_FORMATS.get(suffix)
    if source.startswith("s3://"):
        if not _S3_URI.match(source):
            raise ValueError(f"{source!r} is not an s3://bucket/key URI")
        if file_format is None:
            raise ValueError(f"{source!r}: the key must end in .csv or .parquet")
        return "s3", source, "csv" if file_format == "csv" else "parquet"
    if "://" in source:
        raise ValueError(f"{source!r}: use sklearn:<name>, a local path or s3://bucket/key")
    if file_format is None:
        raise ValueError(f"{source!r}: a local dataset must end in .csv or .parquet")
    return "file", source, "csv" if file_format == "csv" else "parquet"


def _read_only(array: NDArray[Any]) -> NDArray[Any]:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


class Dataset(BaseModel):
    """A numeric design matrix, its target and where it came from.

    Arrays are read-only copies.

    Examples
    --------
    >>> ds = load_dataset("sklearn:iris")
    >>> (ds.X.shape, ds.classes, ds.dataset_id)
    ((150, 4), ('setosa', 'versicolor', 'virginica'), 'sklearn:iris')
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    X: np.ndarray[Any, np.dtype[Any]]
    y: np.ndarray[Any, np.dtype[Any]]
    feature_names: tuple[str, ...]
    feature_dtypes: tuple[FeatureDtype, ...]
    #: Per feature: whether the training data has missing values in it.
    nullable: tuple[bool, ...] = ()
    target: str
    task: Task
    classes: tuple[str, ...] = ()
    dataset_id: str
    sha256: str

    @field_validator("X")
    @classmethod
    def _x_is_a_matrix(
        cls,
        X: np.ndarray[Any, np.dtype[Any]],  # noqa: N803
    ) -> np.ndarray[Any, np.dtype[Any]]:
        if X.ndim != 2 or X.dtype not in (np.float64, np.dtype(object)):
            raise ValueError("X must be a 2-D float64 (or object, with strings) array")
        return _read_only(X)

    @field_validator("y")
    @classmethod
    def _y_is_vector(cls, y: np.ndarray[Any, np.dtype[Any]]) -> np.ndarray[Any, np.dtype[Any]]:
        if y.ndim != 1:
            raise ValueError("y must be a 1-D array")
        return _read_only(y)

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def typed(self) -> bool:
        """Whether the model needs preprocessing: strings or missing values."""
        return any(d in STRING_TYPES for d in self.feature_dtypes) or any(self.nullable)


def array_sha256(
    X: NDArray[np.float64],  # noqa: N803
    y: NDArray[Any],
    feature_names: Sequence[str],
    classes: Sequence[str] = (),
) -> str:
    """SHA-256 of a canonical serialization of an in-memory dataset.

    The digest covers a JSON-free header (shapes, feature and class names, one per
    line), then ``X`` as little-endian float64 in C order, then ``y`` as
    little-endian int64 (class codes) or float64.

    Examples
    --------
    >>> digest = array_sha256(np.array([[1.0, 2.0]]), np.array([0]), ["a", "b"], ["no", "yes"])
    >>> len(digest)
    64
    """
    digest = hashlib.sha256()
    header = [
        "flywheel-dataset-v1",
        f"shape={X.shape[0]}x{X.shape[1]}",
        *(f"feature={name}" for name in feature_names),
        *(f"class={name}" for name in classes),
    ]
    digest.update(("\n".join(header) + "\n").encode())
    digest.update(np.ascontiguousarray(X, dtype="<f8").tobytes())
    y_dtype = "<i8" if np.issubdtype(y.dtype, np.integer) else "<f8"
    digest.update(np.ascontiguousarray(y, dtype=y_dtype).tobytes())
    return digest.hexdigest()


def load_dataset(
    source: str,
    *,
    target: str | None = None,
    features: Sequence[str] | None = None,
    task: Task | None = None,
    fetch: Callable[[str], bytes] | None = None,
    types: Mapping[str, FeatureType] | None = None,
) -> Dataset:
    """Load a dataset from a bundled name, a local file or S3.

    Parameters
    ----------
    source
        ``sklearn:<name>``, a local ``.csv``/``.parquet`` path or ``s3://bucket/key``.
    target
        Target column (required for files; ignored for bundled datasets).
    features
        Feature columns in the order the model takes them (default: every other
        column, in file order).
    task
        Classification targets become class codes, regression targets floats.
        Default: the bundled dataset's task; for files, classification when the
        target column is not numeric, else regression.
    fetch
        Reads ``s3://`` URIs (injected so this module never imports boto3).
    types
        Declared feature types; the others are inferred (:func:`infer_types`).

    Raises
    ------
    DatasetError
        Unreadable or missing source, missing column, non-numeric or missing
        feature value, missing target value, empty data.

    Examples
    --------
    >>> load_dataset("sklearn:diabetes").task
    <Task.REGRESSION: 'regression'>
    """
    try:
        kind, location, file_format = parse_source(source)
    except ValueError as err:
        raise DatasetError(f"dataset.source: {err}", field="dataset.source") from None
    if kind == "sklearn":
        return _load_sklearn(location, features=features, task=task)
    if target is None:
        raise DatasetError("dataset.target: name the target column", field="dataset.target")
    content = _read_bytes(kind, location, fetch)
    assert file_format is not None
    return dataset_from_bytes(
        content, file_format=file_format, source=source, target=target, features=features,
        task=task, types=types,
    )  # fmt: skip


def read_source(source: str, *, fetch: Callable[[str], bytes] | None = None) -> bytes:
    """The bytes of a file or ``s3://`` dataset source, as they are now.

    Raises
    ------
    DatasetError
        A bundled dataset (it has no bytes), or a source that cannot be read.

    Examples
    --------
    >>> read_source("sklearn:iris")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    flywheel.errors.DatasetError: dataset.source: sklearn:iris is not a file
    """
    try:
        kind, location, _ = parse_source(source)
    except ValueError as err:
        raise DatasetError(f"dataset.source: {err}", field="dataset.source") from None
    if kind == "sklearn":
        raise DatasetError(f"dataset.source: {source} is not a file", field="dataset.source")
    return _read_bytes(kind, location, fetch)


def dataset_from_bytes(
    content: bytes,
    *,
    file_format: Literal["csv", "parquet"],
    source: str,
    target: str,
    features: Sequence[str] | None = None,
    task: Task | None = None,
    types: Mapping[str, FeatureType] | None = None,
) -> Dataset:
    """A :class:`Dataset` from CSV or Parquet bytes (hashed as they are), named ``source``.

    Examples
    --------
    >>> ds = dataset_from_bytes(
    ...     b"x,y\\n1,a\\n2,b\\n", file_format="csv", source="mem.csv", target="y"
    ... )
    >>> (ds.feature_names, ds.classes)
    (('x',), ('a', 'b'))
    """
    columns = _read_csv(content) if file_format == "csv" else _read_parquet(content)
    return _assemble(
        columns,
        source=source,
        sha256=hashlib.sha256(content).hexdigest(),
        target=target,
        features=features,
        task=task,
        types=types,
    )


def read_columns(content: bytes, *, file_format: Literal["csv", "parquet"]) -> dict[str, Any]:
    """Raw columns of CSV or Parquet bytes, for schema inference (``None`` where missing)."""
    columns = _read_csv(content) if file_format == "csv" else _read_parquet(content)
    return dict(columns)


def _read_bytes(kind: SourceKind, location: str, fetch: Callable[[str], bytes] | None) -> bytes:
    if kind == "s3":
        if fetch is None:
            raise DatasetError(
                f"dataset.source: reading {location} needs a fetch function",
                field="dataset.source",
            )
        try:
            return fetch(location)
        except FlywheelError:
            raise
        except Exception as err:  # the adapter's own failure: keep its type out of the message
            raise DatasetError(
                f"dataset.source: could not read {location}", field="dataset.source"
            ) from err
    path = Path(location)
    if not path.is_file():
        raise DatasetError(f"dataset.source: file not found: {location}", field="dataset.source")
    try:
        return path.read_bytes()
    except OSError as err:
        raise DatasetError(
            f"dataset.source: could not read {location}", field="dataset.source"
        ) from err


class _Column:
    """One raw column: its values (``None`` when missing) and what the source says they are.

    ``dtype`` is ``None`` for CSV text (parsed later) and for non-numeric Parquet
    columns (``text`` tells the two apart).
    """

    __slots__ = ("dtype", "text", "values")

    def __init__(self, values: list[Any], dtype: FeatureDtype | None, *, text: bool) -> None:
        self.values = values
        self.dtype = dtype
        self.text = text


def _read_csv(content: bytes) -> dict[str, _Column]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError("dataset.source: the CSV is not UTF-8", field="dataset.source") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise DatasetError("dataset.source: the CSV has no header row", field="dataset.source")
    names = [name.strip() for name in header]
    _check_unique(names)
    values: list[list[Any]] = [[] for _ in names]
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(names):
            raise DatasetError(
                f"dataset.source: CSV line {line} has {len(row)} fields, the header {len(names)}",
                field="dataset.source",
            )
        for column, raw in zip(values, row, strict=True):
            cell = raw.strip()
            column.append(cell if cell else None)
    return {
        name: _Column(column, None, text=True) for name, column in zip(names, values, strict=True)
    }


def _read_parquet(content: bytes) -> dict[str, _Column]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - the training extra installs pyarrow
        raise DatasetError(
            "dataset.source: reading Parquet needs pyarrow (install flywheel-mlops[training])",
            field="dataset.source",
        ) from None
    try:
        table = pq.read_table(io.BytesIO(content))
    except (pa.ArrowException, OSError):
        raise DatasetError(
            "dataset.source: not a readable Parquet file", field="dataset.source"
        ) from None
    columns: dict[str, _Column] = {}
    _check_unique(list(table.column_names))
    for name, column in zip(table.column_names, table.columns, strict=True):
        arrow_type = column.type
        dtype: FeatureDtype | None
        if pa.types.is_boolean(arrow_type):
            dtype = "bool"
        elif pa.types.is_integer(arrow_type):
            dtype = "int"
        elif pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
            dtype = "float"
        else:
            dtype = None
        columns[name] = _Column(column.to_pylist(), dtype, text=False)
    return columns


def _check_unique(names: list[str]) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(
            f"dataset.source: duplicate column names {duplicates}", field="dataset.source"
        )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _typed_array(
    name: str, column: _Column, kind: FeatureType
) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """The column as ``kind`` (float64 with NaN, or objects with ``None``) and its gaps."""
    missing = np.fromiter((_is_missing(v) for v in column.values), dtype=bool,
                          count=len(column.values))  # fmt: skip
    field = f"dataset.features.{name}"
    if kind in STRING_TYPES:
        values = np.empty(len(column.values), dtype=object)
        values[:] = [None if m else _label_text(v) for v, m in zip(column.values, missing,
                                                                 strict=True)]  # fmt: skip
        return values, missing
    if kind == "bool":
        try:
            parsed = [math.nan if m else _boolean(v) for v, m in zip(column.values, missing,
                                                                      strict=True)]  # fmt: skip
        except ValueError as err:
            raise DatasetError(f"dataset.features: column {name!r} {err}", field=field) from None
        return np.asarray(parsed, dtype=np.float64), missing
    if column.dtype is None and not column.text:
        raise DatasetError(
            f"dataset.features: column {name!r} is declared {kind} but holds strings", field=field
        )
    try:
        array = np.asarray([math.nan if m else v for v, m in zip(column.values, missing,
                                                                  strict=True)],
                           dtype=np.float64)  # fmt: skip
    except (TypeError, ValueError):
        bad = next(v for v in column.values if not _is_missing(v) and not _parses_as_float(v))
        raise DatasetError(
            f"dataset.features: column {name!r} is declared {kind} but holds {str(bad)[:40]!r}",
            field=field,
        ) from None
    if np.isinf(array).any():
        raise DatasetError(f"dataset.features: column {name!r} has non-finite values", field=field)
    if kind == "int" and not np.all(np.isnan(array) | (array == np.round(array))):
        raise DatasetError(f"dataset.features: column {name!r} is declared int but holds "
                           "fractions", field=field)  # fmt: skip
    return array, missing


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _boolean(value: Any) -> float:
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    raise ValueError(f"is declared bool but holds {str(value)[:40]!r}")


def infer_types(columns: Mapping[str, Any]) -> dict[str, FeatureType]:
    """Each column's feature type, as training infers it when the config declares none.

    Numbers are ``float`` (``int`` for Parquet integer columns); ``true``/``false`` (and
    Parquet booleans) are ``bool``; strings are ``categorical`` when they have at most
    :data:`MAX_INFERRED_CATEGORIES` distinct values, at most half the rows, and at most
    three words on average; other strings are ``text``.

    Examples
    --------
    >>> cols = read_columns(b"a,b,c\\n1,x,true\\n2,y,false\\n3,x,true\\n", file_format="csv")
    >>> infer_types(cols)
    {'a': 'float', 'b': 'categorical', 'c': 'bool'}
    """
    kinds: dict[str, FeatureType] = {}
    for name, column in columns.items():
        present = [v for v in column.values if not _is_missing(v)]
        if column.dtype is not None:
            kinds[name] = column.dtype
        elif (
            present
            and all(
                isinstance(v, bool) or str(v).strip().lower() in _TRUE | _FALSE for v in present
            )
            and any(str(v).strip().lower() in ("true", "false") for v in present)
        ):
            kinds[name] = "bool"
        elif column.text and all(_parses_as_float(v) for v in present):
            kinds[name] = "float"  # declare `int` to refuse fractions at serving time
        else:
            texts = [str(v) for v in present]
            distinct = len(set(texts))
            words = sum(len(t.split()) for t in texts) / max(len(texts), 1)
            few = distinct <= min(MAX_INFERRED_CATEGORIES, max(2, len(texts) // 2))
            kinds[name] = "categorical" if few and words <= 3 else "text"
    return kinds


def _parses_as_float(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _label_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _target_is_numeric(column: _Column) -> bool:
    if column.dtype in ("float", "int"):
        return True
    return column.text and all(_parses_as_float(v) for v in column.values if not _is_missing(v))


def _assemble(
    columns: dict[str, _Column],
    *,
    source: str,
    sha256: str,
    target: str,
    features: Sequence[str] | None,
    task: Task | None,
    types: Mapping[str, FeatureType] | None = None,
) -> Dataset:
    if target not in columns:
        raise DatasetError(
            f"dataset.target: column {target!r} not found; columns are {sorted(columns)}",
            field="dataset.target",
        )
    names = list(features) if features is not None else [n for n in columns if n != target]
    missing_columns = [n for n in names if n not in columns]
    if missing_columns:
        raise DatasetError(
            f"dataset.features: columns not found: {missing_columns}", field="dataset.features"
        )
    if target in names:
        raise DatasetError(
            f"dataset.features: the target {target!r} is also listed as a feature",
            field="dataset.features",
        )
    if not names:
        raise DatasetError("dataset.features: no feature columns", field="dataset.features")
    target_column = columns[target]
    n_rows = len(target_column.values)
    if n_rows == 0:
        raise DatasetError("dataset.source: the dataset has no rows", field="dataset.source")
    n_missing = sum(1 for v in target_column.values if _is_missing(v))
    if n_missing:
        raise DatasetError(
            f"dataset.target: column {target!r} has {n_missing} missing value(s)",
            field="dataset.target",
        )
    if task is None:
        task = Task.REGRESSION if _target_is_numeric(target_column) else Task.CLASSIFICATION

    declared = dict(types or {})
    undeclared = sorted(set(declared) - set(names))
    if undeclared:
        raise DatasetError(
            f"features.{undeclared[0]}: not a feature column of the dataset",
            field=f"features.{undeclared[0]}",
        )
    inferred = infer_types({n: columns[n] for n in names if n not in declared})
    kinds = [declared.get(n) or inferred[n] for n in names]
    arrays = [
        _typed_array(name, columns[name], kind) for name, kind in zip(names, kinds, strict=True)
    ]
    nullable = tuple(bool(missing.any()) for _, missing in arrays)
    if any(k in STRING_TYPES for k in kinds):
        matrix = np.empty((n_rows, len(names)), dtype=object)
        for j, (values, _) in enumerate(arrays):
            matrix[:, j] = values
    else:
        matrix = np.column_stack([values for values, _ in arrays]).astype(np.float64)
    classes: tuple[str, ...] = ()
    y: NDArray[Any]
    if task is Task.CLASSIFICATION:
        labels = [_label_text(v) for v in target_column.values]
        classes = tuple(sorted(set(labels)))
        if len(classes) < 2:
            raise DatasetError(
                f"dataset.target: column {target!r} has a single class {classes[0]!r}",
                field="dataset.target",
            )
        code = {label: i for i, label in enumerate(classes)}
        y = np.fromiter((code[label] for label in labels), dtype=np.int64, count=n_rows)
    else:
        if not _target_is_numeric(target_column):
            raise DatasetError(
                f"dataset.target: column {target!r} is not numeric; regression needs numbers",
                field="dataset.target",
            )
        y = np.asarray(target_column.values, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise DatasetError(
                f"dataset.target: column {target!r} has non-finite values",
                field="dataset.target",
            )
    return Dataset(
        X=matrix,
        y=y,
        feature_names=tuple(names),
        feature_dtypes=tuple(kinds),
        nullable=nullable,
        target=target,
        task=task,
        classes=classes,
        dataset_id=source,
        sha256=sha256,
    )


def _load_sklearn(name: str, *, features: Sequence[str] | None, task: Task | None) -> Dataset:
    natural = SKLEARN_DATASETS[name]
    if task is not None and task is not natural:
        raise DatasetError(
            f"dataset.source: sklearn:{name} is a {natural} dataset, the task is {task}",
            field="dataset.source",
        )
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    matrix = np.asarray(bunch.data, dtype=np.float64)
    all_names = [str(n) for n in bunch.feature_names]
    if features is not None:
        unknown = [f for f in features if f not in all_names]
        if unknown:
            raise DatasetError(
                f"dataset.features: sklearn:{name} has no columns {unknown}",
                field="dataset.features",
            )
        matrix = matrix[:, [all_names.index(f) for f in features]]
        all_names = list(features)
    classes: tuple[str, ...] = ()
    if natural is Task.CLASSIFICATION:
        names = [str(c) for c in bunch.target_names]
        classes = tuple(sorted(names))
        recode = np.array([classes.index(n) for n in names], dtype=np.int64)
        y = recode[np.asarray(bunch.target, dtype=np.int64)]
    else:
        y = np.asarray(bunch.target, dtype=np.float64)
    return Dataset(
        X=matrix,
        y=y,
        feature_names=tuple(all_names),
        feature_dtypes=("float",) * len(all_names),
        target="target",
        task=natural,
        classes=classes,
        dataset_id=f"sklearn:{name}",
        sha256=array_sha256(matrix, y, all_names, classes),
    )
