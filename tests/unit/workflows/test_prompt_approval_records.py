"""People ask for their prompt version's approval themselves, through the records writer:
only a new, pending, undecided approval, requested by their proven identity, bound to
the version's artifact, under the prompt approval policy (four eyes). Nothing else.

The registration route (``prompts``, what a deployed stage registers through) may do the
same as its caller, and nothing more: no model version, no other action or record."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flywheel.adapters.lambda_records import LambdaRecordsWriter, WriterAuditLog, WriterRegistry
from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
from flywheel.adapters.memory_workflows import InMemoryEventPublisher, InMemoryTaskTokens
from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.clock import FixedClock
from flywheel.errors import NotPermittedError
from flywheel.llm.catalog import PromptCatalog
from flywheel.registry.models import (
    RecordKey,
    RecordWrite,
    RegistryChange,
    StatusChange,
    VersionStatus,
)
from flywheel.registry.service import RegistryService
from flywheel.workflows.approvals import ApprovalService
from flywheel.workflows.config import ModelConfigStore
from flywheel.workflows.records import (
    ApprovalDoc,
    ApprovalPointer,
    ApprovalStatus,
    approval_key,
    approval_pointer_key,
    write,
)
from flywheel.workflows.writer import (
    Capability,
    RecordsWriter,
    WriteOp,
    WriteRequest,
    capability_of,
)
from tests.factories import prompt_spec, version_draft

ANA = "arn:aws:sts::123456789012:assumed-role/data-scientist/ana"
BO = "arn:aws:sts::123456789012:assumed-role/data-scientist/bo"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PROMPT = "ticket-summary"


class FakeIdentity:
    def principal(self, proof: str) -> str:
        return proof


class FakeLambda:
    def __init__(self, writer: RecordsWriter) -> None:
        self.writer = writer

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{FunctionName}"
        answer = self.writer.handle(WriteRequest.model_validate_json(Payload), capability_of(arn))
        return {"Payload": io.BytesIO(answer.model_dump_json().encode()), "StatusCode": 200}


class World:
    """Tables, the writer, and the services a person reaches through one capability."""

    def __init__(self) -> None:
        self.audit = InMemoryAuditLog()
        self.store = InMemoryModelRegistry(self.audit)
        self.writer = RecordsWriter(
            store=self.store,
            audit=self.audit,
            configs=ModelConfigStore(RegistryService(self.store, self.audit), self.store),
            identity=FakeIdentity(),
        )
        self.artifacts = InMemoryArtifactStore()

    def person(self, capability: str, proof: str) -> tuple[RegistryService, ApprovalService]:
        transport = LambdaRecordsWriter(
            "fw-records-writer", capability, client=FakeLambda(self.writer), proof=lambda: proof
        )
        records = WriterRegistry(self.store, transport)  # type: ignore[arg-type]
        registry = RegistryService(records, WriterAuditLog(self.audit, transport))  # type: ignore[arg-type]
        approvals = ApprovalService(
            registry=registry,
            records=records,
            tokens=InMemoryTaskTokens(),
            events=InMemoryEventPublisher(),
            clock=FixedClock(NOW),
            max_timeout_seconds=72 * 3600,
        )
        return registry, approvals

    def prompt_candidate(self, registry: RegistryService) -> int:
        catalog = PromptCatalog(registry, self.artifacts)
        return catalog.register(prompt_spec(), actor=ANA, environment="e" * 64).version.version


@pytest.fixture
def world() -> World:
    return World()


@pytest.mark.parametrize("capability", ["training", "operations"])
def test_people_ask_for_their_own_prompt_approval_pending_and_under_the_prompt_policy(
    world: World, capability: str
) -> None:
    registry, approvals = world.person(capability, ANA)
    number = world.prompt_candidate(registry)

    doc = approvals.request_prompt(PROMPT, number, requested_by=ANA, reason="ready")

    assert registry.get_version(PROMPT, number).status is VersionStatus.PENDING_APPROVAL
    stored = world.store.get_record(approval_key(doc.approval_id))
    assert stored is not None
    assert stored.doc["announced"] is True  # the announcement's own write went through
    assert stored.doc["requested_by"] == ANA
    assert [e.actor for e in world.audit.entries(PROMPT)] == [ANA, ANA]


def test_people_cannot_ask_for_a_model_versions_approval_by_writing_one(world: World) -> None:
    registry, approvals = world.person("operations", ANA)
    number = registry.register(version_draft("churn"), actor=ANA).version

    with pytest.raises(NotPermittedError, match="'churn' is not a prompt"):
        approvals.request_prompt("churn", number, requested_by=ANA)

    assert registry.get_version("churn", number).status is VersionStatus.CANDIDATE


def _doc(world: World, number: int, **overrides: Any) -> ApprovalDoc:
    version = world.store.get_version(PROMPT, number)
    values: dict[str, Any] = {
        "approval_id": "a1",
        "model": PROMPT,
        "version": number,
        "kind": "prompt",
        "artifact_sha256": version.artifact.sha256,
        "artifact_uri": version.artifact.uri,
        "execution_id": f"prompt-registration:{PROMPT}/{number}",
        "requested_by": ANA,
        "requested_at": NOW,
        "expires_at": NOW + timedelta(hours=72),
    }
    values.update(overrides)
    return ApprovalDoc(**values)


def _ask(world: World, number: int, doc: ApprovalDoc, **pointer: Any) -> dict[str, Any] | None:
    """The change ``request_prompt`` makes, with ``doc`` as the approval, sent as ANA."""
    change = RegistryChange(
        model=PROMPT,
        statuses=(
            StatusChange(
                version=number,
                expected=VersionStatus.CANDIDATE,
                target=VersionStatus.PENDING_APPROVAL,
            ),
        ),
        records=(
            write(approval_key(doc.approval_id), doc, None),
            write(
                approval_pointer_key(PROMPT, pointer.get("version", number)),
                ApprovalPointer(approval_id=doc.approval_id),
                None,
            ),
        ),
    )
    audit = AuditDraft(
        model=PROMPT, action=AuditAction.APPROVAL_REQUESTED, actor=ANA, version=number
    )
    answer = world.writer.handle(
        WriteRequest(op=WriteOp.APPLY, change=change, audit=audit, identity_proof=ANA),
        Capability.TRAINING,
    )
    return answer.error


@pytest.mark.parametrize(
    "overrides",
    [
        {"requested_by": BO},  # asked in someone else's name, to approve it oneself
        {"require_distinct_approver": False},  # four eyes switched off
        {"distinct_sessions": True},  # two sessions of one role counted as two people
        {"approvers": (ANA,)},  # picks its own approver
        {"task_token": "token"},  # pretends a workflow waits
        {"status": ApprovalStatus.APPROVED, "decided_by": BO, "decided_at": NOW},  # decided
        {"kind": "model"},  # publishes VersionApproved once approved
        {"artifact_sha256": "0" * 64},  # bound to other bytes
        {"expires_at": NOW + timedelta(days=400)},  # never expires
        {"announced": True, "event_published": True},  # side effects claimed done
    ],
)
def test_an_approval_written_otherwise_is_refused_and_nothing_changes(
    world: World, overrides: dict[str, Any]
) -> None:
    registry, _ = world.person("training", ANA)
    number = world.prompt_candidate(registry)

    error = _ask(world, number, _doc(world, number, **overrides))

    assert error is not None
    assert error["code"] == "not_permitted"
    assert world.store.get_record(approval_key("a1")) is None
    assert world.store.get_version(PROMPT, number).status is VersionStatus.CANDIDATE


def test_the_approval_pointer_names_the_version_asked_for(world: World) -> None:
    registry, _ = world.person("training", ANA)
    number = world.prompt_candidate(registry)

    assert _ask(world, number, _doc(world, number), version=number + 1) is not None
    assert _ask(world, number, _doc(world, number)) is None


def test_people_may_only_mark_a_prompt_approval_announced(world: World) -> None:
    registry, _ = world.person("training", ANA)
    number = world.prompt_candidate(registry)
    doc = _doc(world, number)
    assert _ask(world, number, doc) is None

    def put(changed: ApprovalDoc) -> dict[str, Any] | None:
        record = write(approval_key("a1"), changed, 1)
        answer = world.writer.handle(
            WriteRequest(op=WriteOp.PUT_RECORD, record=record), Capability.TRAINING
        )
        return answer.error

    assert put(doc.model_copy(update={"requested_by": BO})) is not None
    assert put(doc.model_copy(update={"announced": True, "approvers": (BO,)})) is not None
    assert put(doc.model_copy(update={"announced": True})) is None
    stored = world.store.get_record(approval_key("a1"))
    assert stored is not None
    assert (stored.doc["requested_by"], stored.doc["announced"]) == (ANA, True)


# -- the registration route's capability (``prompts``) ------------------------------------------
def route(world: World) -> tuple[RegistryService, ApprovalService]:
    """What the registration route's function reaches: the ``prompts`` alias, the actor
    asserted by the function (the route's authenticated caller), no proof."""
    transport = LambdaRecordsWriter("fw-records-writer", "prompts", client=FakeLambda(world.writer))
    records = WriterRegistry(world.store, transport)  # type: ignore[arg-type]
    registry = RegistryService(records, WriterAuditLog(world.audit, transport))  # type: ignore[arg-type]
    approvals = ApprovalService(
        registry=registry,
        records=records,
        tokens=InMemoryTaskTokens(),
        events=InMemoryEventPublisher(),
        clock=FixedClock(NOW),
        max_timeout_seconds=72 * 3600,
    )
    return registry, approvals


def _refused(world: World, request: WriteRequest) -> str | None:
    error = world.writer.handle(request, Capability.PROMPTS).error
    return None if error is None else str(error["code"])


def test_the_route_registers_a_prompt_version_and_asks_for_its_approval_as_its_caller(
    world: World,
) -> None:
    registry, approvals = route(world)
    number = world.prompt_candidate(registry)

    doc = approvals.request_prompt(PROMPT, number, requested_by=ANA, reason="ready")

    assert registry.get_version(PROMPT, number).status is VersionStatus.PENDING_APPROVAL
    stored = world.store.get_record(approval_key(doc.approval_id))
    assert stored is not None
    assert (stored.doc["requested_by"], stored.doc["announced"]) == (ANA, True)
    assert [(str(e.action), e.actor) for e in world.audit.entries(PROMPT)] == [
        ("version_registered", ANA),
        ("approval_requested", ANA),
    ]


def test_the_route_cannot_register_a_model_version_nor_ask_for_a_models_approval(
    world: World,
) -> None:
    registry, approvals = route(world)

    with pytest.raises(NotPermittedError, match="prompt versions only"):
        registry.register(version_draft("churn"), actor=ANA)
    assert world.store.list_models(limit=5).items == []

    # A model version someone else registered: the route cannot ask for its approval.
    people, _ = world.person("operations", ANA)
    number = people.register(version_draft("churn"), actor=ANA).version
    with pytest.raises(NotPermittedError, match="'churn' is not a prompt"):
        approvals.request_prompt("churn", number, requested_by=ANA)
    assert world.store.get_version("churn", number).status is VersionStatus.CANDIDATE


@pytest.mark.parametrize(
    "action",
    [
        AuditAction.APPROVED,
        AuditAction.REJECTED,
        AuditAction.PROMOTED,
        AuditAction.ROLLED_BACK,
        AuditAction.ARCHIVED,
        AuditAction.CANARY_STARTED,
        AuditAction.MODEL_CONFIGURED,
        AuditAction.EXPERIMENT_STARTED,
    ],
)
def test_the_route_records_no_other_action(world: World, action: AuditAction) -> None:
    registry, _ = route(world)
    number = world.prompt_candidate(registry)
    status = VersionStatus.APPROVED if action is AuditAction.APPROVED else VersionStatus.REJECTED
    change = RegistryChange(
        model=PROMPT,
        statuses=(StatusChange(version=number, expected=VersionStatus.CANDIDATE, target=status),),
    )
    audit = AuditDraft(model=PROMPT, action=action, actor=ANA, version=number)

    for op in (WriteOp.APPLY, WriteOp.APPEND):
        request = WriteRequest(op=op, change=change, audit=audit, actor=ANA)
        assert _refused(world, request) == "not_permitted", op

    assert world.store.get_version(PROMPT, number).status is VersionStatus.CANDIDATE
    assert [str(e.action) for e in world.audit.entries(PROMPT)] == ["version_registered"]


def test_the_route_writes_no_other_record_and_no_bare_audit_entry(world: World) -> None:
    registry, _ = route(world)
    number = world.prompt_candidate(registry)
    others = [
        RecordWrite(key=RecordKey(partition=f"MODEL#{PROMPT}", sort=sort), doc={"x": 1})
        for sort in ("CONFIG", "SERVING", "CANARY", "EXPERIMENT", "RUN#r1", "RUNLOCK")
    ]
    for record in others:
        request = WriteRequest(op=WriteOp.PUT_RECORD, record=record)
        assert _refused(world, request) == "not_permitted", record.key
        assert world.store.get_record(record.key) is None

    # The approval request's transition alone, with no approval to decide: refused.
    bare = RegistryChange(
        model=PROMPT,
        statuses=(
            StatusChange(
                version=number,
                expected=VersionStatus.CANDIDATE,
                target=VersionStatus.PENDING_APPROVAL,
            ),
        ),
    )
    asked = AuditDraft(
        model=PROMPT, action=AuditAction.APPROVAL_REQUESTED, actor=ANA, version=number
    )
    assert _refused(world, WriteRequest(op=WriteOp.APPLY, change=bare, audit=asked)) == (
        "not_permitted"
    )
    # Nor an entry in the trail that no change goes with.
    assert _refused(world, WriteRequest(op=WriteOp.APPEND, audit=asked)) == "not_permitted"
    assert world.store.get_version(PROMPT, number).status is VersionStatus.CANDIDATE
    assert [str(e.action) for e in world.audit.entries(PROMPT)] == ["version_registered"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"requested_by": BO},  # in someone else's name
        {"require_distinct_approver": False},
        {"approvers": (ANA,)},
        {"task_token": "token"},
        {"kind": "model"},
        {"artifact_sha256": "0" * 64},
    ],
)
def test_the_route_writes_an_approval_only_as_its_caller_asks_for_one(
    world: World, overrides: dict[str, Any]
) -> None:
    registry, _ = route(world)
    number = world.prompt_candidate(registry)
    doc = _doc(world, number, **overrides)
    change = RegistryChange(
        model=PROMPT,
        statuses=(
            StatusChange(
                version=number,
                expected=VersionStatus.CANDIDATE,
                target=VersionStatus.PENDING_APPROVAL,
            ),
        ),
        records=(
            write(approval_key(doc.approval_id), doc, None),
            write(
                approval_pointer_key(PROMPT, number),
                ApprovalPointer(approval_id=doc.approval_id),
                None,
            ),
        ),
    )
    audit = AuditDraft(
        model=PROMPT, action=AuditAction.APPROVAL_REQUESTED, actor=ANA, version=number
    )

    error = _refused(world, WriteRequest(op=WriteOp.APPLY, change=change, audit=audit, actor=ANA))

    assert error == "not_permitted"
    assert world.store.get_record(approval_key("a1")) is None
    assert world.store.get_version(PROMPT, number).status is VersionStatus.CANDIDATE
