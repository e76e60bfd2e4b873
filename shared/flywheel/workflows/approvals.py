"""Human approval: the paused training run, resumed by ``POST /v1/approvals/{id}``.

``RequestApproval`` stores the Step Functions task token server-side, bound to the
model, the version and the artifact's SHA-256, with an expiry and the requester. A
decision then:

1. finds the approval (unknown → 404), refuses a decided one (→ 409, a replay) or an
   expired one (→ 410), the requester approving their own run (→ 403, configurable per
   model) and an artifact that is not the one under approval (→ 409);
2. writes the approval's new status, the version's status and the audit entry in one
   transaction (two concurrent decisions: exactly one wins);
3. resumes the workflow (``SendTaskSuccess``, or ``SendTaskFailure`` with
   ``ApprovalRejected``) and, on approval, puts ``VersionApproved`` on the bus, which
   starts the promotion workflow (for a model version and a prompt version alike).

Step 3 is recorded on the approval; if it was interrupted, a replayed request finishes
it before answering 409, so the workflow is resumed at least once.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.clock import isoformat
from flywheel.errors import (
    ApprovalAlreadyDecidedError,
    ApprovalArtifactMismatchError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    ApproverNotAllowedError,
    ConcurrentModificationError,
    IllegalTransitionError,
    TaskTokenError,
)
from flywheel.registry.models import RecordWrite, RegistryKind, VersionStatus
from flywheel.workflows.importance import ImportanceComparison
from flywheel.workflows.principals import is_listed, same_principal
from flywheel.workflows.records import (
    ApprovalDoc,
    ApprovalPointer,
    ApprovalStatus,
    approval_key,
    approval_pointer_key,
    read,
    write,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from flywheel.audit.models import AuditEntry
    from flywheel.clock import Clock
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService
    from flywheel.workflows.config import ApprovalPolicy
    from flywheel.workflows.ports import EventPublisher, TaskTokens
    from flywheel.workflows.state import ApprovalRequest

#: Who the system acts as when an approval expires.
APPROVALS_ACTOR = "flywheel:approvals"
#: ``detail-type`` of the event that starts the promotion workflow.
VERSION_APPROVED = "VersionApproved"
#: ``detail-type`` of the event that tells approvers a candidate waits for them.
APPROVAL_REQUESTED = "ApprovalRequested"
#: The ``source`` of ``ApprovalRequested`` (what the approvers' notification matches).
ANNOUNCEMENT_SOURCE = "flywheel.workflows"
#: How often a decision is tried when the pending approval changed under it.
DECIDE_ATTEMPTS = 3
#: Error sent with ``SendTaskFailure`` when a late decision finds the approval expired.
APPROVAL_EXPIRED_ERROR = "ApprovalExpired"


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class DecisionRequest(BaseModel):
    """The body of ``POST /v1/approvals/{id}`` (the API Gateway model is generated from it)."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    #: Optional: the artifact the approver reviewed; refused unless it is the bound one.
    artifact_sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None


class DecisionResponse(BaseModel):
    """The answer of ``POST /v1/approvals/{id}``."""

    approval_id: str
    model_name: str
    version: int
    status: str
    decided_by: str | None
    decided_at: str | None
    artifact_sha256: str
    workflow_resumed: bool
    event_published: bool


def announcement(doc: ApprovalDoc) -> dict[str, Any]:
    """The ``ApprovalRequested`` detail: what waits, since when, and how to decide it.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> doc = ApprovalDoc(approval_id="a1", model="churn", version=3, artifact_sha256="0" * 64,
    ...                   artifact_uri="s3://b/k", task_token="t", execution_id="e",
    ...                   requested_by="workflow:e", requested_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                   expires_at=datetime(2026, 1, 2, tzinfo=UTC))
    >>> announcement(doc)["decide"]["cli"]
    'flywheel approve churn 3 -r REASON   (or: flywheel reject churn 3 -r REASON)'
    """
    group = "prompts " if doc.kind is RegistryKind.PROMPT else ""
    return {
        "model_name": doc.model,
        "version": doc.version,
        "approval_id": doc.approval_id,
        "requested_by": doc.requested_by,
        "requested_at": isoformat(doc.requested_at),
        "expires_at": isoformat(doc.expires_at),
        "artifact_sha256": doc.artifact_sha256,
        "approvers": list(doc.approvers),
        "excluded": [doc.requested_by, *doc.excluded],
        "evaluation": {
            "candidate": doc.summary.get("candidate"),
            "champion": doc.summary.get("champion"),
            "gate": doc.summary.get("gate"),
            "importance": importance_line(doc.summary),
        },
        "kind": str(doc.kind),
        "decide": {
            "cli": (
                f"flywheel {group}approve {doc.model} {doc.version} -r REASON   "
                f"(or: flywheel {group}reject {doc.model} {doc.version} -r REASON)"
            ),
            "api": (
                f"POST /v1/approvals/{doc.approval_id} "
                '{"decision": "approve" | "reject", "reason": "..."}'
            ),
        },
    }


def prompt_approval_policy() -> ApprovalPolicy:
    """Who may approve a prompt version: anyone the approval API admits but the one who
    registered it (four eyes, sessions of one role are one person), within 72 hours.

    Examples
    --------
    >>> prompt_approval_policy().require_distinct_approver
    True
    """
    from flywheel.workflows.config import ApprovalPolicy

    return ApprovalPolicy()


def importance_line(summary: Mapping[str, Any]) -> str:
    """The candidate's global importance against the champion's, in one line.

    ``summary`` is an approval's evaluation summary (:attr:`ApprovalDoc.summary`).

    Examples
    --------
    >>> importance_line({"champion": None})
    'no champion to compare with'
    """
    found = summary.get("importance")
    if found:
        return ImportanceComparison.model_validate(found).summary()
    if summary.get("champion") is None:
        return "no champion to compare with"
    return "not compared at evaluation"


def requester_of(entries: Iterable[AuditEntry], version: int) -> str | None:
    """Who asked for ``version``'s approval: the actor of its ``approval_requested`` entry.

    Examples
    --------
    >>> requester_of([], 3) is None
    True
    """
    found = None
    for entry in entries:
        if entry.action is AuditAction.APPROVAL_REQUESTED and entry.version == version:
            found = str(entry.details.get("requested_by") or entry.actor)
    return found


def find_approval(records: RecordStore, model: str, version: int) -> tuple[ApprovalDoc, int] | None:
    """The approval of ``version`` (and its revision), if one was requested.

    Examples
    --------
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> find_approval(InMemoryModelRegistry(InMemoryAuditLog()), "churn", 1) is None
    True
    """
    pointer = read(records, approval_pointer_key(model, version), ApprovalPointer)
    if pointer is None:
        return None
    return read(records, approval_key(pointer[0].approval_id), ApprovalDoc)


def refusal(
    approver: str,
    *,
    requested_by: str,
    excluded: tuple[str, ...] = (),
    approvers: tuple[str, ...] = (),
    require_distinct: bool = True,
    distinct_sessions: bool = False,
) -> str | None:
    """Why ``approver`` may not decide (four eyes, the approver list), or ``None``.

    Examples
    --------
    >>> refusal("arn:aws:sts::111111111111:assumed-role/ds/ana",
    ...         requested_by="arn:aws:sts::111111111111:assumed-role/ds/bo")
    'the approver is the principal that requested this run'
    >>> refusal("arn:aws:iam::111111111111:user/cy", requested_by="ana",
    ...         approvers=("arn:aws:iam::111111111111:role/approver",))
    "the approver is not one of the model's approvers"
    """
    if approvers and not is_listed(approver, approvers, distinct_sessions=distinct_sessions):
        return "the approver is not one of the model's approvers"
    if not require_distinct:
        return None
    if same_principal(approver, requested_by, distinct_sessions=distinct_sessions):
        return "the approver is the principal that requested this run"
    for other in excluded:
        if same_principal(approver, other, distinct_sessions=distinct_sessions):
            return "the approver last changed this model's config, which started this run"
    return None


class ApprovalService:
    """Request, look up and decide approvals.

    Examples
    --------
    >>> service.decide("3f2a...", decision=Decision.APPROVE, approver="arn:...:user/bo",
    ...                reason="metrics reviewed")  # doctest: +SKIP
    ApprovalDoc(approval_id='3f2a...', ..., status=<ApprovalStatus.APPROVED: 'approved'>, ...)
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        records: RecordStore,
        tokens: TaskTokens,
        events: EventPublisher,
        clock: Clock,
        max_timeout_seconds: int,
        rejected_error: str = "ApprovalRejected",
    ) -> None:
        self._registry = registry
        self._records = records
        self._tokens = tokens
        self._events = events
        self._clock = clock
        self._max_timeout = max_timeout_seconds
        self._rejected_error = rejected_error

    # -- requesting ----------------------------------------------------------------------------
    def request(self, request: ApprovalRequest) -> ApprovalDoc:
        """Store the task token bound to the registered version; ``candidate → pending_approval``.

        Idempotent for a retried step: the same execution gets its pending approval back
        (with the new token if Step Functions issued another one).

        Raises
        ------
        ApprovalArtifactMismatchError
            The registered artifact is not the one this run trained.
        """
        registration = request.registration.payload
        model, number = request.model_name, registration.version
        existing = self.find_for_version(model, number)
        if existing is not None:
            doc, revision = existing
            if (
                doc.status is ApprovalStatus.PENDING
                and doc.execution_id == request.run.execution_id
                and doc.task_token != request.task_token
            ):
                doc = doc.model_copy(update={"task_token": request.task_token})
                revision = self._records.put_record(
                    write(approval_key(doc.approval_id), doc, revision)
                ).revision
            if doc.status is ApprovalStatus.PENDING and not doc.announced:
                doc = self._announce(doc, revision)
            return doc
        version = self._registry.get_version(model, number)
        if version.artifact.sha256 != registration.artifact_sha256:
            raise ApprovalArtifactMismatchError(
                f"version {number} of {model!r} does not hold the artifact this run trained",
                field="artifact_sha256",
            )
        now = self._clock.now()
        timeout = min(registration.approval_timeout_seconds, self._max_timeout)
        evaluation = request.evaluation.payload
        gate = request.gate.payload
        doc = ApprovalDoc(
            approval_id=secrets.token_hex(16),
            model=model,
            version=number,
            artifact_sha256=version.artifact.sha256,
            artifact_uri=version.artifact.uri,
            task_token=request.task_token,
            execution_id=request.run.execution_id,
            requested_by=registration.requested_by,
            requested_at=now,
            expires_at=now + timedelta(seconds=timeout),
            require_distinct_approver=registration.require_distinct_approver,
            excluded=registration.excluded,
            approvers=registration.approvers,
            distinct_sessions=registration.distinct_sessions,
            summary={
                "training_run_id": request.training.payload.run_id,
                "candidate": evaluation.candidate.model_dump(mode="json"),
                "champion": evaluation.champion.model_dump(mode="json")
                if evaluation.champion
                else None,
                "gate": [c.model_dump(mode="json") for c in gate.checks],
                "importance": evaluation.importance.model_dump(mode="json")
                if evaluation.importance
                else None,
                "parity": request.training.payload.parity.model_dump(mode="json"),
            },
        )
        return self._store(doc, actor=request.run.actor)

    def request_promoted(
        self,
        model: str,
        version: int,
        *,
        requested_by: str,
        policy: ApprovalPolicy,
        origin: str,
        reason: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> ApprovalDoc:
        """A pending approval no workflow waits on, for a version promoted in from another
        stage (ADR 65): ``candidate → pending_approval`` with the approval in one transaction.

        The target's ``policy`` decides who may approve; the promoter is the requester, so
        the four-eyes rule applies. Idempotent: a pending approval of the version is
        announced if it was not yet, and returned.
        """
        return self._request_direct(
            model,
            version,
            requested_by=requested_by,
            policy=policy,
            execution_id=f"stage-promotion:{origin}",
            reason=reason,
            summary={"promoted_from": origin, **(summary or {})},
            extra={"promoted_from": origin},
        )

    def request_prompt(
        self,
        name: str,
        version: int,
        *,
        requested_by: str,
        reason: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> ApprovalDoc:
        """A pending approval of a prompt version (ADR 78), as :meth:`request_promoted`
        asks for one: ``requested_by`` (who registered it) may not decide it, anyone else
        the approval API admits may. Idempotent like :meth:`request_promoted`."""
        return self._request_direct(
            name,
            version,
            requested_by=requested_by,
            policy=prompt_approval_policy(),
            execution_id=f"prompt-registration:{name}/{version}",
            reason=reason,
            summary=summary or {},
            kind=RegistryKind.PROMPT,
        )

    def _request_direct(
        self,
        model: str,
        version: int,
        *,
        requested_by: str,
        policy: ApprovalPolicy,
        execution_id: str,
        reason: str | None,
        summary: dict[str, Any],
        kind: RegistryKind = RegistryKind.MODEL,
        extra: dict[str, Any] | None = None,
    ) -> ApprovalDoc:
        """A pending approval with no task token, for ``policy``'s approvers."""
        existing = self.find_for_version(model, version)
        if existing is not None:
            doc, revision = existing
            if doc.status is ApprovalStatus.PENDING and not doc.announced:
                doc = self._announce(doc, revision)
            return doc
        found = self._registry.get_version(model, version)
        now = self._clock.now()
        timeout = min(policy.timeout_seconds, self._max_timeout)
        doc = ApprovalDoc(
            approval_id=secrets.token_hex(16),
            model=model,
            version=version,
            kind=kind,
            artifact_sha256=found.artifact.sha256,
            artifact_uri=found.artifact.uri,
            task_token=None,
            execution_id=execution_id,
            requested_by=requested_by,
            requested_at=now,
            expires_at=now + timedelta(seconds=timeout),
            require_distinct_approver=policy.require_distinct_approver,
            approvers=policy.approvers,
            distinct_sessions=policy.distinct_sessions,
            summary=summary,
        )
        return self._store(doc, actor=requested_by, reason=reason, **(extra or {}))

    def _store(self, doc: ApprovalDoc, *, actor: str, reason: str | None = None,
               **extra: Any) -> ApprovalDoc:  # fmt: skip
        """``candidate → pending_approval`` with the approval and its pointer in one
        transaction, then the announcement."""
        self._registry.request_approval(
            doc.model,
            doc.version,
            actor=actor,
            reason=reason,
            records=(
                write(approval_key(doc.approval_id), doc, None),
                write(
                    approval_pointer_key(doc.model, doc.version),
                    ApprovalPointer(approval_id=doc.approval_id),
                    None,
                ),
            ),
            extra={
                "approval_id": doc.approval_id,
                "artifact_sha256": doc.artifact_sha256,
                "requested_by": doc.requested_by,
                "expires_at": isoformat(doc.expires_at),
                **extra,
            },
        )
        return self._announce(doc, 1)

    def _announce(self, doc: ApprovalDoc, revision: int) -> ApprovalDoc:
        """Put ``ApprovalRequested`` on the bus (what notifies the approvers), once."""
        self._events.publish(APPROVAL_REQUESTED, announcement(doc))
        announced = doc.model_copy(update={"announced": True})
        with contextlib.suppress(ConcurrentModificationError):  # decided meanwhile: fine
            self._records.put_record(write(approval_key(doc.approval_id), announced, revision))
        return announced

    # -- reading -------------------------------------------------------------------------------
    def get(self, approval_id: str) -> ApprovalDoc:
        """The approval ``approval_id``; raises :class:`ApprovalNotFoundError` (404)."""
        return self._load(approval_id)[0]

    def find_for_version(self, model: str, version: int) -> tuple[ApprovalDoc, int] | None:
        """The approval of a version (and its revision), if one was requested."""
        return find_approval(self._records, model, version)

    def _load(self, approval_id: str) -> tuple[ApprovalDoc, int]:
        found = read(self._records, approval_key(approval_id), ApprovalDoc)
        if found is None:
            raise ApprovalNotFoundError(
                f"approval {approval_id!r} does not exist", field="approval_id"
            )
        return found

    # -- deciding ------------------------------------------------------------------------------
    def decide(
        self,
        approval_id: str,
        *,
        decision: Decision,
        approver: str,
        reason: str,
        artifact_sha256: str | None = None,
    ) -> ApprovalDoc:
        """Approve or reject, then resume the workflow.

        Parameters
        ----------
        approval_id
            From the URL.
        decision
            ``approve`` or ``reject``.
        approver
            The authenticated caller (IAM user ARN or Cognito subject), never the body.
        reason
            Why; recorded in the audit trail.
        artifact_sha256
            Optional: the SHA-256 the approver reviewed; refused if it is not the bound one.

        Raises
        ------
        ApprovalNotFoundError
            404: no such approval.
        ApprovalAlreadyDecidedError
            409: already approved, rejected or cancelled (a replay or a second approver).
        ApprovalExpiredError
            410: the approval window closed (the version is rejected, the run resumed).
        ApproverNotAllowedError
            403: the approver requested the run and the model requires another person.
        ApprovalArtifactMismatchError
            409: the artifact differs from the one the approval is bound to.
        """
        attempt = functools.partial(
            self._decide_once,
            approval_id,
            decision=decision,
            approver=approver,
            reason=reason,
            artifact_sha256=artifact_sha256,
        )
        for _ in range(DECIDE_ATTEMPTS - 1):
            # A pending approval that changed meanwhile (a new token, the announcement)
            # is read again; a decided one ends in _decided_error below.
            with contextlib.suppress(ConcurrentModificationError):
                return attempt()
        return attempt()

    def _decide_once(
        self,
        approval_id: str,
        *,
        decision: Decision,
        approver: str,
        reason: str,
        artifact_sha256: str | None,
    ) -> ApprovalDoc:
        doc, revision = self._load(approval_id)
        if doc.status is not ApprovalStatus.PENDING:
            self._notify(doc, revision)
            raise self._decided_error(doc)
        now = self._clock.now()
        if now >= doc.expires_at:
            self._expire(doc, revision, attempted_by=approver)
            raise self._decided_error(doc.model_copy(update={"status": ApprovalStatus.EXPIRED}))
        why = refusal(
            approver,
            requested_by=doc.requested_by,
            excluded=doc.excluded,
            approvers=doc.approvers,
            require_distinct=doc.require_distinct_approver,
            distinct_sessions=doc.distinct_sessions,
        )
        if why is not None:
            self._refuse(doc, approver, decision, why)
            raise ApproverNotAllowedError(f"{why}; ask someone else", field="approver")
        if artifact_sha256 is not None and artifact_sha256.lower() != doc.artifact_sha256:
            self._refuse(doc, approver, decision, "the reviewed artifact is not the bound one")
            raise ApprovalArtifactMismatchError(
                f"approval {approval_id} is bound to artifact {doc.artifact_sha256}, "
                "not the one given",
                field="artifact_sha256",
            )
        registered = self._registry.get_version(doc.model, doc.version).artifact.sha256
        if registered != doc.artifact_sha256:
            self._refuse(doc, approver, decision, "the version's artifact changed")
            raise ApprovalArtifactMismatchError(
                f"version {doc.version} of {doc.model!r} no longer holds the artifact this "
                "approval is bound to",
                field="artifact_sha256",
            )

        status = (
            ApprovalStatus.APPROVED if decision is Decision.APPROVE else ApprovalStatus.REJECTED
        )
        move = self._registry.approve if decision is Decision.APPROVE else self._registry.reject
        for attempt in range(3):
            decided = doc.model_copy(
                update={
                    "status": status,
                    "decided_by": approver,
                    "decided_at": now,
                    "decision_reason": reason,
                }
            )
            try:
                move(
                    doc.model,
                    doc.version,
                    actor=approver,
                    reason=reason,
                    records=(write(approval_key(approval_id), decided, revision),),
                    extra={
                        "approval_id": approval_id,
                        "artifact_sha256": doc.artifact_sha256,
                        "requested_by": doc.requested_by,
                    },
                )
            except (ConcurrentModificationError, IllegalTransitionError):
                current, current_revision = self._load(approval_id)
                if current.status is not ApprovalStatus.PENDING:
                    raise self._decided_error(current) from None
                if attempt == 2:
                    raise
                # Still pending: only its bookkeeping moved (announced, a new task token).
                doc, revision = current, current_revision
                continue
            return self._notify(decided, revision + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _decided_error(doc: ApprovalDoc) -> ApprovalAlreadyDecidedError | ApprovalExpiredError:
        if doc.status is ApprovalStatus.EXPIRED:
            return ApprovalExpiredError(
                f"approval {doc.approval_id} expired at {isoformat(doc.expires_at)}; "
                "the version was not approved",
                field="approval_id",
            )
        when = f" at {isoformat(doc.decided_at)}" if doc.decided_at else ""
        by = f" by {doc.decided_by}" if doc.decided_by else ""
        return ApprovalAlreadyDecidedError(
            f"approval {doc.approval_id} was already {doc.status}{by}{when}",
            field="approval_id",
            details={"status": str(doc.status)},
        )

    def _refuse(self, doc: ApprovalDoc, approver: str, decision: Decision, why: str) -> None:
        self._registry.record(
            AuditDraft(
                model=doc.model,
                action=AuditAction.APPROVAL_REFUSED,
                actor=approver,
                version=doc.version,
                reason=why,
                details={"approval_id": doc.approval_id, "decision": str(decision)},
            )
        )

    def _expire(self, doc: ApprovalDoc, revision: int, *, attempted_by: str | None) -> None:
        expired = doc.model_copy(
            update={
                "status": ApprovalStatus.EXPIRED,
                "decided_by": APPROVALS_ACTOR,
                "decided_at": self._clock.now(),
                "decision_reason": f"no decision before {isoformat(doc.expires_at)}",
            }
        )
        records = (write(approval_key(doc.approval_id), expired, revision),)
        reason = f"approval {doc.approval_id} expired at {isoformat(doc.expires_at)}"
        extra = {"approval_id": doc.approval_id, "attempted_by": attempted_by}
        try:
            status = self._registry.get_version(doc.model, doc.version).status
            if status is VersionStatus.PENDING_APPROVAL:
                self._registry.expire_approval(
                    doc.model,
                    doc.version,
                    actor=APPROVALS_ACTOR,
                    reason=reason,
                    records=records,
                    extra=extra,
                )
            else:
                self._registry.record(
                    AuditDraft(
                        model=doc.model,
                        action=AuditAction.APPROVAL_EXPIRED,
                        actor=APPROVALS_ACTOR,
                        version=doc.version,
                        reason=reason,
                        details=extra,
                    ),
                    records=records,
                )
        except (ConcurrentModificationError, IllegalTransitionError):
            return  # someone else expired or decided it first; nothing left to do here
        self._notify(expired, revision + 1)

    # -- side effects after a decision ---------------------------------------------------------
    def _notify(self, doc: ApprovalDoc, revision: int) -> ApprovalDoc:
        """Resume the workflow and publish ``VersionApproved``, once each (recorded)."""
        updates: dict[str, Any] = {}
        if not doc.workflow_notified and doc.task_token is None:
            updates["workflow_notified"] = True  # no workflow waits on this approval
        elif not doc.workflow_notified:
            assert doc.task_token is not None
            try:
                if doc.status is ApprovalStatus.APPROVED:
                    self._tokens.succeed(doc.task_token, self._task_output(doc))
                elif doc.status is ApprovalStatus.REJECTED:
                    self._tokens.fail(
                        doc.task_token,
                        error=self._rejected_error,
                        cause=(doc.decision_reason or "rejected")[:256],
                    )
                elif doc.status is ApprovalStatus.EXPIRED:
                    self._tokens.fail(
                        doc.task_token,
                        error=APPROVAL_EXPIRED_ERROR,
                        cause=doc.decision_reason or "expired",
                    )
                updates["workflow_notified"] = True
            except TaskTokenError as err:
                # The task is gone (timed out, or its run failed): nothing can resume it.
                updates.update(workflow_notified=True, workflow_error=err.message)
        # Model and prompt versions alike: the promotion workflow rolls either out.
        if doc.status is ApprovalStatus.APPROVED and not doc.event_published:
            event_id = self._events.publish(VERSION_APPROVED, self._event_detail(doc))
            updates.update(event_published=True, event_id=event_id)
        if not updates:
            return doc
        updated = doc.model_copy(update=updates)
        # A concurrent replay may have recorded the same side effects first.
        with contextlib.suppress(ConcurrentModificationError):
            self._records.put_record(write(approval_key(doc.approval_id), updated, revision))
        return updated

    @staticmethod
    def _task_output(doc: ApprovalDoc) -> dict[str, Any]:
        return {
            "approval_id": doc.approval_id,
            "decision": str(Decision.APPROVE),
            "approver": doc.decided_by,
            "reason": doc.decision_reason,
            "version": doc.version,
            "artifact_sha256": doc.artifact_sha256,
            "decided_at": isoformat(doc.decided_at) if doc.decided_at else None,
        }

    @staticmethod
    def _event_detail(doc: ApprovalDoc) -> dict[str, Any]:
        return {
            "model_name": doc.model,
            "version": doc.version,
            "approval_id": doc.approval_id,
            "approver": doc.decided_by,
            "reason": doc.decision_reason,
            "artifact_sha256": doc.artifact_sha256,
            "decided_at": isoformat(doc.decided_at) if doc.decided_at else None,
            "kind": str(doc.kind),
        }

    # -- a run that failed while its version waited ---------------------------------------------
    def withdraw(
        self, model: str, version: int, *, actor: str, reason: str, expired: bool
    ) -> VersionStatus:
        """Close what a failed training run leaves open: its approval and its candidate.

        A pending approval becomes ``expired`` (the wait timed out) or ``cancelled``; a
        ``candidate`` or ``pending_approval`` version becomes ``rejected``; both in one
        transaction with the audit entry (``approval_expired`` or ``training_failed``).
        A version already decided is left alone and the failure is only audited.

        Returns
        -------
        VersionStatus
            The version's status afterwards.
        """
        action = AuditAction.APPROVAL_EXPIRED if expired else AuditAction.TRAINING_FAILED
        records: tuple[RecordWrite, ...] = ()
        extra: dict[str, Any] = {}
        found = self.find_for_version(model, version)
        if found is not None and found[0].status is ApprovalStatus.PENDING:
            doc, revision = found
            closed = doc.model_copy(
                update={
                    "status": ApprovalStatus.EXPIRED if expired else ApprovalStatus.CANCELLED,
                    "decided_by": actor,
                    "decided_at": self._clock.now(),
                    "decision_reason": reason,
                    "workflow_notified": True,
                }
            )
            records = (write(approval_key(doc.approval_id), closed, revision),)
            extra["approval_id"] = doc.approval_id
        status = self._registry.get_version(model, version).status
        if status in (VersionStatus.CANDIDATE, VersionStatus.PENDING_APPROVAL):
            withdrawn = self._registry.withdraw(
                model,
                version,
                actor=actor,
                reason=reason,
                action=action,
                records=records,
                extra=extra,
            )
            return withdrawn.status
        self._registry.record(
            AuditDraft(
                model=model,
                action=AuditAction.TRAINING_FAILED,
                actor=actor,
                version=version,
                reason=reason,
                details={**extra, "version_status": str(status)},
            ),
            records=records,
        )
        return status
