"""The workflows' state as the state machines hand it to each Lambda task.

Every task gets the whole state (``"Payload.$": "$"``); its return value lands at
``$.<result key>.Payload`` (``infra/workflows/asl.py``). The models here parse that
state (unknown keys are ignored, so the state may grow) and describe each step's
result, which the handlers return as JSON.

Examples
--------
>>> state = TrainingState.model_validate({
...     "model_name": "churn",
...     "trigger": {"reason": "manual", "detail": {"requested_by": "ana"}},
...     "run": {"execution_id": "arn:x", "execution_name": "e1",
...             "started_at": "2026-01-01T00:00:00Z", "state_machine": "flywheel-dev-training"},
...     "lock": {"Payload": {"suppressed": False, "reason": "ok", "run_id": "e1",
...                          "trigger": "manual"}},
... })
>>> state.trigger.requested_by, state.result("lock").run_id
('ana', 'e1')
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flywheel.drift.bias import BiasResult
from flywheel.registry.models import ArtifactRef, FeatureViewLineage, ParityReport
from flywheel.workflows.importance import ImportanceComparison
from flywheel.workflows.ports import AliasRouting

#: Longest error text kept from a failed task (audit entries stay small).
MAX_ERROR_TEXT = 500


class TriggerReason(StrEnum):
    """Why a training run was asked for (the EventBridge rule that started it)."""

    SCHEDULE = "schedule"
    DRIFT = "drift"
    PERFORMANCE = "performance"
    MANUAL = "manual"


class StateModel(BaseModel):
    """Parses part of a workflow state: frozen, unknown keys ignored, aliases accepted."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


T = TypeVar("T", bound=BaseModel)


class TaskResult(StateModel, Generic[T]):
    """``{"Payload": ...}``: a task's result as ``ResultSelector`` stores it."""

    payload: T = Field(alias="Payload")


class TaskError(StateModel):
    """``$.error``: what ``Catch`` stored (``Error`` name, ``Cause`` text)."""

    error: str = Field(alias="Error")
    cause: str | None = Field(default=None, alias="Cause")

    @property
    def message(self) -> str:
        """The handler's own message (a Lambda ``Cause`` is JSON with ``errorMessage``).

        Stack traces are dropped and the text is capped at :data:`MAX_ERROR_TEXT`.

        Examples
        --------
        >>> TaskError(Error="X", Cause='{"errorMessage": "boom", "stackTrace": []}').message
        'boom'
        >>> failed_job = '{"FailureReason": "AlgorithmError: x"}'
        >>> TaskError(Error="States.TaskFailed", Cause=failed_job).message
        'AlgorithmError: x'
        """
        text = self.cause or ""
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            # A handler's error, else a finished job's (Step Functions passes the job's
            # description: SageMaker's FailureReason, Batch's StatusReason).
            text = str(
                parsed.get("errorMessage")
                or parsed.get("message")
                or parsed.get("FailureReason")
                or parsed.get("StatusReason")
                or ""
            )
        return text[:MAX_ERROR_TEXT]

    @property
    def summary(self) -> str:
        message = self.message
        return f"{self.error}: {message}" if message else self.error


class Trigger(StateModel):
    """``$.trigger``: what the EventBridge rule put in the execution input."""

    reason: TriggerReason
    source: str | None = None
    event_id: str | None = None
    time: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @field_validator("detail", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def requested_by(self) -> str | None:
        """The identity that asked for a manual run (``detail.requested_by``), if any."""
        value = self.detail.get("requested_by")
        return str(value) if value else None

    @property
    def code_version(self) -> str | None:
        """The commit a manual run was asked for (``detail.code_version``), if any."""
        value = self.detail.get("code_version")
        return str(value) if value else None


class RunContext(StateModel):
    """``$.run``: the execution's identity (plus the promotion's canary settings)."""

    execution_id: str
    execution_name: str
    started_at: str
    state_machine: str
    canary_weight: float | None = Field(default=None, gt=0, lt=1)
    bake_seconds: int | None = Field(default=None, ge=0)

    @property
    def actor(self) -> str:
        """Who the workflow acts as in the registry and the audit trail."""
        return f"workflow:{self.state_machine}/{self.execution_name}"


# -- training step results --------------------------------------------------------------------
class ResultModel(BaseModel):
    """A step's result: frozen; unknown keys ignored when it is read back from the state."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class LockResult(ResultModel):
    """``$.lock.Payload``: whether this run may proceed, and the config it runs with."""

    suppressed: bool
    reason: str
    run_id: str
    trigger: TriggerReason
    #: The model config snapshotted for this run (``ModelConfig`` as JSON).
    config: dict[str, Any] | None = None
    config_sha256: str | None = None
    took_over: bool = False


class ValidationResult(ResultModel):
    rows: int
    features: tuple[str, ...]
    classes: tuple[str, ...] = ()
    class_counts: dict[str, int] = Field(default_factory=dict)
    dataset_id: str
    dataset_sha256: str
    #: The previous training set the data was checked against, or why there was none.
    reference: str | None = None
    #: Expectations that failed as warnings (reported; the run went on).
    warnings: tuple[str, ...] = ()
    #: The data validation report (``reports/<model>/data/...``).
    report_json: ArtifactRef | None = None
    report_html: ArtifactRef | None = None


class TrainingSetResult(ResultModel):
    """The immutable snapshot the run trains on (re-read by SHA-256 in every later step)."""

    snapshot: ArtifactRef
    source: str
    rows: int
    target: str
    features: tuple[str, ...]
    #: Set when the snapshot was joined from a feature view (``dataset.feature_view``).
    feature_view: FeatureViewLineage | None = None


class HoldoutRefs(ResultModel):
    """The holdout split as ``.npy`` arrays (``allow_pickle=False``), never pickles."""

    x: ArtifactRef
    y: ArtifactRef
    feature_names: tuple[str, ...]


class TrainResult(ResultModel):
    run_id: str
    artifact: ArtifactRef
    reference_profile: ArtifactRef
    #: The ``VersionDraft`` as JSON; ``register`` registers exactly this.
    draft: ArtifactRef
    holdout: HoldoutRefs
    metrics: dict[str, float]
    parity: ParityReport
    n_train: int
    n_holdout: int
    converter: str
    timings: dict[str, float] = Field(default_factory=dict)


class TrainingJobResult(ResultModel):
    """``$.training_job.Payload``: the Train step handed to an engine's job (ADR 85).

    The job reads the state from ``input`` (verified by its SHA-256) and writes its
    :class:`TrainResult` to ``result_key``, which CollectTrainingJob reads back.
    """

    job_name: str
    input: ArtifactRef
    result_key: str


class ModelScore(ResultModel):
    """One model's metrics on the run's holdout."""

    version: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    fairness_gap: float | None = None
    #: Group metrics on the holdout for ``gate.bias`` (else ``monitoring.bias``'s attribute).
    bias: BiasResult | None = None
    comparable: bool = True
    reason: str | None = None


class EvaluationResult(ResultModel):
    candidate: ModelScore
    champion: ModelScore | None = None
    holdout_rows: int
    report: ArtifactRef
    #: The candidate's global importance against the champion's (``None``: no champion).
    importance: ImportanceComparison | None = None


class GateCheck(ResultModel):
    name: str
    passed: bool
    detail: str


class GateResult(ResultModel):
    passed: bool
    metric: str
    candidate_value: float | None = None
    champion_value: float | None = None
    checks: tuple[GateCheck, ...] = ()

    @property
    def reasons(self) -> list[str]:
        """Why the gate failed: one line per failed check."""
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]


class RegistrationResult(ResultModel):
    """The registered candidate and the approval it needs."""

    version: int
    status: str
    artifact_sha256: str
    artifact_uri: str
    requested_by: str
    approval_timeout_seconds: int
    require_distinct_approver: bool
    #: Who else may not approve: the config's last author for runs nobody asked for.
    excluded: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    distinct_sessions: bool = False


class ApprovalRequestResult(ResultModel):
    approval_id: str
    version: int
    expires_at: str


class ReleaseResult(ResultModel):
    released: bool


class FailureResult(ResultModel):
    """What ``record_failure`` did."""

    workflow: Literal["training", "promotion"]
    reason: str
    failed_step: str | None = None
    version: int | None = None
    version_status: str | None = None
    alias: AliasRouting | None = None
    audit_seq: int


# -- promotion step results -------------------------------------------------------------------
class CandidateEvaluationResult(ResultModel):
    """``$.evaluation.Payload``: the evaluation gate of a prompt version (ADR 81).

    ``passed`` lets the workflow go on (the ``CandidatePassed`` choice reads it): a model
    (``evaluated`` false, nothing to do), a prompt version without an evaluation set
    (skipped), or one whose gate passed. A rejected version is ``rejected`` already.
    """

    passed: bool
    evaluated: bool
    outcome: Literal["passed", "skipped", "rejected", "not_a_prompt"]
    reason: str
    #: One line per failed check of the gate.
    reasons: tuple[str, ...] = ()
    items: int = 0
    champion: int | None = None
    #: Candidate mean (or rate) per evaluator, as the gate judged it.
    scores: dict[str, float] = Field(default_factory=dict)


class PublishResult(ResultModel):
    function_name: str
    lambda_version: str
    model_version: int


class CanaryShiftResult(ResultModel):
    """One canary step: its weight on alias live and how long it bakes."""

    model_version: int
    lambda_version: str
    primary: str
    weight: float
    #: This step's number (1-based) and how many the canary takes.
    step: int = 1
    steps: int = 1
    #: The Bake state waits this long (``SecondsPath``).
    bake_seconds: int = 0
    #: Whether a healthy check after this step promotes (the LastStep choice reads it).
    last: bool = True


class CanaryCheckResult(ResultModel):
    healthy: bool
    alarms: dict[str, str] = Field(default_factory=dict)
    breached: tuple[str, ...] = ()
    reason: str
    #: PSI of the canary's captured predictions against the champion's (``None``: not judged).
    prediction_drift: float | None = None
    #: PSI of the canary's captured predictions against its holdout's prediction deciles.
    reference_prediction_drift: float | None = None
    #: The canary step judged (1-based).
    step: int = 1


class PromotionResult(ResultModel):
    model_version: int
    lambda_version: str
    previous_champion: int | None = None


class RollbackResult(ResultModel):
    model_version: int
    restored_primary: str
    reason: str


# -- workflow states --------------------------------------------------------------------------
class TrainingState(StateModel):
    """The training workflow's state (input, ``$.run`` and every step's result so far)."""

    model_name: str
    trigger: Trigger
    run: RunContext
    lock: TaskResult[LockResult] | None = None
    validation: TaskResult[ValidationResult] | None = None
    training_set: TaskResult[TrainingSetResult] | None = None
    #: Set when the model trains on AWS Batch or SageMaker (the job's input and result).
    training_job: TaskResult[TrainingJobResult] | None = None
    training: TaskResult[TrainResult] | None = None
    evaluation: TaskResult[EvaluationResult] | None = None
    gate: TaskResult[GateResult] | None = None
    registration: TaskResult[RegistrationResult] | None = None
    #: ``SendTaskSuccess`` output (not wrapped in ``Payload``).
    approval: dict[str, Any] | None = None
    error: TaskError | None = None
    cleanup_error: TaskError | None = None

    #: Result keys in the order the workflow produces them.
    STEPS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("lock", "AcquireRunLock"),
        ("validation", "ValidateData"),
        ("training_set", "BuildTrainingSet"),
        ("training", "Train"),
        ("evaluation", "Evaluate"),
        ("gate", "Gate"),
        ("registration", "Register"),
        ("approval", "RequestApproval"),
    )

    def result(self, key: str) -> Any:
        """A step's payload, or a :class:`KeyError` naming the missing step."""
        value = getattr(self, key)
        if value is None:
            raise KeyError(f"the state has no result of step {key!r} yet")
        return value.payload if isinstance(value, TaskResult) else value

    @property
    def failed_step(self) -> str | None:
        """The first step without a result (where the run stopped)."""
        for key, state in self.STEPS:
            if getattr(self, key) is None:
                return state
        return "ReleaseRunLock"


class ApprovalRequest(StateModel):
    """The ``RequestApproval`` payload (selected fields plus ``$$.Task.Token``)."""

    model_name: str
    run: RunContext
    training: TaskResult[TrainResult]
    evaluation: TaskResult[EvaluationResult]
    gate: TaskResult[GateResult]
    registration: TaskResult[RegistrationResult]
    task_token: str = Field(min_length=1, repr=False)


class PromotionState(StateModel):
    """The promotion workflow's state, started by ``VersionApproved``."""

    model_name: str
    version: int = Field(ge=1)
    event_id: str | None = None
    approval: dict[str, Any] = Field(default_factory=dict)
    run: RunContext
    evaluation: TaskResult[CandidateEvaluationResult] | None = None
    published: TaskResult[PublishResult] | None = None
    canary: TaskResult[CanaryShiftResult] | None = None
    canary_check: TaskResult[CanaryCheckResult] | None = None
    promotion: TaskResult[PromotionResult] | None = None
    rollback: TaskResult[RollbackResult] | None = None
    error: TaskError | None = None
    cleanup_error: TaskError | None = None

    @field_validator("approval", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def failed_step(self) -> str:
        """Where the promotion stopped, read from the results so far.

        A multi-step canary overwrites ``canary`` and ``canary_check`` at each step: a
        check of an earlier step than the last shift means CheckCanary failed, a
        healthy check of a step that is not the last means the next ShiftAlias did.
        """
        for key, state in (
            ("evaluation", "EvaluateCandidate"),
            ("published", "PublishVersion"),
            ("canary", "ShiftAlias"),
            ("canary_check", "CheckCanary"),
        ):
            if getattr(self, key) is None:
                return state
        assert self.canary is not None
        assert self.canary_check is not None
        shift, check = self.canary.payload, self.canary_check.payload
        if check.step != shift.step:
            return "CheckCanary"
        if not check.healthy:
            return "Rollback"
        return "PromoteAll" if shift.last else "ShiftAlias"


def is_training_state(event: dict[str, Any]) -> bool:
    """Whether a state comes from the training workflow (``record_failure`` serves both).

    Examples
    --------
    >>> is_training_state({"model_name": "m", "trigger": {"reason": "manual"}})
    True
    >>> is_training_state({"model_name": "m", "version": 3})
    False
    """
    return "trigger" in event and "version" not in event
