"""The workflows' records, in the registry table next to their models; each a JSON
document with a revision that writes are conditional on (and may join a registry change).

Notes
-----
=====================================  ================================================
key (``pk`` / ``sk``)                  record
=====================================  ================================================
``MODEL#<name>`` / ``CONFIG``          the model's :class:`~flywheel.workflows.config.ModelConfig`
``MODEL#<name>`` / ``RUNLOCK``         :class:`RunLockDoc`: who trains now, cooldown, dedupe
``MODEL#<name>`` / ``SERVING``         :class:`ServingDoc`: model version -> Lambda version
``MODEL#<name>`` / ``CANARY``          :class:`CanaryDoc`: the canary's current step and weight
``MODEL#<name>`` / ``APPROVAL#V<n>``   :class:`ApprovalPointer`: the approval of version n
``MODEL#<name>`` / ``EVALUATION#V<n>`` :class:`PromptEvaluationDoc`: prompt version n's gate
``MODEL#<name>`` / ``QUALITY#V<n>``    :class:`~flywheel.llm.quality.QualityVerdictDoc`: the
                                       production monitor's latest verdict (ADR 82)
``MODEL#<name>`` / ``QUALITY``         :class:`~flywheel.llm.quality.QualityBudgetDoc`: what
                                       the monitor's scoring spent today
``APPROVAL#<id>`` / ``APPROVAL``       :class:`ApprovalDoc`: token, binding, decision
=====================================  ================================================
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from flywheel.llm.gate import PromptGateReport
from flywheel.models import Frozen
from flywheel.registry.models import RecordKey, RecordWrite, RegistryKind

if TYPE_CHECKING:
    from flywheel.registry.ports import RecordStore

CONFIG = "CONFIG"
RUN_LOCK = "RUNLOCK"
SERVING = "SERVING"
CANARY = "CANARY"

D = TypeVar("D", bound=BaseModel)


def model_key(model: str, sort: str) -> RecordKey:
    """A record of ``model``.

    Examples
    --------
    >>> model_key("churn", RUN_LOCK)
    RecordKey(partition='MODEL#churn', sort='RUNLOCK')
    """
    return RecordKey(partition=f"MODEL#{model}", sort=sort)


def approval_key(approval_id: str) -> RecordKey:
    """Where an approval lives: addressable by id alone (``POST /v1/approvals/{id}``).

    Examples
    --------
    >>> approval_key("a1b2").partition
    'APPROVAL#a1b2'
    """
    return RecordKey(partition=f"APPROVAL#{approval_id}", sort="APPROVAL")


def approval_pointer_key(model: str, version: int) -> RecordKey:
    """The pointer from a version to its approval (one approval per version).

    Examples
    --------
    >>> approval_pointer_key("churn", 3).sort
    'APPROVAL#V0000000003'
    """
    return model_key(model, f"APPROVAL#V{version:010d}")


def evaluation_key(model: str, version: int) -> RecordKey:
    """Where a prompt version's evaluation gate is recorded (ADR 81).

    Examples
    --------
    >>> evaluation_key("ticket-summary", 3).sort
    'EVALUATION#V0000000003'
    """
    return model_key(model, f"EVALUATION#V{version:010d}")


#: The production quality monitor's day of scoring for a prompt (ADR 82).
QUALITY = "QUALITY"


def quality_key(model: str, version: int) -> RecordKey:
    """Where the production monitor records a prompt version's latest verdict (ADR 82).

    Examples
    --------
    >>> quality_key("ticket-summary", 3).sort
    'QUALITY#V0000000003'
    """
    return model_key(model, f"QUALITY#V{version:010d}")


class RunLockDoc(Frozen):
    """At most one training run per model, plus what cooldown and dedupe need."""

    holder: str | None = None
    run_id: str | None = None
    trigger: str | None = None
    event_id: str | None = None
    acquired_at: datetime | None = None
    expires_at: datetime | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_outcome: str | None = None
    #: Event ids of the latest runs (EventBridge delivers at least once).
    recent_event_ids: tuple[str, ...] = ()


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    #: The training run failed while waiting; nobody can decide any more.
    CANCELLED = "cancelled"


class ApprovalDoc(Frozen):
    """A pending or decided approval: the task token stays server-side, bound to its target.

    The token is only valid for ``model`` version ``version`` whose artifact has SHA-256
    ``artifact_sha256``; it expires at ``expires_at``.
    """

    approval_id: str
    model: str
    version: int = Field(ge=1)
    #: What the version is: approving either kind publishes ``VersionApproved``, which
    #: starts the promotion workflow (a prompt's canary is routed by the LLM gateway).
    kind: RegistryKind = RegistryKind.MODEL
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    artifact_uri: str
    #: The workflow task waiting on the decision; ``None`` when none waits (a version
    #: promoted in from another stage: approving it publishes ``VersionApproved`` only).
    task_token: str | None = Field(default=None, repr=False)
    #: The training run's execution, ``stage-promotion:<stage>/<name>/<version>``, or
    #: ``prompt-registration:<name>/<version>``.
    execution_id: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    require_distinct_approver: bool = True
    #: Principals who may not decide besides ``requested_by`` (the model config's last
    #: author, for runs the platform started itself).
    excluded: tuple[str, ...] = ()
    #: Who may decide (the model's approval policy); empty: anyone IAM lets call the API.
    approvers: tuple[str, ...] = ()
    #: Sessions of one role count as different people.
    distinct_sessions: bool = False
    #: ``ApprovalRequested`` went out (retried by a retried step until it did).
    announced: bool = False
    status: ApprovalStatus = ApprovalStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    #: Side effects after the decision (retried on a replayed request until done).
    workflow_notified: bool = False
    workflow_error: str | None = None
    event_published: bool = False
    event_id: str | None = None
    #: What the approver looks at: metrics, gate checks.
    summary: dict[str, Any] = Field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The approval as an API may show it: everything but the task token.

        Examples
        --------
        >>> "task_token" in ApprovalDoc.model_construct(task_token="t").public()
        False
        """
        return self.model_dump(mode="json", exclude={"task_token"})


class ApprovalPointer(Frozen):
    approval_id: str


class ServingDoc(Frozen):
    """Which Lambda version serves which model version (written with each promotion)."""

    lambda_versions: dict[str, str] = Field(default_factory=dict)

    def lambda_version(self, model_version: int | None) -> str | None:
        if model_version is None:
            return None
        return self.lambda_versions.get(str(model_version))


class CanaryDoc(Frozen):
    """The canary's current step, written with ``canary_started`` (step 1) and each
    ``canary_advanced``: a retried step finds it and records nothing twice, and the LLM
    gateway reads a prompt canary's weight from it (while ``version`` is the challenger)."""

    version: int = Field(ge=1)
    step: int = Field(ge=1)
    steps: int = Field(ge=1)
    weight: float = Field(gt=0, lt=1)


class PromptEvaluationDoc(Frozen):
    """What a prompt version's evaluation gate decided, written with its audit entry
    (``evaluation_passed`` or ``evaluation_rejected``; a skipped gate, which decides
    nothing, is recorded alone)."""

    version: int = Field(ge=1)
    outcome: Literal["passed", "skipped", "rejected"]
    reason: str
    #: The promotion execution that ran the gate.
    execution_id: str
    evaluated_at: datetime
    #: SHA-256 of the evaluation set (``None``: the version has none).
    set_sha256: str | None = None
    #: The gate's figures (``None`` when it was skipped, or rejected for want of a set).
    report: PromptGateReport | None = None


def read(records: RecordStore, key: RecordKey, doc_type: type[D]) -> tuple[D, int] | None:
    """A typed record and its revision, or ``None``.

    Examples
    --------
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> store = InMemoryModelRegistry(InMemoryAuditLog())
    >>> _ = store.put_record(write(model_key("m", SERVING), ServingDoc(), None))
    >>> read(store, model_key("m", SERVING), ServingDoc)
    (ServingDoc(lambda_versions={}), 1)
    """
    record = records.get_record(key)
    if record is None:
        return None
    return doc_type.model_validate(record.doc), record.revision


def write(key: RecordKey, doc: BaseModel, expected_revision: int | None) -> RecordWrite:
    """A conditional write of a typed record."""
    return RecordWrite(
        key=key, doc=doc.model_dump(mode="json"), expected_revision=expected_revision
    )
