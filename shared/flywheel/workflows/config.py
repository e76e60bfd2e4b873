"""One configuration per model: how it trains, what it must beat, when it retrains, who approves.

A model config is data, evaluated the same way locally and in AWS. It is stored in the
registry table (``flywheel models configure NAME FILE``) and snapshotted into each
training run when the run starts, so a run never sees two versions of its policy.

Examples
--------
>>> import yaml
>>> config = parse_model_config(yaml.safe_load('''
... name: breast-cancer
... training:
...   task: classification
...   dataset: {source: "sklearn:breast_cancer"}
...   estimator: logistic_regression
...   seed: 42
... gate:
...   metric: roc_auc            # higher is better (inferred; set higher_is_better to override)
...   min_improvement: 0.0       # the candidate must be at least this much better than the champion
...   minimums: {accuracy: 0.9}  # absolute floors, whatever the champion does
... retraining:
...   cooldown_minutes: 60
...   triggers: [schedule, drift, performance, manual]
... approval:
...   timeout_hours: 72
...   require_distinct_approver: true
... monitoring:                  # see flywheel.monitoring.policy
...   window_hours: 24
...   performance: {metric: roc_auc, max_relative_drop: 0.05}
... '''))
>>> config.gate.metric, config.retraining.cooldown_minutes, config.monitoring.window_hours
('roc_auc', 60.0, 24)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flywheel.audit.models import AuditAction, AuditDraft, canonical_json
from flywheel.errors import ConfigError, ModelConfigNotFoundError, config_error
from flywheel.models import Frozen
from flywheel.monitoring.policy import BiasGatePolicy, MonitoringPolicy
from flywheel.registry.models import RecordWrite, Task, validate_model_name
from flywheel.training.config import TrainingConfig, _read_mapping
from flywheel.training.datasets import parse_source
from flywheel.training.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from flywheel.training.validation import DataExpectations
from flywheel.workflows.records import CONFIG, model_key
from flywheel.workflows.state import TriggerReason

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService

#: Metrics where a smaller value is better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "mae", "rmse"})


def _error(field: str, message: str) -> PydanticCustomError:
    """A validation error that names its (nested) field; see :func:`parse_model_config`."""
    return PydanticCustomError("flywheel", "{message}", {"message": message, "subfield": field})


def metrics_for(task: Task) -> tuple[str, ...]:
    """Holdout metrics computed for ``task``.

    Examples
    --------
    >>> metrics_for(Task.REGRESSION)
    ('mae', 'rmse', 'r2')
    """
    return CLASSIFICATION_METRICS if task is Task.CLASSIFICATION else REGRESSION_METRICS


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better.

    Examples
    --------
    >>> higher_is_better("roc_auc"), higher_is_better("rmse")
    (True, False)
    """
    return metric not in LOWER_IS_BETTER


class DataPolicy(Frozen):
    """Checks the training data must pass before anything trains.

    Examples
    --------
    >>> DataPolicy().min_rows, DataPolicy().expectations.max_null_rate_increase
    (50, 0.1)
    """

    min_rows: int = Field(default=50, ge=2)
    #: Classification only: every class needs at least this many rows.
    min_rows_per_class: int = Field(default=10, ge=1)
    #: Checks against the declared schema and the previous training set's profile.
    expectations: DataExpectations = Field(default_factory=DataExpectations)


class FairnessPolicy(Frozen):
    """A no-regression check on a metric's gap between two groups of the holdout.

    The holdout is split on ``group_feature <= threshold``; the gap is the absolute
    difference of ``metric`` between the two groups. The candidate's gap may exceed the
    champion's by at most ``max_gap_increase``.

    Examples
    --------
    >>> FairnessPolicy(group_feature="age", threshold=40).metric
    'accuracy'
    """

    group_feature: str = Field(min_length=1)
    threshold: float
    metric: str = "accuracy"
    max_gap_increase: float = Field(default=0.0, ge=0)


class GatePolicy(Frozen):
    """What a candidate must achieve on the holdout to be registered.

    Examples
    --------
    >>> policy = GatePolicy(metric="rmse", min_improvement=0.5)
    >>> policy.improvement(candidate=9.0, champion=10.0)
    1.0
    """

    metric: str
    #: ``None``: inferred from the metric (``log_loss``, ``mae``, ``rmse``: lower is better).
    higher_is_better: bool | None = None
    #: How much better than the champion the candidate must be (in the metric's units).
    min_improvement: float = 0.0
    #: Absolute floors (``value >= minimum``) and ceilings (``value <= maximum``).
    minimums: dict[str, float] = Field(default_factory=dict)
    maximums: dict[str, float] = Field(default_factory=dict)
    #: The ONNX model must have passed its parity check against scikit-learn.
    require_parity: bool = True
    fairness: FairnessPolicy | None = None
    #: Group metrics of the candidate on the holdout must stay within limits (classification).
    bias: BiasGatePolicy | None = None
    #: When the champion cannot be scored on the candidate's holdout (other features or
    #: classes): ``fail`` the gate, or ``ignore`` the comparison (absolute checks still apply).
    on_incomparable_champion: Literal["fail", "ignore"] = "fail"

    @property
    def prefers_higher(self) -> bool:
        if self.higher_is_better is not None:
            return self.higher_is_better
        return higher_is_better(self.metric)

    def improvement(self, *, candidate: float, champion: float) -> float:
        """How much better the candidate is (positive) or worse (negative)."""
        return candidate - champion if self.prefers_higher else champion - candidate


class RetrainingPolicy(Frozen):
    """When a trigger may start a training run.

    Examples
    --------
    >>> RetrainingPolicy().allows(TriggerReason.DRIFT)
    True
    """

    cooldown_minutes: float = Field(default=60.0, ge=0)
    triggers: frozenset[TriggerReason] = frozenset(TriggerReason)
    #: A manual trigger may skip the cooldown (never the one-run-at-a-time lock).
    manual_bypasses_cooldown: bool = True

    def allows(self, reason: TriggerReason) -> bool:
        return reason in self.triggers

    @field_serializer("triggers")
    def _sorted(self, triggers: frozenset[TriggerReason]) -> list[str]:
        # A set's order depends on the process's hash seed; the config's SHA-256 must not.
        return sorted(str(t) for t in triggers)


class ApprovalPolicy(Frozen):
    """Who may approve a candidate, and for how long the run waits.

    Examples
    --------
    >>> ApprovalPolicy().timeout_seconds
    259200
    """

    timeout_hours: float = Field(default=72.0, gt=0, le=24 * 365)
    #: The approver must not be the identity that requested the run, nor (for runs the
    #: platform started itself) the one that last changed the model's config.
    require_distinct_approver: bool = True
    #: Who may approve: IAM role or user ARNs (a role's assumed-role sessions count as the
    #: role) or ``cognito:<user>``; empty: anyone the API's IAM policy lets call it.
    approvers: tuple[str, ...] = ()
    #: Sessions of one role count as different people (e.g. roles assumed per person
    #: through IAM Identity Center, session name = user name).
    distinct_sessions: bool = False
    #: In AWS, a version no workflow waits on may be approved by hand (``flywheel
    #: approve``); otherwise decisions go through the workflow's approval.
    allow_direct_approval: bool = False

    @property
    def timeout_seconds(self) -> int:
        return int(self.timeout_hours * 3600)


class ModelConfig(Frozen):
    """Everything the workflows need to know about one model.

    ``training.model`` defaults to ``name`` and must equal it.

    Examples
    --------
    >>> config = ModelConfig.model_validate({
    ...     "name": "cancer",
    ...     "training": {
    ...         "task": "classification", "dataset": {"source": "sklearn:breast_cancer"},
    ...         "estimator": "logistic_regression",
    ...     },
    ...     "gate": {"metric": "roc_auc", "minimums": {"accuracy": 0.9}},
    ... })
    >>> (config.training.model, config.gate.prefers_higher, config.retraining.cooldown_minutes)
    ('cancer', True, 60.0)
    """

    name: str
    training: TrainingConfig
    gate: GatePolicy
    data: DataPolicy = Field(default_factory=DataPolicy)
    retraining: RetrainingPolicy = Field(default_factory=RetrainingPolicy)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    monitoring: MonitoringPolicy = Field(default_factory=MonitoringPolicy)

    @model_validator(mode="before")
    @classmethod
    def _training_model_defaults_to_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("training"), dict):
            training = data["training"]
            if "model" not in training and isinstance(data.get("name"), str):
                data = {**data, "training": {**training, "model": data["name"]}}
        return data

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return validate_model_name(name)

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.training.model != self.name:
            raise _error("training.model", f"{self.training.model!r} differs from name")
        known = metrics_for(self.training.task)
        named = [("gate.metric", self.gate.metric)]
        named += [(f"gate.minimums.{m}", m) for m in self.gate.minimums]
        named += [(f"gate.maximums.{m}", m) for m in self.gate.maximums]
        if self.gate.fairness is not None:
            named.append(("gate.fairness.metric", self.gate.fairness.metric))
        if self.monitoring.performance is not None:
            named.append(("monitoring.performance.metric", self.monitoring.performance.metric))
        for field, metric in named:
            if metric not in known:
                raise _error(
                    field,
                    f"unknown metric {metric!r} for {self.training.task}; "
                    f"use one of {', '.join(known)}",
                )
        protected = (("gate.bias", self.gate.bias), ("monitoring.bias", self.monitoring.bias))
        for field, bias in protected:
            if bias is not None and self.training.task is not Task.CLASSIFICATION:
                raise _error(field, "group metrics need a classification model")
        return self

    @property
    def sha256(self) -> str:
        """SHA-256 of the canonical JSON form (what the audit trail records)."""
        return hashlib.sha256(
            canonical_json(self.model_dump(mode="json")).encode("utf-8")
        ).hexdigest()


def parse_model_config(data: Mapping[str, Any]) -> ModelConfig:
    """Validate a model config mapping.

    Raises
    ------
    ConfigError
        Naming the first field that is wrong (``gate.metric: ...``); ``details["errors"]``
        lists all of them.

    Examples
    --------
    >>> parse_model_config({"name": "m"})  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    flywheel.errors.ConfigError: training: Field required (and 1 more)
    """
    try:
        return ModelConfig.model_validate(dict(data))
    except ValidationError as err:
        raise config_error(err) from None


def load_model_config(path: str | Path, *, name: str | None = None) -> ModelConfig:
    """Read and validate a model config from YAML, JSON or TOML.

    A relative local ``training.dataset.source`` is resolved against the file's folder.
    ``name`` fills in a missing ``name`` and must equal a present one.

    Raises
    ------
    ConfigError
        Unreadable file, bad syntax, or a field that fails validation.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "iris.yaml").write_text(
    ...     "name: iris\\ntraining:\\n  task: classification\\n"
    ...     "  dataset: {source: 'sklearn:iris'}\\n  estimator: logistic_regression\\n"
    ...     "gate: {metric: accuracy}\\n"
    ... )
    >>> load_model_config(folder / "iris.yaml").gate.metric
    'accuracy'
    """
    path = Path(path)
    data = _read_mapping(path)
    if name is not None:
        data.setdefault("name", name)
        if data["name"] != name:
            raise ConfigError(
                f"name: the file configures {data['name']!r}, not {name!r}", field="name"
            )
    training = data.get("training")
    dataset = training.get("dataset") if isinstance(training, dict) else None
    if isinstance(training, dict) and isinstance(dataset, dict):
        source = dataset.get("source")
        if isinstance(source, str):
            try:
                kind, _, _ = parse_source(source)
            except ValueError:
                kind = "sklearn"  # leave it to validation to report
            if kind == "file" and not Path(source).is_absolute():
                dataset = {**dataset, "source": str(path.parent / source)}
                data = {**data, "training": {**training, "dataset": dataset}}
    return parse_model_config(data)


class StoredConfig(Frozen):
    """A model config as stored, with its revision and digest."""

    config: ModelConfig
    revision: int
    sha256: str


class ModelConfigStore:
    """Model configs in the registry table (``MODEL#<name>`` / ``CONFIG``), changes audited.

    Examples
    --------
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> from flywheel.registry.service import RegistryService
    >>> audit = InMemoryAuditLog()
    >>> registry = InMemoryModelRegistry(audit)
    >>> store = ModelConfigStore(RegistryService(registry, audit), registry)
    >>> config = parse_model_config({
    ...     "name": "iris",
    ...     "training": {"task": "classification", "dataset": {"source": "sklearn:iris"},
    ...                  "estimator": "logistic_regression"},
    ...     "gate": {"metric": "accuracy"},
    ... })
    >>> store.put(config, actor="ana").revision
    1
    >>> store.get("iris").config.gate.metric
    'accuracy'
    """

    def __init__(self, registry: RegistryService, records: RecordStore) -> None:
        self._registry = registry
        self._records = records

    def find(self, name: str) -> StoredConfig | None:
        record = self._records.get_record(model_key(name, CONFIG))
        if record is None:
            return None
        config = parse_model_config(record.doc)
        return StoredConfig(config=config, revision=record.revision, sha256=config.sha256)

    def get(self, name: str) -> StoredConfig:
        """The stored config of ``name``.

        Raises
        ------
        ModelConfigNotFoundError
            Nothing configured yet (``flywheel models configure NAME FILE``).
        """
        found = self.find(name)
        if found is None:
            raise ModelConfigNotFoundError(
                f"model {name!r} has no workflow config; run `flywheel models configure "
                f"{name} FILE`",
                field="model_name",
            )
        return found

    def put(self, config: ModelConfig, *, actor: str, reason: str | None = None) -> StoredConfig:
        """Store ``config`` (replacing any previous one) and audit ``model_configured``."""
        current = self._records.get_record(model_key(config.name, CONFIG))
        previous = parse_model_config(current.doc).sha256 if current else None
        revision = current.revision if current else None
        record = RecordWrite(
            key=model_key(config.name, CONFIG),
            doc=config.model_dump(mode="json"),
            expected_revision=revision,
        )
        self._registry.record(
            AuditDraft(
                model=config.name,
                action=AuditAction.MODEL_CONFIGURED,
                actor=actor,
                reason=reason,
                details={
                    "config_sha256": config.sha256,
                    "previous_sha256": previous,
                    "revision": record.next_revision,
                },
            ),
            records=(record,),
        )
        return StoredConfig(config=config, revision=record.next_revision, sha256=config.sha256)


class ConfigRequest(BaseModel):
    """The body of ``POST /v1/models/{name}/config``: a model config and why it changes."""

    model_config = ConfigDict(extra="forbid")

    #: The model's workflow config, as ``flywheel models configure`` reads it from YAML.
    config: dict[str, Any]
    #: Why (CI: the commit that changed it); audited with ``model_configured``.
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ConfigReceipt(BaseModel):
    """The answer: the stored revision, and whether this request changed it."""

    model_name: str
    revision: int
    sha256: str
    changed: bool
    configured_by: str


def store_requested_config(
    store: ModelConfigStore, name: str, request: ConfigRequest, *, requested_by: str
) -> ConfigReceipt:
    """Validate ``request.config`` for model ``name`` and store it unless the stored config
    is the same (then nothing is written); the requester is the authenticated caller.

    Raises
    ------
    ConfigError
        400: the config is invalid (the first problem, naming its field) or names another
        model.
    """
    config = parse_model_config(request.config)
    if config.name != name:
        raise ConfigError(f"name: the config is for {config.name!r}, not {name!r}", field="name")
    current = store.find(name)
    if current is not None and current.sha256 == config.sha256:
        return ConfigReceipt(model_name=name, revision=current.revision, sha256=current.sha256,
                             changed=False, configured_by=requested_by)  # fmt: skip
    stored = store.put(config, actor=requested_by, reason=request.reason)
    return ConfigReceipt(model_name=name, revision=stored.revision, sha256=stored.sha256,
                         changed=True, configured_by=requested_by)  # fmt: skip
