"""Training configuration: one file per model, validated before anything trains.

A config names the model, the task, the dataset, the estimator with its
hyperparameters, the seed and the holdout size, and the ONNX parity tolerances.
Problems surface as :class:`~flywheel.errors.ConfigError` with a one-line message
that starts with the field, e.g. ``dataset.source: ...`` or
``hyperparameters.n_estimatorz: ...``.

Examples
--------
>>> import yaml
>>> config = parse_config(yaml.safe_load('''
... model: churn
... task: classification
... dataset: {source: data/churn.csv, target: churned}
... estimator: random_forest
... hyperparameters: {n_estimators: 200, max_depth: 8}
... seed: 42
... '''))
>>> config.estimator.value, config.hyperparameters["n_estimators"]
('random_forest', 200)
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flywheel.errors import ConfigError, config_error
from flywheel.features.models import ResourceName
from flywheel.models import Frozen
from flywheel.registry.models import FeatureType, Task, trainable_task, validate_model_name
from flywheel.training.datasets import SKLEARN_DATASETS, parse_source
from flywheel.training.estimators import (
    FLOAT64_ONLY,
    RESERVED_PARAMS,
    Estimator,
    conflicting_params,
    invalid_params,
    supports,
    unknown_params,
)
from flywheel.training.preprocessing import ColumnOptions
from flywheel.training.search_space import SearchConfig, check_space

if TYPE_CHECKING:
    from collections.abc import Mapping

Precision = Literal["float64", "float32"]

#: ``package.module:callable`` (the callable may be dotted: ``module:Class.build``).
ENTRYPOINT_PATTERN = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$"


def _error(field: str, message: str) -> PydanticCustomError:
    """A validation error whose ``ctx`` names a sub-field (see :func:`_format_errors`)."""
    return PydanticCustomError("flywheel", "{message}", {"message": message, "subfield": field})


def _duplicates(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if names is not None:
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate features {duplicates}")
    return names


class FeatureViewSource(Frozen):
    """The feature view a training set is joined from (``dataset.feature_view``).

    ``dataset.source`` is then the *entity table*: the view's join key, an event time
    (``timestamp_column``) and the target label per row, plus any other columns.
    Each row gets the view's feature values as they were known at its event time.
    Rows that see no value at all (no row yet, expired by the TTL, or only rows
    created later) are dropped and counted; more than ``max_unmatched_share`` of
    them fails the build, since that almost always means a wrong view, version or
    timestamp column rather than missing data.

    Examples
    --------
    >>> FeatureViewSource(name="customer-orders", features=["spend", "orders"]).version is None
    True
    """

    name: ResourceName
    #: ``None``: the latest version when the training set is built (lineage records it).
    version: int | None = Field(default=None, ge=1)
    #: The model's input features, in order (default: every feature of the view).
    features: tuple[str, ...] | None = Field(default=None, min_length=1)
    timestamp_column: str = Field(default="event_timestamp", min_length=1)
    max_unmatched_share: float = Field(default=0.5, ge=0, le=1)

    @field_validator("features")
    @classmethod
    def _unique_features(cls, features: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _duplicates(features)


class DatasetConfig(Frozen):
    """Where the training data comes from.

    Examples
    --------
    >>> DatasetConfig(source="data/churn.csv", target="churned").target
    'churned'
    >>> DatasetConfig(
    ...     source="s3://data/entities.parquet",
    ...     target="churned",
    ...     feature_view={"name": "customer-orders", "version": 1},
    ... ).feature_view.version
    1
    """

    source: str = Field(min_length=1)
    target: str | None = Field(default=None, min_length=1)
    features: tuple[str, ...] | None = Field(default=None, min_length=1)
    #: Join the features from this view onto ``source`` (an entity table), point-in-time.
    feature_view: FeatureViewSource | None = None

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        try:
            parse_source(source)
        except ValueError as err:
            raise PydanticCustomError("flywheel", "{message}", {"message": str(err)}) from None
        return source

    @field_validator("features")
    @classmethod
    def _unique_features(cls, features: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _duplicates(features)

    @model_validator(mode="after")
    def _files_name_a_target(self) -> DatasetConfig:
        if self.target is None and not self.source.startswith("sklearn:"):
            raise _error("target", "name the target column of the file")
        if self.target is not None and self.features is not None and self.target in self.features:
            raise _error("features", f"the target {self.target!r} is also listed as a feature")
        if self.feature_view is not None:
            self._check_feature_view(self.feature_view)
        return self

    def snapshot(self, uri: str, *, target: str, features: tuple[str, ...]) -> DatasetConfig:
        """This dataset as re-read from its snapshot at ``uri``: what lineage records.

        ``flywheel reproduce`` then re-trains on the snapshot's bytes (for a feature
        view: the joined table). A ``uri`` that is no dataset source (an in-memory
        store) keeps the original source; an entity table then keeps its feature view.

        Examples
        --------
        >>> DatasetConfig(source="sklearn:iris").snapshot(
        ...     "s3://bucket/training-sets/iris/run/data.csv", target="target", features=("a",)
        ... ).source
        's3://bucket/training-sets/iris/run/data.csv'
        """
        try:
            parse_source(uri)
        except ValueError:
            if self.feature_view is not None:
                return self
            uri = self.source
        return DatasetConfig(source=uri, target=target, features=features)

    def _check_feature_view(self, view: FeatureViewSource) -> None:
        if self.source.startswith("sklearn:"):
            raise _error(
                "feature_view",
                "a feature view is joined onto an entity table: set dataset.source to a "
                ".csv or .parquet file or an s3:// object, not a bundled dataset",
            )
        if self.features is not None:
            raise _error(
                "features",
                "with a feature_view, list the model's features in dataset.feature_view.features",
            )
        if view.features is not None and self.target in view.features:
            raise _error(
                "feature_view.features", f"the target {self.target!r} is also listed as a feature"
            )
        if view.timestamp_column == self.target:
            raise _error(
                "feature_view.timestamp_column",
                f"the target {self.target!r} cannot also be the event time column",
            )


class ParityTolerances(Frozen):
    """How closely the ONNX model must reproduce scikit-learn on the holdout (ADR 4).

    * float64 models: ``max |Δ| <= float64_max_abs_diff`` (probabilities for
      classifiers, predictions for regressors).
    * float32 models: ``p99 |Δ| <= float32_p99_abs_diff`` and
      ``max |Δ| <= float32_max_abs_diff`` (``None`` switches the max check off).
      For regressors both limits are multiplied by ``1 + mean |y_hat|`` of
      scikit-learn's holdout predictions.
    * classifiers: at least ``min_label_agreement`` of the rows whose top two
      scikit-learn probabilities differ by more than twice the probability
      tolerance get the same label (closer rows are ties within tolerance).

    Examples
    --------
    >>> ParityTolerances().float64_max_abs_diff
    1e-05
    """

    float64_max_abs_diff: float = Field(default=1e-5, ge=0)
    float32_p99_abs_diff: float = Field(default=1e-4, ge=0)
    float32_max_abs_diff: float | None = Field(default=1e-3, ge=0)
    min_label_agreement: float = Field(default=1.0, ge=0, le=1)


class FeatureRange(Frozen):
    """A declared valid range for one feature, recorded in the input schema."""

    minimum: float | None = None
    maximum: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FeatureRange:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} > maximum {self.maximum}")
        return self


class FeatureConfig(ColumnOptions):
    """A feature's declared type and preprocessing (``features.<name>`` in the config).

    ``type`` left out means inferred from the data (``flywheel schema infer`` prints
    what would be). ``unknown`` says what serving does with a category the model never
    saw: ``error`` (HTTP 422 naming the feature) or ``other`` (scored as none of the
    known ones). ``max_length`` caps a text feature's characters in requests.

    Examples
    --------
    >>> FeatureConfig(type="text", text={"analyzer": "char", "ngram_range": [2, 4]}).max_length
    1000
    """

    type: FeatureType | None = None
    unknown: Literal["error", "other"] = "error"
    max_length: int = Field(default=1000, ge=1, le=100_000)


class TrainingConfig(Frozen):
    """Everything needed to train, convert and (later) reproduce one model version.

    ``model_dump(mode="json")`` is what lineage stores; :func:`parse_config` turns
    it back into a config.

    Examples
    --------
    >>> config = TrainingConfig.model_validate(
    ...     {
    ...         "model": "cancer",
    ...         "task": "classification",
    ...         "dataset": {"source": "sklearn:breast_cancer"},
    ...         "estimator": "random_forest",
    ...         "hyperparameters": {"n_estimators": 20},
    ...         "seed": 7,
    ...     }
    ... )
    >>> (config.estimator, config.precision, config.test_size)
    (<Estimator.RANDOM_FOREST: 'random_forest'>, 'float64', 0.25)
    """

    model: str
    task: Task
    dataset: DatasetConfig
    estimator: Estimator | None = None
    #: ``package.module:callable`` returning an unfitted estimator (instead of ``estimator``).
    entrypoint: str | None = None
    hyperparameters: dict[str, JsonValue] = Field(default_factory=dict)
    #: Tune named hyperparameters by cross-validation on the training split.
    search: SearchConfig | None = None
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    test_size: float = Field(default=0.25, gt=0, lt=0.9)
    precision: Precision = "float64"
    parity: ParityTolerances = Field(default_factory=ParityTolerances)
    feature_ranges: dict[str, FeatureRange] = Field(default_factory=dict)
    #: Declared feature types and preprocessing, by feature name (others are inferred).
    features: dict[str, FeatureConfig] = Field(default_factory=dict)
    description: str | None = Field(default=None, max_length=2000)
    #: Who answers for the model (a team or a person); shown on its model card.
    owner: str | None = Field(default=None, min_length=1, max_length=256)
    #: What the model is for, and for whom; shown on its model card.
    intended_use: str | None = Field(default=None, min_length=1, max_length=4000)
    #: Known limitations and uses it is not fit for, one per item (a string is one item).
    limitations: tuple[Annotated[str, Field(min_length=1, max_length=1000)], ...] = Field(
        default=(), max_length=50
    )

    @property
    def declared_types(self) -> dict[str, FeatureType]:
        return {name: f.type for name, f in self.features.items() if f.type is not None}

    @field_validator("model")
    @classmethod
    def _valid_name(cls, model: str) -> str:
        return validate_model_name(model)

    @field_validator("task")
    @classmethod
    def _trainable(cls, task: Task) -> Task:
        return trainable_task(task)

    @field_validator("owner", "intended_use", mode="before")
    @classmethod
    def _stripped(cls, text: Any) -> Any:
        return text.strip() if isinstance(text, str) else text

    @field_validator("limitations", mode="before")
    @classmethod
    def _one_or_many(cls, limitations: Any) -> Any:
        items = [limitations] if isinstance(limitations, str) else limitations
        if isinstance(items, list | tuple):
            return tuple(i.strip() if isinstance(i, str) else i for i in items)
        return items

    @field_validator("dataset")
    @classmethod
    def _dataset_fits_task(cls, dataset: DatasetConfig, info: ValidationInfo) -> DatasetConfig:
        task = info.data.get("task")
        name = dataset.source.removeprefix("sklearn:")
        if task is not None and dataset.source.startswith("sklearn:"):
            natural = SKLEARN_DATASETS[name]
            if natural is not task:
                raise _error("source", f"{dataset.source} is a {natural} dataset, not {task}")
        return dataset

    @field_validator("estimator")
    @classmethod
    def _estimator_fits_task(
        cls, estimator: Estimator | None, info: ValidationInfo
    ) -> Estimator | None:
        task = info.data.get("task")
        if estimator is not None and task is not None and not supports(estimator, task):
            raise ValueError(f"{estimator} does not do {task}")
        return estimator

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint_form(cls, entrypoint: str | None) -> str | None:
        if entrypoint is not None and not re.fullmatch(ENTRYPOINT_PATTERN, entrypoint):
            raise ValueError(f"{entrypoint!r} is not of the form package.module:callable")
        return entrypoint

    @field_validator("hyperparameters")
    @classmethod
    def _known_hyperparameters(
        cls, params: dict[str, JsonValue], info: ValidationInfo
    ) -> dict[str, JsonValue]:
        reserved = sorted(RESERVED_PARAMS & set(params))
        if reserved:
            raise _error(reserved[0], "set the seed with the top-level `seed` field")
        task, estimator = info.data.get("task"), info.data.get("estimator")
        if task is None or estimator is None:
            return params
        unknown = unknown_params(estimator, task, params)
        if unknown:
            raise _error(unknown[0], f"{estimator} ({task}) has no parameter {unknown[0]!r}")
        invalid = invalid_params(estimator, task, params)
        if invalid:
            name = invalid[0]
            raise _error(name, f"invalid value {params[name]!r} for {estimator} ({task})")
        conflicts = conflicting_params(estimator, params)
        if conflicts:
            name, reason = next(iter(conflicts.items()))
            raise _error(name, reason)
        return params

    @field_validator("search")
    @classmethod
    def _known_search_space(
        cls, search: SearchConfig | None, info: ValidationInfo
    ) -> SearchConfig | None:
        task, estimator = info.data.get("task"), info.data.get("estimator")
        if search is None or task is None or estimator is None:
            return search
        fixed = info.data.get("hyperparameters") or {}
        problem = check_space(search, estimator=estimator, task=task, fixed=fixed)
        if problem is not None:
            raise _error(*problem)
        return search

    @field_validator("precision")
    @classmethod
    def _precision_fits_estimator(cls, precision: Precision, info: ValidationInfo) -> Precision:
        estimator = info.data.get("estimator")
        if precision == "float32" and estimator in FLOAT64_ONLY:
            raise ValueError(f"{estimator} converts in float64 only (ADR 5)")
        return precision

    @model_validator(mode="after")
    def _one_way_to_build(self) -> TrainingConfig:
        if self.estimator is None and self.entrypoint is None:
            raise _error("estimator", "name an estimator, or an entrypoint (package.module:build)")
        if self.estimator is not None and self.entrypoint is not None:
            raise _error("entrypoint", "give either estimator or entrypoint, not both")
        return self


def parse_config(data: Mapping[str, Any]) -> TrainingConfig:
    """Validate a config mapping (from a file or a lineage record).

    Raises
    ------
    ConfigError
        Naming the first field that is wrong; ``details["errors"]`` lists all.

    Examples
    --------
    >>> parse_config({"model": "Bad Name"})  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    flywheel.errors.ConfigError: model: invalid model name 'Bad Name': ...
    """
    try:
        return TrainingConfig.model_validate(dict(data))
    except ValidationError as err:
        raise config_error(err) from None


def _read_mapping(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json", ".toml"):
        raise ConfigError(f"config: {path.name} is not .yaml, .yml, .json or .toml", field="config")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config: file not found: {path}", field="config") from None
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"config: could not read {path}", field="config") from None
    data: Any
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"config: invalid JSON at line {err.lineno}, column {err.colno}", field="config"
            ) from None
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            raise ConfigError(f"config: {path.name} is not valid TOML", field="config") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as err:
            line = f" at line {err.problem_mark.line + 1}" if err.problem_mark else ""
            raise ConfigError(f"config: invalid YAML{line}", field="config") from None
        except yaml.YAMLError:
            raise ConfigError("config: invalid YAML", field="config") from None
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping", field="config")
    return data


def load_config(path: str | Path) -> TrainingConfig:
    """Read and validate a training config from YAML, JSON or TOML.

    A relative local ``dataset.source`` is resolved against the config file's
    folder, so a config and its data can move together.

    Raises
    ------
    ConfigError
        Unreadable file, bad syntax, or a field that fails validation; the
        message starts with the field (``dataset.source: ...``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "iris.yaml").write_text(
    ...     "model: iris\\ntask: classification\\n"
    ...     "dataset: {source: 'sklearn:iris'}\\nestimator: logistic_regression\\n"
    ... )
    >>> load_config(folder / "iris.yaml").dataset.source
    'sklearn:iris'
    """
    path = Path(path)
    data = _read_mapping(path)
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("source"), str):
        source: str = dataset["source"]
        try:
            kind, _, _ = parse_source(source)
        except ValueError:
            kind = "sklearn"  # leave it to validation to report
        if kind == "file" and not Path(source).is_absolute():
            data = {**data, "dataset": {**dataset, "source": str(path.parent / source)}}
    return parse_config(data)
