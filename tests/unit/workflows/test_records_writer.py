"""The records writer: each capability records only its own actions and records, people are
who their proof says, and callers see the writer's refusals as the same domain errors."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from flywheel.adapters.lambda_records import LambdaRecordsWriter, WriterAuditLog, WriterRegistry
from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.errors import (
    ApproverNotAllowedError,
    IllegalTransitionError,
    NotPermittedError,
    UnauthenticatedError,
)
from flywheel.registry.models import RecordKey, RecordWrite
from flywheel.registry.service import RegistryService
from flywheel.workflows.config import ModelConfigStore, parse_model_config
from flywheel.workflows.writer import (
    Capability,
    RecordsWriter,
    WriteOp,
    WriteRequest,
    capability_of,
)
from tests.factories import version_draft

MODEL = "churn"
ANA = "arn:aws:sts::123456789012:assumed-role/ml-engineer/ana"


class FakeIdentity:
    """Stands in for STS: a proof names whoever it says, unless it is "forged"."""

    def principal(self, proof: str) -> str:
        if proof == "forged":
            raise UnauthenticatedError("STS did not accept the identity proof", field="identity")
        return proof


class FakeLambda:
    """Invokes the writer in process, as Lambda does through an alias."""

    def __init__(self, writer: RecordsWriter) -> None:
        self.writer = writer
        self.invoked: list[str] = []

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        self.invoked.append(FunctionName)
        arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{FunctionName}"
        request = WriteRequest.model_validate_json(Payload)
        answer = self.writer.handle(request, capability_of(arn))
        return {"Payload": io.BytesIO(answer.model_dump_json().encode()), "StatusCode": 200}


@pytest.fixture
def tables() -> tuple[InMemoryModelRegistry, InMemoryAuditLog]:
    audit = InMemoryAuditLog()
    return InMemoryModelRegistry(audit), audit


def _writer(tables: tuple[InMemoryModelRegistry, InMemoryAuditLog], **kwargs: Any) -> RecordsWriter:
    store, audit = tables
    configs = ModelConfigStore(RegistryService(store, audit), store)
    kwargs.setdefault("identity", FakeIdentity())
    return RecordsWriter(store=store, audit=audit, configs=configs, **kwargs)


def _service(
    tables: tuple[InMemoryModelRegistry, InMemoryAuditLog],
    capability: str,
    *,
    proof: str | None = None,
    **kwargs: Any,
) -> RegistryService:
    """A RegistryService whose writes go through the writer's ``capability`` alias."""
    store, audit = tables
    client = FakeLambda(_writer(tables, **kwargs))
    transport = LambdaRecordsWriter(
        "fw-records-writer", capability, client=client, proof=(lambda: proof) if proof else None
    )
    return RegistryService(
        WriterRegistry(store, transport),  # type: ignore[arg-type]
        WriterAuditLog(audit, transport),  # type: ignore[arg-type]
    )


def _candidate(service: RegistryService) -> int:
    number = service.register(version_draft(name=MODEL), actor="workflow:run-1").version
    service.request_approval(MODEL, number, actor="workflow:run-1")
    return number


def test_training_runs_register_and_ask_but_cannot_approve_or_promote(tables: Any) -> None:
    workflows = _service(tables, "training-runs")
    number = _candidate(workflows)

    with pytest.raises(NotPermittedError, match="training-runs capability cannot record approved"):
        workflows.approve(MODEL, number, actor="workflow:run-1", reason="self-approved")

    approvals = _service(tables, "approvals")
    approved = approvals.approve(MODEL, number, actor="arn:aws:iam::1:user/bo", reason="ok")
    assert str(approved.status) == "approved"
    assert list(tables[1].entries(MODEL))[-1].actor == "arn:aws:iam::1:user/bo"
    # the training image's capability cannot put an approved version into production
    with pytest.raises(NotPermittedError, match="cannot record promoted"):
        workflows.promote(MODEL, number, actor="workflow:run-1", reason="skip the canary")
    promotion = _service(tables, "promotion-runs")
    promoted = promotion.promote(MODEL, number, actor="workflow:promo-1", reason="healthy")
    assert str(promoted.status) == "production"


@pytest.mark.parametrize(
    ("statuses", "aliases", "refused"),
    [
        # approval_requested carrying the approval itself
        ([("pending_approval", "approved")], [], "cannot move a version to approved"),
        # ... or pointing the champion at the candidate
        ([("candidate", "pending_approval")], [("champion", None)], "cannot change the champion"),
        # ... or asking for another version than the one it audits
        ([("candidate", "pending_approval")], [], "cannot move version 1"),
        # ... or a move the lifecycle has no arrow for
        ([("rejected", "pending_approval")], [], "does not lead from rejected"),
    ],
)
def test_a_change_does_no_more_than_its_audit_action_says(
    tables: Any, statuses: list[tuple[str, str]], aliases: list[tuple[str, Any]], refused: str
) -> None:
    """The training image records ``approval_requested``; it cannot smuggle an approval
    or a new champion into the same change (the writer checks the effects, not only the
    action)."""
    from flywheel.registry.models import AliasChange, RegistryChange, StatusChange

    workflows = _service(tables, "training-runs")
    first = workflows.register(version_draft(name=MODEL), actor="workflow:run-1").version
    second = workflows.register(version_draft(name=MODEL), actor="workflow:run-1").version
    store, audit = tables
    target = first if "version 1" in refused else second
    change = RegistryChange(
        model=MODEL,
        statuses=tuple(StatusChange(version=target, expected=e, target=t) for e, t in statuses),
        aliases=tuple(AliasChange(alias=a, expected=x, target=second) for a, x in aliases),
    )
    request = WriteRequest(
        op=WriteOp.APPLY,
        actor="workflow:run-1",
        change=change,
        audit=AuditDraft(
            model=MODEL, action=AuditAction.APPROVAL_REQUESTED, actor="x", version=second
        ),
    )
    before = list(audit.entries(MODEL))

    answer = _writer(tables).handle(request, Capability.TRAINING_RUNS)

    assert answer.error is not None
    assert answer.error["code"] == "not_permitted"
    assert refused in answer.error["message"]
    assert list(audit.entries(MODEL)) == before
    assert str(store.get_version(MODEL, second).status) == "candidate"
    assert store.get_model(MODEL).champion is None


def test_the_writers_refusal_reaches_the_caller_as_the_same_error(tables: Any) -> None:
    workflows = _service(tables, "workflows")
    number = _candidate(workflows)

    with pytest.raises(IllegalTransitionError) as refused:
        workflows.promote(MODEL, number, actor="workflow:run-1", reason="skip approval")
    assert refused.value.current == "pending_approval"


def test_people_act_as_their_proven_identity_whatever_they_claim(tables: Any) -> None:
    operations = _service(tables, "operations", proof=ANA)

    operations.register(version_draft(name=MODEL), actor="someone-else@example.com")

    assert list(tables[1].entries(MODEL))[-1].actor == ANA


def test_people_without_a_valid_proof_change_nothing(tables: Any) -> None:
    with pytest.raises(NotPermittedError, match="proof of their AWS identity"):
        _service(tables, "operations").register(version_draft(name=MODEL), actor="ana")
    with pytest.raises(UnauthenticatedError):
        _service(tables, "operations", proof="forged").register(
            version_draft(name=MODEL), actor="ana"
        )
    assert list(tables[1].entries(MODEL)) == []


def test_people_approve_directly_only_where_the_policy_allows_it(tables: Any) -> None:
    number = _candidate(_service(tables, "workflows"))
    operations = _service(tables, "operations", proof=ANA)

    with pytest.raises(NotPermittedError, match="does not allow direct approval"):
        operations.approve(MODEL, number, actor=ANA, reason="looks fine")

    config = {
        "name": MODEL,
        "training": {
            "task": "classification",
            "dataset": {"source": "sklearn:breast_cancer"},
            "estimator": "logistic_regression",
        },
        "gate": {"metric": "accuracy"},
        "approval": {"allow_direct_approval": True},
    }
    ModelConfigStore(operations, operations.registry).put(  # type: ignore[arg-type]
        parse_model_config(config), actor=ANA
    )
    assert str(operations.approve(MODEL, number, actor=ANA, reason="ok").status) == "approved"


def test_the_local_runtime_approves_a_model_trained_by_hand_with_four_eyes(tables: Any) -> None:
    """No workflow config (``flywheel train`` on the local runtime): people decide directly,
    but never the one who registered it; in AWS that stays refused (test above)."""
    operations = _service(tables, "operations", trust_asserted=True)
    number = operations.register(version_draft(name=MODEL), actor="dee@example.com").version
    operations.request_approval(MODEL, number, actor="dee@example.com")

    with pytest.raises(ApproverNotAllowedError):
        operations.approve(MODEL, number, actor="dee@example.com", reason="mine")
    approved = operations.approve(MODEL, number, actor="ana@example.com", reason="reviewed")

    assert str(approved.status) == "approved"


def test_each_capability_writes_only_its_own_records(tables: Any) -> None:
    writer = _writer(tables)
    watermark = RecordWrite(
        key=RecordKey(partition="FEATURE_VIEW#spend", sort="WATERMARK#0000000001"), doc={"t": 1}
    )
    config = RecordWrite(key=RecordKey(partition=f"MODEL#{MODEL}", sort="CONFIG"), doc={})

    stored = writer.handle(
        WriteRequest(op=WriteOp.PUT_RECORD, record=watermark), Capability.FEATURES
    )
    refused = writer.handle(WriteRequest(op=WriteOp.PUT_RECORD, record=config), Capability.FEATURES)

    assert stored.record is not None
    assert stored.record.revision == 1
    assert refused.error is not None
    assert refused.error["code"] == "not_permitted"
    assert tables[0].get_record(config.key) is None


def test_an_unqualified_invocation_has_no_capability() -> None:
    with pytest.raises(NotPermittedError, match="capability alias"):
        capability_of("arn:aws:lambda:eu-west-1:123456789012:function:fw-records-writer")


def test_the_local_runtime_trusts_the_named_actor(tables: Any) -> None:
    writer = _writer(tables, identity=None, trust_asserted=True)
    draft = AuditDraft(model=MODEL, action=AuditAction.MODEL_CONFIGURED, actor="ana@local")

    answer = writer.handle(WriteRequest(op=WriteOp.APPEND, audit=draft), Capability.OPERATIONS)

    assert answer.entry is not None
    assert answer.entry.actor == "ana@local"
    assert json.loads(answer.model_dump_json())["error"] is None


def _run_record(sort: str = "RUN#churn-20260101T120000-0a1b2c3d") -> RecordWrite:
    return RecordWrite(key=RecordKey(partition=f"MODEL#{MODEL}", sort=sort), doc={"run": 1})


@pytest.mark.parametrize("capability", ["training-runs", "training", "operations"])
def test_whoever_trains_records_runs(tables: Any, capability: str) -> None:
    writer = _writer(tables, identity=None, trust_asserted=True)

    stored = writer.handle(
        WriteRequest(op=WriteOp.PUT_RECORD, record=_run_record()), Capability(capability)
    )

    assert stored.error is None
    assert tables[0].get_record(_run_record().key) is not None


@pytest.mark.parametrize("capability", ["promotion-runs", "approvals", "features", "workflows"])
def test_other_capabilities_cannot_record_runs(tables: Any, capability: str) -> None:
    writer = _writer(tables)

    refused = writer.handle(
        WriteRequest(op=WriteOp.PUT_RECORD, record=_run_record()), Capability(capability)
    )

    assert refused.error is not None
    assert refused.error["code"] == "not_permitted"
    assert tables[0].get_record(_run_record().key) is None


@pytest.mark.parametrize(
    ("partition", "sort"),
    [
        (f"MODEL#{MODEL}", "CONFIG"),  # the model's workflow config
        (f"MODEL#{MODEL}", "SERVING"),  # what serves
        (f"MODEL#{MODEL}", "RUNX#1"),  # not a run, whatever it starts with
        ("FEATURE_VIEW#spend", "RUN#1"),  # a run key outside a model
    ],
)
def test_run_recorders_write_runs_and_nothing_else(tables: Any, partition: str, sort: str) -> None:
    writer = _writer(tables, identity=None, trust_asserted=True)
    record = RecordWrite(key=RecordKey(partition=partition, sort=sort), doc={})

    for capability in (Capability.TRAINING_RUNS, Capability.TRAINING):
        refused = writer.handle(WriteRequest(op=WriteOp.PUT_RECORD, record=record), capability)
        assert refused.error is not None, capability
        assert refused.error["code"] == "not_permitted"
    assert tables[0].get_record(record.key) is None


def test_people_who_train_register_and_ask_for_approval_but_decide_nothing(tables: Any) -> None:
    data_scientist = _service(tables, "training", proof=ANA)

    number = _candidate(data_scientist)

    assert str(data_scientist.get_version(MODEL, number).status) == "pending_approval"
    assert [e.actor for e in tables[1].entries(MODEL)] == [ANA, ANA]
    with pytest.raises(NotPermittedError, match="training capability cannot record approved"):
        data_scientist.approve(MODEL, number, actor=ANA, reason="mine")


def test_the_quality_monitor_records_verdicts_and_nothing_else(tables: Any) -> None:
    from datetime import UTC, datetime

    from flywheel.llm.quality import QualityBudgetDoc, QualityVerdictDoc
    from flywheel.workflows.records import QUALITY, model_key, quality_key, write

    monitor = _service(tables, "monitors")
    number = _candidate(_service(tables, "training-runs"))
    moment = datetime(2026, 12, 7, 18, tzinfo=UTC)
    verdict = QualityVerdictDoc(
        version=number, outcome="degraded", reason="toxicity_rate 0.2 > 0.05",
        window_start=moment, window_end=moment, checked_at=moment,
    )  # fmt: skip
    draft = AuditDraft(
        model=MODEL, action=AuditAction.LLM_QUALITY_DEGRADED, actor="llm-quality-monitor",
        version=number, reason=verdict.reason,
    )  # fmt: skip
    records = (
        write(quality_key(MODEL, number), verdict, None),
        write(model_key(MODEL, QUALITY), QualityBudgetDoc(day="2026-12-07", scored=20), None),
    )

    entry = monitor.record(draft, records=records)

    assert str(entry.action) == "llm_quality_degraded"
    assert tables[0].get_record(quality_key(MODEL, number)) is not None
    # ... but no other record, and no other action
    config = RecordWrite(key=model_key(MODEL, "CONFIG"), doc={})
    with pytest.raises(NotPermittedError):
        monitor.record(draft, records=(config,))
    with pytest.raises(NotPermittedError):
        monitor.approve(MODEL, number, actor="llm-quality-monitor", reason="looks fine")
