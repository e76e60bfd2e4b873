"""The records writer: the one principal that writes the registry and the audit trail.

Every other function, and every person through the CLI, asks it for a change through one
of its *capabilities* (a Lambda alias each, so IAM decides who may use which).  The
writer checks that the change's audit action and records belong to the capability,
establishes who acts, and applies the change with the audit entry in one transaction,
signing the new head with the audit writer's key (ADR 61).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from flywheel.audit.models import AuditAction, AuditDraft, AuditEntry
from flywheel.errors import (
    ApproverNotAllowedError,
    FlywheelError,
    InvalidRequestError,
    ModelNotFoundError,
    NotPermittedError,
    VersionNotFoundError,
)
from flywheel.registry.models import (
    Alias,
    ModelVersion,
    RecordKey,
    RecordWrite,
    RegistryChange,
    RegistryKind,
    StoredRecord,
    VersionDraft,
    VersionStatus,
    is_allowed,
)
from flywheel.workflows.approvals import prompt_approval_policy, refusal, requester_of
from flywheel.workflows.records import (
    ApprovalDoc,
    ApprovalStatus,
    approval_key,
    approval_pointer_key,
)

if TYPE_CHECKING:
    from flywheel.audit.ports import AuditLog
    from flywheel.registry.ports import RegistryStorage
    from flywheel.workflows.config import ModelConfigStore
    from flywheel.workflows.ports import IdentityVerifier

T = TypeVar("T")

__all__ = [
    "EFFECTS",
    "Capability",
    "Effects",
    "RecordsWriter",
    "WriteOp",
    "WriteRequest",
    "WriteResponse",
    "capability_of",
    "check_effects",
]


class Capability(StrEnum):
    """What a caller may change; each is one alias of the writer function."""

    #: The training workflow's steps (they run from the training image).
    TRAINING_RUNS = "training-runs"
    #: The promotion workflow's steps.
    PROMOTION_RUNS = "promotion-runs"
    #: Failure handling shared by both workflows: what either may record.
    WORKFLOWS = "workflows"
    #: The approval API: decisions on candidates.
    APPROVALS = "approvals"
    #: People who train (data scientists): register candidates and ask for approval.
    TRAINING = "training"
    #: People who run the platform (ML engineers): configure, promote, roll back, archive,
    #: feature views, and what ``training`` may.
    OPERATIONS = "operations"
    #: The feature materializer: watermarks only.
    FEATURES = "features"
    #: People promoting a version in from another stage (ADR 65): register it, ask for
    #: its approval and record where it came from; nothing else.
    PROMOTIONS = "promotions"
    #: The config route (``POST /v1/models/{name}/config``, what CI calls after a deploy):
    #: model configs as the authenticated caller; nothing else.
    CONFIGS = "configs"
    #: The prompt registration route (``POST /v1/prompts/{name}/versions``): a prompt
    #: version's registration and its approval request, as the authenticated caller;
    #: nothing else.
    PROMPTS = "prompts"
    #: The production quality monitor (ADR 82): a prompt version's verdict and the
    #: day's scoring budget, audited; nothing else.
    MONITORS = "monitors"


_DECISIONS = frozenset({AuditAction.APPROVED, AuditAction.REJECTED})
_LIFECYCLE = frozenset(
    {
        AuditAction.VERSION_REGISTERED,
        AuditAction.APPROVAL_REQUESTED,
        AuditAction.CANARY_STARTED,
        AuditAction.CANARY_ADVANCED,
        AuditAction.CANARY_ABORTED,
        AuditAction.PROMOTED,
        AuditAction.ROLLED_BACK,
        AuditAction.ARCHIVED,
        AuditAction.PROMOTION_FAILED,
    }
)
_TRAINING_RUNS = frozenset(
    {
        AuditAction.VERSION_REGISTERED,
        AuditAction.APPROVAL_REQUESTED,
        AuditAction.RETRAIN_TRIGGERED,
        AuditAction.RETRAIN_SUPPRESSED,
        AuditAction.TRAINING_FAILED,
        AuditAction.DATA_VALIDATION_FAILED,
        AuditAction.GATE_REJECTED,
        AuditAction.APPROVAL_EXPIRED,
    }
)
_PROMOTION_RUNS = frozenset(
    {
        AuditAction.CANARY_STARTED,
        AuditAction.CANARY_ADVANCED,
        AuditAction.CANARY_ABORTED,
        AuditAction.PROMOTED,
        AuditAction.ROLLED_BACK,
        AuditAction.ARCHIVED,
        AuditAction.PROMOTION_FAILED,
        # A prompt version's evaluation gate (ADR 81); record_failure (``workflows``)
        # audits evaluation_failed.
        AuditAction.EVALUATION_PASSED,
        AuditAction.EVALUATION_REJECTED,
        AuditAction.EVALUATION_FAILED,
    }
)
#: The audit actions each capability may record.
ACTIONS: dict[Capability, frozenset[AuditAction]] = {
    Capability.TRAINING_RUNS: _TRAINING_RUNS,
    Capability.PROMOTION_RUNS: _PROMOTION_RUNS,
    Capability.WORKFLOWS: _TRAINING_RUNS | _PROMOTION_RUNS,
    Capability.APPROVALS: _DECISIONS | {AuditAction.APPROVAL_REFUSED, AuditAction.APPROVAL_EXPIRED},
    Capability.TRAINING: frozenset(
        {AuditAction.VERSION_REGISTERED, AuditAction.APPROVAL_REQUESTED}
    ),
    # Decisions only where the model's approval policy allows direct approval.
    Capability.OPERATIONS: _LIFECYCLE
    | _DECISIONS
    | {
        AuditAction.MODEL_CONFIGURED,
        AuditAction.FEATURE_VIEW_REGISTERED,
        AuditAction.STAGE_PROMOTED_OUT,
        AuditAction.EXPERIMENT_STARTED,
        AuditAction.EXPERIMENT_STOPPED,
    },
    Capability.FEATURES: frozenset(),
    Capability.CONFIGS: frozenset({AuditAction.MODEL_CONFIGURED}),
    Capability.PROMPTS: frozenset({AuditAction.VERSION_REGISTERED, AuditAction.APPROVAL_REQUESTED}),
    Capability.MONITORS: frozenset(
        {
            AuditAction.LLM_QUALITY_CHECKED,
            AuditAction.LLM_QUALITY_DEGRADED,
            AuditAction.LLM_QUALITY_FAILED,
        }
    ),
    Capability.PROMOTIONS: frozenset(
        {
            AuditAction.VERSION_REGISTERED,
            AuditAction.APPROVAL_REQUESTED,
            AuditAction.STAGE_PROMOTED_IN,
        }
    ),
}
_TRAINING_RECORDS = frozenset(
    {("MODEL#", "RUNLOCK"), ("MODEL#", "APPROVAL#V"), ("APPROVAL#", "APPROVAL")}
)
#: Experiment runs (``flywheel runs``): whoever trains records them.
_RUNS = ("MODEL#", "RUN#")
#: An approval and its pointer. People may write them only to ask for a prompt version's
#: approval (ADR 78), checked record by record (:meth:`RecordsWriter._check_prompt_request`).
_APPROVALS = frozenset({("MODEL#", "APPROVAL#V"), ("APPROVAL#", "APPROVAL")})
#: The auxiliary records each capability may write: (partition prefix, sort prefix).
RECORDS: dict[Capability, frozenset[tuple[str, str]]] = {
    Capability.TRAINING_RUNS: _TRAINING_RECORDS | {_RUNS},
    Capability.PROMOTION_RUNS: frozenset(
        {("MODEL#", "SERVING"), ("MODEL#", "CANARY"), ("MODEL#", "EVALUATION#V")}
    ),
    Capability.WORKFLOWS: _TRAINING_RECORDS | {("MODEL#", "SERVING")},
    Capability.APPROVALS: frozenset({("APPROVAL#", "APPROVAL")}),
    Capability.TRAINING: frozenset({_RUNS}) | _APPROVALS,
    Capability.OPERATIONS: frozenset(
        {
            _RUNS,
            ("MODEL#", "CONFIG"),
            ("MODEL#", "SERVING"),
            ("MODEL#", "EXPERIMENT"),
            ("FEATURE_VIEWS", "CATALOG"),
            ("FEATURE_VIEW#", "VERSION#"),
        }
    )
    | _APPROVALS,
    Capability.FEATURES: frozenset({("FEATURE_VIEW#", "WATERMARK#")}),
    Capability.CONFIGS: frozenset({("MODEL#", "CONFIG")}),
    Capability.PROMPTS: _APPROVALS,
    Capability.MONITORS: frozenset({("MODEL#", "QUALITY")}),
    Capability.PROMOTIONS: frozenset(
        {("MODEL#", "PROMOTED_IN#"), ("MODEL#", "APPROVAL#V"), ("APPROVAL#", "APPROVAL")}
    ),
}


class Effects(NamedTuple):
    """What a change audited as one action may do to versions and aliases."""

    #: Statuses a version may be moved to (from one the lifecycle allows).
    targets: frozenset[VersionStatus] = frozenset()
    #: Aliases the change may point or clear.
    aliases: frozenset[Alias] = frozenset()
    #: Whether the change rewrites the champion history (rollback's memory).
    history: bool = False
    #: Whether a prompt version may take the prompts' own transitions
    #: (:data:`~flywheel.registry.models.PROMPT_TRANSITIONS`) in the change.
    prompt_transitions: bool = False


_REJECT = Effects(targets=frozenset({VersionStatus.REJECTED}))
#: The registry effects each audit action allows; an action not listed changes no version.
#: Without this an action a capability may record (``approval_requested`` for the
#: training image) could carry any status or alias change with it.
EFFECTS: dict[AuditAction, Effects] = {
    AuditAction.APPROVAL_REQUESTED: Effects(targets=frozenset({VersionStatus.PENDING_APPROVAL})),
    AuditAction.APPROVED: Effects(targets=frozenset({VersionStatus.APPROVED})),
    AuditAction.REJECTED: _REJECT,
    AuditAction.GATE_REJECTED: _REJECT,
    AuditAction.TRAINING_FAILED: _REJECT,
    AuditAction.APPROVAL_EXPIRED: _REJECT,
    AuditAction.ARCHIVED: Effects(targets=frozenset({VersionStatus.ARCHIVED})),
    AuditAction.CANARY_STARTED: Effects(
        targets=frozenset({VersionStatus.CANARY}), aliases=frozenset({Alias.CHALLENGER})
    ),
    AuditAction.CANARY_ABORTED: Effects(
        targets=frozenset({VersionStatus.ROLLED_BACK}), aliases=frozenset({Alias.CHALLENGER})
    ),
    AuditAction.PROMOTION_FAILED: Effects(
        targets=frozenset({VersionStatus.ROLLED_BACK}), aliases=frozenset({Alias.CHALLENGER})
    ),
    # The evaluation gate rejects an approved prompt version (approved -> rejected).
    AuditAction.EVALUATION_REJECTED: Effects(
        targets=frozenset({VersionStatus.REJECTED}), prompt_transitions=True
    ),
    # record_failure after EvaluateCandidate: as promotion_failed (nothing is on canary).
    AuditAction.EVALUATION_FAILED: Effects(
        targets=frozenset({VersionStatus.ROLLED_BACK}), aliases=frozenset({Alias.CHALLENGER})
    ),
    AuditAction.PROMOTED: Effects(
        targets=frozenset({VersionStatus.PRODUCTION, VersionStatus.ARCHIVED}),
        aliases=frozenset({Alias.CHAMPION, Alias.CHALLENGER}),
        history=True,
    ),
    AuditAction.ROLLED_BACK: Effects(
        targets=frozenset({VersionStatus.PRODUCTION, VersionStatus.ROLLED_BACK}),
        aliases=frozenset({Alias.CHAMPION}),
        history=True,
    ),
}
#: Statuses only the audited version itself may reach in a change (never a bystander).
_OWN_TARGETS = frozenset(
    {
        VersionStatus.APPROVED,
        VersionStatus.PENDING_APPROVAL,
        VersionStatus.CANARY,
        VersionStatus.PRODUCTION,
    }
)


def check_effects(
    change: RegistryChange, audit: AuditDraft, kind: RegistryKind = RegistryKind.MODEL
) -> None:
    """Refuse a change that does more to versions and aliases than its audit action says
    (``kind``: what the change's name holds; prompts' own transitions need an action
    whose effects allow them).

    Examples
    --------
    >>> from flywheel.registry.models import StatusChange
    >>> change = RegistryChange(model="churn", statuses=(StatusChange(
    ...     version=3, expected=VersionStatus.PENDING_APPROVAL, target=VersionStatus.APPROVED),))
    >>> draft = AuditDraft(model="churn", action=AuditAction.APPROVAL_REQUESTED, actor="wf",
    ...                    version=3)
    >>> check_effects(change, draft)
    Traceback (most recent call last):
    ...
    flywheel.errors.NotPermittedError: approval_requested cannot move a version to approved
    """
    effects = EFFECTS.get(audit.action, Effects())
    for status in change.statuses:
        if status.target not in effects.targets:
            raise NotPermittedError(
                f"{audit.action!s} cannot move a version to {status.target!s}", field="change"
            )
        lifecycle = kind if effects.prompt_transitions else RegistryKind.MODEL
        if not is_allowed(status.expected, status.target, lifecycle):
            raise NotPermittedError(
                f"the lifecycle does not lead from {status.expected!s} to {status.target!s}",
                field="change",
            )
        if status.target in _OWN_TARGETS and status.version != audit.version:
            raise NotPermittedError(
                f"{audit.action!s} of version {audit.version} cannot move version {status.version}",
                field="change",
            )
    for alias in change.aliases:
        if alias.alias not in effects.aliases:
            raise NotPermittedError(
                f"{audit.action!s} cannot change the {alias.alias!s} alias", field="change"
            )
        if alias.target is not None and alias.target != audit.version:
            raise NotPermittedError(
                f"{audit.action!s} of version {audit.version} cannot point "
                f"{alias.alias!s} at version {alias.target}",
                field="change",
            )
    if change.champion_history is not None and not effects.history:
        raise NotPermittedError(
            f"{audit.action!s} cannot rewrite the champion history", field="change"
        )


#: Capabilities people use (through the CLI and SDK): they must prove who they are.
_PEOPLE = frozenset({Capability.TRAINING, Capability.OPERATIONS, Capability.PROMOTIONS})
#: Who registers prompts and asks for their versions' approvals: people themselves (the
#: local runtime, in memory), or the registration route as its authenticated caller.
_PROMPT_REQUESTERS = frozenset({Capability.TRAINING, Capability.OPERATIONS, Capability.PROMPTS})
#: People who may ask for an approval themselves: for a prompt version they registered,
#: or (``promotions``) for a model version they promoted in from another stage.
_APPROVAL_REQUESTERS = _PROMPT_REQUESTERS | {Capability.PROMOTIONS}


def _is_approval(key: RecordKey) -> bool:
    return key.partition.startswith("APPROVAL#") or key.sort.startswith("APPROVAL#V")


class WriteOp(StrEnum):
    CREATE_VERSION = "create_version"
    APPLY = "apply"
    APPEND = "append"
    PUT_RECORD = "put_record"


class WriteRequest(BaseModel):
    """One change, as the writer's callers send it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: WriteOp
    #: The acting identity, asserted by a workflow function; ignored when a proof is given.
    actor: str | None = None
    #: For people (``operations``): a presigned ``sts:GetCallerIdentity`` request.
    identity_proof: str | None = None
    draft: VersionDraft | None = None
    change: RegistryChange | None = None
    audit: AuditDraft | None = None
    record: RecordWrite | None = None


class WriteResponse(BaseModel):
    """The writer's answer: what was stored, or the domain error that refused it."""

    model_config = ConfigDict(frozen=True)

    version: ModelVersion | None = None
    entry: AuditEntry | None = None
    record: StoredRecord | None = None
    error: dict[str, Any] | None = None


def capability_of(invoked_function_arn: str) -> Capability:
    """The capability an invocation used: the alias in the ARN it was invoked with.

    Examples
    --------
    >>> capability_of("arn:aws:lambda:eu-west-1:123456789012:function:fw-records-writer:approvals")
    <Capability.APPROVALS: 'approvals'>
    """
    parts = invoked_function_arn.split(":")
    alias = parts[7] if len(parts) > 7 else ""
    try:
        return Capability(alias)
    except ValueError:
        raise NotPermittedError(
            "the records writer must be invoked through a capability alias "
            f"({', '.join(c.value for c in Capability)}), not {alias or 'unqualified'}",
            field="capability",
        ) from None


class RecordsWriter:
    """Check one :class:`WriteRequest` against its capability and apply it.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> platform = InMemoryPlatform()
    >>> writer = RecordsWriter(store=platform.records, audit=platform.audit,
    ...                        configs=platform.configs, identity=None, trust_asserted=True)
    >>> request = WriteRequest(op=WriteOp.APPEND, audit=AuditDraft(
    ...     model="churn", action=AuditAction.APPROVED, actor="ana", reason="ok"))
    >>> writer.handle(request, Capability.WORKFLOWS).error["code"]
    'not_permitted'
    """

    def __init__(
        self,
        *,
        store: RegistryStorage,
        audit: AuditLog,
        configs: ModelConfigStore,
        identity: IdentityVerifier | None,
        trust_asserted: bool = False,
    ) -> None:
        self._store = store
        self._audit = audit
        self._configs = configs
        self._identity = identity
        self._trust_asserted = trust_asserted

    def handle(self, request: WriteRequest, capability: Capability) -> WriteResponse:
        """Apply ``request``; a refusal or a domain error comes back as ``error``."""
        try:
            return self._apply(request, capability)
        except FlywheelError as err:
            return WriteResponse(error=err.to_dict())

    def _apply(self, request: WriteRequest, capability: Capability) -> WriteResponse:
        audit = request.audit
        if request.op is WriteOp.PUT_RECORD:
            record = _required(request.record, "record")
            self._check_record(record, capability)
            if capability in _APPROVAL_REQUESTERS and _is_approval(record.key):
                self._check_announcement(record, capability)
            return WriteResponse(record=self._store.put_record(record))
        audit = _required(audit, "audit")
        actor = self._actor(request, capability, audit)
        audit = audit.model_copy(update={"actor": actor})
        self._check_action(audit, capability)
        if capability is Capability.PROMPTS:
            _check_prompt_registration(request, audit)
        if request.op is WriteOp.CREATE_VERSION:
            draft = _required(request.draft, "draft")
            if draft.name != audit.model:
                raise InvalidRequestError("the draft and the audit entry name different models")
            version, entry = self._store.create_version(draft, actor=actor, audit=audit)
            return WriteResponse(version=version, entry=entry)
        if request.op is WriteOp.APPLY:
            change = _required(request.change, "change")
            if change.model != audit.model:
                raise InvalidRequestError("the change and the audit entry name different models")
            for record in change.records:
                self._check_record(record, capability)
                if capability in _APPROVAL_REQUESTERS and _is_approval(record.key):
                    self._check_approval_request(record, audit, capability)
            check_effects(change, audit, self._kind(change))
            return WriteResponse(entry=self._store.apply(change, actor=actor, audit=audit))
        return WriteResponse(entry=self._audit.append(audit))

    def _kind(self, change: RegistryChange) -> RegistryKind:
        """What the change's name holds (a name not registered yet: a model's)."""
        if not change.statuses:
            return RegistryKind.MODEL
        try:
            return self._store.get_model(change.model).kind
        except ModelNotFoundError:
            return RegistryKind.MODEL

    def _actor(self, request: WriteRequest, capability: Capability, audit: AuditDraft) -> str:
        if capability not in _PEOPLE or self._trust_asserted:
            return request.actor or audit.actor
        if request.identity_proof is None or self._identity is None:
            raise NotPermittedError(
                "changes made by people need a proof of their AWS identity", field="identity"
            )
        return self._identity.principal(request.identity_proof)

    def _check_action(self, audit: AuditDraft, capability: Capability) -> None:
        if audit.action not in ACTIONS[capability]:
            raise NotPermittedError(
                f"the {capability} capability cannot record {audit.action!s}", field="action"
            )
        if capability is Capability.OPERATIONS and audit.action in _DECISIONS:
            from flywheel.workflows.config import ApprovalPolicy

            found = self._configs.find(audit.model)
            # The local runtime lets people approve a version they trained by hand (no
            # workflow config): the SDK's rule there; the four-eyes rule still applies.
            unconfigured_here = found is None and self._trust_asserted
            if not unconfigured_here and (
                found is None or not found.config.approval.allow_direct_approval
            ):
                raise NotPermittedError(
                    f"{audit.model!r} is decided through its training workflow's approval "
                    "(POST /v1/approvals/{id}); its approval policy does not allow direct "
                    "approval",
                    field="action",
                )
            policy = found.config.approval if found is not None else ApprovalPolicy()
            requester = requester_of(self._audit.entries(audit.model), audit.version or 0)
            why = refusal(
                audit.actor,
                requested_by=requester or "",
                approvers=policy.approvers,
                require_distinct=policy.require_distinct_approver,
                distinct_sessions=policy.distinct_sessions,
            )
            if why is not None:
                raise ApproverNotAllowedError(f"{why}; ask someone else", field="approver")

    def _check_approval_request(
        self, record: RecordWrite, audit: AuditDraft, capability: Capability
    ) -> None:
        """People write an approval only to ask for one: a new, pending, undecided approval
        with no task token, requested by themselves (the proven actor), bound to the
        version's artifact, under the policy that governs it: :func:`prompt_approval_policy`
        for their prompt versions, the model's stored policy for a version promoted in
        (``promotions``)."""
        promoted = capability is Capability.PROMOTIONS
        kind = RegistryKind.MODEL if promoted else RegistryKind.PROMPT
        refused = NotPermittedError(
            "people may write an approval only to ask for their own prompt version's or "
            "promoted version's, pending and under the policy that governs it",
            field="record",
        )
        if audit.action is not AuditAction.APPROVAL_REQUESTED or audit.version is None:
            raise refused
        if record.expected_revision is not None:
            raise refused
        try:
            model = self._store.get_model(audit.model)
            version = self._store.get_version(audit.model, audit.version)
        except (ModelNotFoundError, VersionNotFoundError):
            raise refused from None
        if model.kind is not kind:
            raise NotPermittedError(
                f"{audit.model!r} is not a prompt: its approvals are asked for by its training run"
                if not promoted
                else f"{audit.model!r} is a prompt: stage promotion moves model versions only",
                field="record",
            )
        if record.key.partition.startswith("MODEL#"):
            if record.key != approval_pointer_key(audit.model, audit.version):
                raise refused
            return
        try:
            doc = ApprovalDoc.model_validate(record.doc)
        except ValidationError:
            raise refused from None
        if promoted:
            from flywheel.workflows.config import ApprovalPolicy

            found = self._configs.find(audit.model)
            policy = found.config.approval if found is not None else ApprovalPolicy()
        else:
            policy = prompt_approval_policy()
        fits = (
            record.key == approval_key(doc.approval_id)
            and doc.kind is kind
            and (doc.model, doc.version) == (audit.model, audit.version)
            and doc.artifact_sha256 == version.artifact.sha256
            and doc.status is ApprovalStatus.PENDING
            and doc.task_token is None
            and doc.decided_by is None
            and doc.decided_at is None
            and doc.requested_by == audit.actor
            and doc.require_distinct_approver == policy.require_distinct_approver
            and doc.approvers == policy.approvers
            and doc.distinct_sessions == policy.distinct_sessions
            and not doc.excluded
            and (doc.expires_at - doc.requested_at).total_seconds() <= policy.timeout_seconds
            and not (doc.announced or doc.workflow_notified or doc.event_published)
        )
        if not fits:
            raise refused

    def _check_announcement(self, record: RecordWrite, capability: Capability) -> None:
        """People rewrite an approval they asked for only to mark it announced."""
        stored = self._store.get_record(record.key)
        if stored is None or record.key.partition.startswith("MODEL#"):
            raise NotPermittedError("people may not write this approval record", field="record")
        before = dict(stored.doc)
        kind = RegistryKind.MODEL if capability is Capability.PROMOTIONS else RegistryKind.PROMPT
        if (
            before.get("kind", str(RegistryKind.MODEL)) != str(kind)
            or before.get("status") != "pending"
        ):
            raise NotPermittedError("people may not write this approval record", field="record")
        if {**before, "announced": True} != record.doc:
            raise NotPermittedError(
                "people may only mark their prompt approval announced", field="record"
            )

    @staticmethod
    def _check_record(record: RecordWrite, capability: Capability) -> None:
        key = record.key
        if not any(
            key.partition.startswith(p) and key.sort.startswith(s) for p, s in RECORDS[capability]
        ):
            raise NotPermittedError(
                f"the {capability} capability cannot write {key.partition}/{key.sort}",
                field="record",
            )


def _check_prompt_registration(request: WriteRequest, audit: AuditDraft) -> None:
    """The registration route's capability (``prompts``) makes the writes of one prompt
    registration and nothing else: a version of kind ``prompt`` (``version_registered``),
    then its approval request with exactly the approval and its pointer
    (``approval_requested``; each record is checked by
    :meth:`RecordsWriter._check_approval_request`, which also refuses a model's name),
    and the approval's announcement mark (a ``put_record`` checked by
    :meth:`RecordsWriter._check_announcement`). No bare audit entry.

    Examples
    --------
    >>> request = WriteRequest(op=WriteOp.APPEND, audit=AuditDraft(
    ...     model="greet", action=AuditAction.VERSION_REGISTERED, actor="ana", version=1))
    >>> _check_prompt_registration(request, request.audit)
    Traceback (most recent call last):
    ...
    flywheel.errors.NotPermittedError: the prompts capability registers prompt versions and \
asks for their approval; it cannot append version_registered alone
    """
    if request.op is WriteOp.CREATE_VERSION:
        draft = _required(request.draft, "draft")
        if audit.action is not AuditAction.VERSION_REGISTERED or draft.kind is not (
            RegistryKind.PROMPT
        ):
            raise NotPermittedError(
                f"the prompts capability registers prompt versions only, not a {draft.kind!s} "
                f"version recorded as {audit.action!s}",
                field="draft",
            )
        return
    if request.op is WriteOp.APPLY:
        change = _required(request.change, "change")
        pointers = sorted(r.key.partition.startswith("MODEL#") for r in change.records)
        if audit.action is AuditAction.APPROVAL_REQUESTED and pointers == [False, True]:
            return
        raise NotPermittedError(
            "the prompts capability changes a version only to ask for its approval, with "
            "the approval and its pointer",
            field="change",
        )
    raise NotPermittedError(
        "the prompts capability registers prompt versions and asks for their approval; "
        f"it cannot {request.op!s} {audit.action!s} alone",
        field="action",
    )


def _required(value: T | None, name: str) -> T:
    if value is None:
        raise InvalidRequestError(f"{name}: required for this operation", field=name)
    return value
