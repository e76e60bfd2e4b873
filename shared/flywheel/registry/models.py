"""Registry domain models: frozen pydantic records and the version lifecycle."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flywheel.errors import ConcurrentModificationError, IllegalTransitionError
from flywheel.models import Frozen

MODEL_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class VersionStatus(StrEnum):
    """Where a model version is in its life.

    ``candidate → pending_approval → approved → (canary) → production → archived``,
    plus ``rejected`` and ``rolled_back``.
    """

    CANDIDATE = "candidate"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    CANARY = "canary"
    PRODUCTION = "production"
    ARCHIVED = "archived"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"


ALLOWED_TRANSITIONS: dict[VersionStatus, frozenset[VersionStatus]] = {
    VersionStatus.CANDIDATE: frozenset(
        {VersionStatus.PENDING_APPROVAL, VersionStatus.REJECTED, VersionStatus.ARCHIVED}
    ),
    VersionStatus.PENDING_APPROVAL: frozenset({VersionStatus.APPROVED, VersionStatus.REJECTED}),
    VersionStatus.APPROVED: frozenset(
        {VersionStatus.CANARY, VersionStatus.PRODUCTION, VersionStatus.ARCHIVED}
    ),
    VersionStatus.CANARY: frozenset(
        {VersionStatus.PRODUCTION, VersionStatus.ROLLED_BACK, VersionStatus.APPROVED}
    ),
    # production -> archived when superseded, -> rolled_back when rolled back.
    VersionStatus.PRODUCTION: frozenset({VersionStatus.ARCHIVED, VersionStatus.ROLLED_BACK}),
    # archived -> production when a rollback restores the previous champion.
    VersionStatus.ARCHIVED: frozenset({VersionStatus.PRODUCTION}),
    VersionStatus.REJECTED: frozenset(),
    VersionStatus.ROLLED_BACK: frozenset({VersionStatus.ARCHIVED}),
}


class Alias(StrEnum):
    """Named pointers to versions: ``champion`` serves production, ``challenger`` canary/shadow."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"


class Task(StrEnum):
    """What a version does: models classify or regress; prompts generate text."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    #: A prompt's answer (text, or JSON when it declares an output schema): never trained.
    GENERATION = "generation"


def trainable_task(task: Task) -> Task:
    """``task`` if a model can be trained or imported for it (not ``generation``).

    Examples
    --------
    >>> trainable_task(Task.REGRESSION)
    <Task.REGRESSION: 'regression'>
    >>> trainable_task(Task.GENERATION)
    Traceback (most recent call last):
    ...
    ValueError: 'generation' is what prompts do (flywheel prompts register); ...
    """
    if task is Task.GENERATION:
        raise ValueError(
            "'generation' is what prompts do (flywheel prompts register); a model is trained "
            "for classification or regression"
        )
    return task


class RegistryKind(StrEnum):
    """What a registry name holds: ONNX ``model`` versions or ``prompt`` versions (ADR 78).

    One name holds one kind for good: its first version decides.
    """

    MODEL = "model"
    PROMPT = "prompt"


#: What a prompt version may do besides the models' lifecycle (ADR 81): an approved
#: version that its promotion workflow's evaluation gate rejects becomes ``rejected``
#: (audited ``evaluation_rejected``, the only action the records writer lets take it).
PROMPT_TRANSITIONS: dict[VersionStatus, frozenset[VersionStatus]] = {
    VersionStatus.APPROVED: frozenset({VersionStatus.REJECTED}),
}


def is_allowed(
    current: VersionStatus, target: VersionStatus, kind: RegistryKind | None = None
) -> bool:
    """Whether the lifecycle allows ``current → target`` (for a version of ``kind``:
    prompts also take :data:`PROMPT_TRANSITIONS`).

    Examples
    --------
    >>> is_allowed(VersionStatus.CANDIDATE, VersionStatus.PENDING_APPROVAL)
    True
    >>> is_allowed(VersionStatus.REJECTED, VersionStatus.PRODUCTION)
    False
    >>> [is_allowed(VersionStatus.APPROVED, VersionStatus.REJECTED, k) for k in RegistryKind]
    [False, True]
    """
    if target in ALLOWED_TRANSITIONS[current]:
        return True
    return kind is RegistryKind.PROMPT and target in PROMPT_TRANSITIONS.get(current, frozenset())


#: Feature types: numbers (``float``, ``int``), ``bool``, and strings (``categorical``,
#: ``text``), which a model with preprocessing takes in its ``strings`` input.
FeatureType = Literal["float", "int", "bool", "categorical", "text"]
STRING_TYPES: frozenset[str] = frozenset({"categorical", "text"})


class FeatureSpec(Frozen):
    """One input feature: name, type and what serving accepts for it.

    ``categorical`` features list the categories the model was trained on; a request with
    another one is refused (``unknown="error"``, HTTP 422) or scored as none of them
    (``"other"``). ``text`` features take strings up to ``max_length`` characters.

    Examples
    --------
    >>> FeatureSpec(name="age", dtype="float", minimum=0, maximum=130).dtype
    'float'
    >>> FeatureSpec(name="plan", dtype="categorical", categories=("basic", "pro")).unknown
    'error'
    """

    name: str = Field(min_length=1, max_length=128)
    dtype: FeatureType = "float"
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    categories: tuple[str, ...] = ()
    unknown: Literal["error", "other"] = "error"
    max_length: int | None = Field(default=None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _range_is_ordered(self) -> FeatureSpec:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(
                f"feature {self.name!r}: minimum {self.minimum} > maximum {self.maximum}"
            )
        if self.dtype == "categorical" and not self.categories:
            raise ValueError(f"feature {self.name!r}: a categorical feature lists its categories")
        if self.dtype != "categorical" and self.categories:
            raise ValueError(f"feature {self.name!r}: only categorical features have categories")
        return self

    @property
    def is_string(self) -> bool:
        return self.dtype in STRING_TYPES


class InputSchema(Frozen):
    """Ordered features the model takes, and the ONNX input tensors that carry them.

    Numbers and booleans travel in ``tensor_name`` (``[N, numeric features]``); a model
    with categorical or text features also takes ``string_tensor_name`` (``[N, string
    features]``), each in schema order.
    """

    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    tensor_name: str = "input"
    tensor_dtype: Literal["float32", "float64"] = "float64"
    string_tensor_name: str = "strings"

    @field_validator("features")
    @classmethod
    def _unique_names(cls, features: tuple[FeatureSpec, ...]) -> tuple[FeatureSpec, ...]:
        names = [f.name for f in features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature names: {duplicates}")
        return features

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> tuple[FeatureSpec, ...]:
        return tuple(f for f in self.features if not f.is_string)

    @property
    def string_features(self) -> tuple[FeatureSpec, ...]:
        return tuple(f for f in self.features if f.is_string)

    @property
    def typed(self) -> bool:
        """Whether the model takes strings (and so two inputs)."""
        return any(f.is_string for f in self.features)


class OutputSchema(Frozen):
    """What the model returns: a label (and class probabilities) or a number."""

    task: Task
    label_output: str = "label"
    probability_output: str | None = None
    classes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _classes_for_classifiers(self) -> OutputSchema:
        if self.task is Task.CLASSIFICATION and len(self.classes) < 2:
            raise ValueError("a classifier declares at least two classes")
        return self


class ArtifactRef(Frozen):
    """Where the ONNX bytes live and how to prove they are the ones registered."""

    uri: str = Field(pattern=r"^(s3|memory|file)://.+")
    version_id: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=1)
    format: Literal["onnx", "json", "bytes"] = "onnx"


class ParityReport(Frozen):
    """How closely the ONNX model reproduces scikit-learn on the holdout."""

    rows: int
    precision: Literal["float64", "float32"]
    label_agreement: float | None = None
    max_abs_diff: float
    p99_abs_diff: float
    max_abs_diff_limit: float | None = None
    p99_abs_diff_limit: float | None = None
    passed: bool
    #: Why the check ran at this precision, when the model is not float64 throughout.
    note: str | None = None


class FeatureViewLineage(Frozen):
    """The feature view a version's training set was joined from, point-in-time.

    ``entity_source`` is the entity table (keys, event times, labels) the view was
    joined onto; rows that saw no feature value were left out and counted.

    Examples
    --------
    >>> FeatureViewLineage(
    ...     name="customer-orders", version=1, features=("spend",),
    ...     entity_source="s3://data/entities.parquet", entity_rows=10, rows_without_features=1,
    ... ).rows_without_features
    1
    """

    name: str
    version: int = Field(ge=1)
    features: tuple[str, ...]
    timestamp_column: str = "event_timestamp"
    entity_source: str
    entity_rows: int = Field(ge=0)
    rows_without_features: int = Field(default=0, ge=0)


class EntrypointLineage(Frozen):
    """The user's callable that built the model (``entrypoint:`` in the training config).

    ``package``/``package_version`` name the installed distribution that provides the
    module, when there is one; ``source_sha256`` is the SHA-256 of the module's file.

    Examples
    --------
    >>> EntrypointLineage(spec="mypkg.models:build", package="mypkg", package_version="1.0").spec
    'mypkg.models:build'
    """

    spec: str
    package: str | None = None
    package_version: str | None = None
    source_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class ImportedLineage(Frozen):
    """What is known about an ONNX model trained outside Flywheel (``flywheel register``).

    The checks ran on the reference sample (and the expected outputs, when given);
    what the model was trained on, with which code and seed, is not known.

    Examples
    --------
    >>> ImportedLineage(
    ...     artifact_name="model.onnx", reference_name="sample.csv",
    ...     reference_sha256="0" * 64, reference_rows=10,
    ... ).unknown
    ('training data', 'training code', 'training config', 'random seed')
    """

    artifact_name: str
    producer: str = ""
    opsets: dict[str, int] = Field(default_factory=dict)
    reference_name: str
    reference_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    reference_rows: int = Field(ge=1)
    expected_name: str | None = None
    expected_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    unknown: tuple[str, ...] = ("training data", "training code", "training config", "random seed")


class Lineage(Frozen):
    """Everything needed to say where a version came from and to re-train it.

    ``feature_view`` is set when the training set was built from a feature view;
    ``dataset_id`` and ``training_config`` then name the joined snapshot.
    ``entrypoint`` names the user's callable that built the model; ``imported``
    describes an ONNX model trained elsewhere, whose dataset, code commit and seed
    are ``None`` and which is not ``reproducible``.
    """

    code_commit: str | None = None
    dataset_id: str | None = None
    dataset_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    dependency_lock_hash: str
    library_versions: dict[str, str] = Field(default_factory=dict)
    random_seed: int | None = None
    training_run_id: str
    training_config: dict[str, Any] = Field(default_factory=dict)
    feature_view: FeatureViewLineage | None = None
    entrypoint: EntrypointLineage | None = None
    imported: ImportedLineage | None = None
    #: Whether ``flywheel reproduce`` can re-train the version from this record.
    reproducible: bool = True

    @model_validator(mode="after")
    def _imported_is_not_reproducible(self) -> Lineage:
        if self.imported is not None and self.reproducible:
            raise ValueError("an imported model cannot be re-trained: reproducible is false")
        if self.reproducible and (self.dataset_sha256 is None or self.random_seed is None):
            raise ValueError("a reproducible version records its dataset hash and seed")
        return self

    #: The hyperparameter search behind the fitted parameters: space, budget, winner, scores.
    search: dict[str, Any] | None = None


class VersionDraft(Frozen):
    """What a caller registers; the registry adds number, status and timestamps.

    ``kind="prompt"``: the artifact is a prompt spec's canonical JSON, the input schema
    its variables and the task ``generation`` (:mod:`flywheel.llm.catalog`).
    """

    name: str
    kind: RegistryKind = RegistryKind.MODEL
    artifact: ArtifactRef
    input_schema: InputSchema
    output_schema: OutputSchema
    metrics: dict[str, float] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    parity: ParityReport | None = None
    reference_profile: ArtifactRef | None = None
    #: The explainer artifact (ADR 71): exact SHAP for trees and linear models.
    explainer: ArtifactRef | None = None
    #: Global importance: mean |SHAP| per input feature on the holdout, largest first.
    importance: dict[str, float] = Field(default_factory=dict)
    lineage: Lineage
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return validate_model_name(name)

    @model_validator(mode="after")
    def _task_fits_kind(self) -> VersionDraft:
        prompt = self.kind is RegistryKind.PROMPT
        if prompt != (self.output_schema.task is Task.GENERATION):
            raise ValueError(
                "a prompt version's task is generation, and only a prompt version's is"
            )
        if prompt and self.artifact.format != "json":
            raise ValueError("a prompt version's artifact is its spec as JSON")
        return self

    @field_validator("importance")
    @classmethod
    def _largest_first(cls, importance: dict[str, float]) -> dict[str, float]:
        # Stores keep maps unordered (canonical JSON sorts keys): the order is restored here.
        return dict(sorted(importance.items(), key=lambda kv: (-kv[1], kv[0])))


class ModelVersion(VersionDraft):
    """A registered version."""

    version: int = Field(ge=1)
    status: VersionStatus
    created_by: str
    created_at: datetime
    updated_at: datetime
    updated_by: str


class Model(Frozen):
    """A registered model (or prompt: ``kind``): its version counter and aliases."""

    name: str
    kind: RegistryKind = RegistryKind.MODEL
    latest_version: int = 0
    aliases: dict[Alias, int] = Field(default_factory=dict)
    champion_history: tuple[int, ...] = ()
    created_at: datetime
    created_by: str

    @property
    def champion(self) -> int | None:
        return self.aliases.get(Alias.CHAMPION)

    @property
    def challenger(self) -> int | None:
        return self.aliases.get(Alias.CHALLENGER)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass ``next_token`` back to get the next one."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    next_token: str | None = None


class StatusChange(Frozen):
    version: int
    expected: VersionStatus
    target: VersionStatus

    def conflict(self, model: str, current: VersionStatus) -> IllegalTransitionError:
        """The error a store raises when the version is ``current``, not ``expected``."""
        return IllegalTransitionError(
            f"version {self.version} of {model!r} is {current}, expected {self.expected}",
            current=current,
            target=self.target,
        )


class AliasChange(Frozen):
    alias: Alias
    expected: int | None
    target: int | None


class RecordKey(Frozen):
    """Where an auxiliary record lives in the registry table (``pk``, ``sk``).

    Examples
    --------
    >>> RecordKey(partition="MODEL#churn", sort="RUNLOCK").sort
    'RUNLOCK'
    """

    partition: str = Field(min_length=1, max_length=512)
    sort: str = Field(min_length=1, max_length=512)

    @field_validator("sort")
    @classmethod
    def _not_a_registry_item(cls, sort: str) -> str:
        if sort == "META" or sort.startswith("V#"):
            raise ValueError("META and V# items belong to the registry itself")
        return sort


class StoredRecord(Frozen):
    """An auxiliary record as stored: a JSON document and its revision (1, 2, ...)."""

    key: RecordKey
    doc: dict[str, Any]
    revision: int = Field(ge=1)


class RecordWrite(Frozen):
    """A conditional put of an auxiliary record (run lock, approval, model config).

    ``expected_revision`` is ``None`` when the record must not exist yet, else the
    revision the writer read; the write stores ``expected_revision + 1``. Several
    writes can join a :class:`RegistryChange`, so a record and the registry items it
    belongs with change in the same transaction as their audit entry.

    Examples
    --------
    >>> w = RecordWrite(key=RecordKey(partition="MODEL#m", sort="CONFIG"), doc={"a": 1})
    >>> w.next_revision
    1
    """

    key: RecordKey
    doc: dict[str, Any]
    expected_revision: int | None = Field(default=None, ge=1)

    @property
    def next_revision(self) -> int:
        return (self.expected_revision or 0) + 1

    def conflict(self) -> ConcurrentModificationError:
        """The error a store raises when the record is not at ``expected_revision``."""
        return ConcurrentModificationError(
            f"record {self.key.sort} of {self.key.partition} changed concurrently",
            field="record",
            details={"key": self.key.sort},
        )


class RegistryChange(Frozen):
    """A set of writes applied atomically together with one audit entry.

    ``records`` are conditional writes of auxiliary records in the same transaction.
    A change with only ``records`` does not need the model to exist yet.
    """

    model: str
    statuses: tuple[StatusChange, ...] = ()
    aliases: tuple[AliasChange, ...] = ()
    champion_history: tuple[int, ...] | None = None
    records: tuple[RecordWrite, ...] = ()

    @property
    def touches_model(self) -> bool:
        """Whether the change writes versions or the model item (which must then exist)."""
        return bool(self.statuses or self.aliases or self.champion_history is not None)


def validate_model_name(name: str) -> str:
    """Check a model name: lowercase letters, digits and dashes, at most 63 characters.

    Examples
    --------
    >>> validate_model_name("churn-v2")
    'churn-v2'
    """
    if not MODEL_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid model name {name!r}: use 1-63 lowercase letters, digits and dashes"
        )
    return name
