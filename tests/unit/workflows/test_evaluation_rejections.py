"""Only a prompt version's evaluation gate takes it from approved to rejected: the registry
and the records writer allow that transition for prompts, under ``evaluation_rejected``,
through the promotion steps' capability, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.errors import IllegalTransitionError
from flywheel.llm.catalog import PromptCatalog
from flywheel.registry.models import RegistryChange, StatusChange, VersionStatus
from flywheel.registry.service import RegistryService
from flywheel.workflows.records import evaluation_key
from flywheel.workflows.writer import Capability, WriteOp, WriteRequest
from tests.factories import prompt_spec, version_draft
from tests.unit.workflows.test_records_writer import _service, _writer

PROMPT = "faq"
MODEL = "churn"


@pytest.fixture
def tables() -> tuple[InMemoryModelRegistry, InMemoryAuditLog]:
    audit = InMemoryAuditLog()
    return InMemoryModelRegistry(audit), audit


def approved_prompt(tables: Any) -> RegistryService:
    store, audit = tables
    registry = RegistryService(store, audit)
    PromptCatalog(registry, InMemoryArtifactStore()).register(
        prompt_spec(PROMPT), actor="ana", environment="0" * 64
    )
    registry.request_approval(PROMPT, 1, actor="ana")
    registry.approve(PROMPT, 1, actor="bo", reason="reviewed")
    return registry


def approved_model(tables: Any) -> None:
    store, audit = tables
    registry = RegistryService(store, audit)
    registry.register(version_draft(name=MODEL), actor="wf")
    registry.request_approval(MODEL, 1, actor="wf")
    registry.approve(MODEL, 1, actor="bo", reason="reviewed")


def rejection(model: str, action: AuditAction) -> WriteRequest:
    return WriteRequest(
        op=WriteOp.APPLY,
        actor="workflow:promotion/p-1",
        change=RegistryChange(
            model=model,
            statuses=(
                StatusChange(
                    version=1, expected=VersionStatus.APPROVED, target=VersionStatus.REJECTED
                ),
            ),
        ),
        audit=AuditDraft(model=model, action=action, actor="x", version=1, reason="worse"),
    )


def test_the_promotion_steps_reject_an_approved_prompt_version_through_the_writer(
    tables: Any,
) -> None:
    approved_prompt(tables)
    steps = _service(tables, "promotion-runs")

    rejected = steps.reject_evaluated(
        PROMPT, 1, actor="workflow:promotion/p-1", reason="groundedness: worse than v0"
    )

    assert rejected.status is VersionStatus.REJECTED
    entry = list(tables[1].entries(PROMPT))[-1]
    assert (str(entry.action), entry.actor) == ("evaluation_rejected", "workflow:promotion/p-1")
    assert steps.verify(PROMPT).ok


@pytest.mark.parametrize(
    ("action", "capability", "refused"),
    [
        # Another action cannot take the prompts' own transition ...
        (AuditAction.REJECTED, Capability.OPERATIONS, "does not lead from approved to rejected"),
        (AuditAction.PROMOTION_FAILED, Capability.PROMOTION_RUNS, "cannot move a version to"),
        # ... nor another capability record the gate's decision
        (AuditAction.EVALUATION_REJECTED, Capability.TRAINING_RUNS, "cannot record evaluation"),
        (AuditAction.EVALUATION_REJECTED, Capability.OPERATIONS, "cannot record evaluation"),
    ],
)
def test_nothing_else_takes_an_approved_prompt_version_to_rejected(
    tables: Any, action: AuditAction, capability: Capability, refused: str
) -> None:
    approved_prompt(tables)

    answer = _writer(tables, trust_asserted=True).handle(rejection(PROMPT, action), capability)

    assert answer.error is not None, answer
    assert answer.error["code"] == "not_permitted"
    assert refused in answer.error["message"]
    assert tables[0].get_version(PROMPT, 1).status is VersionStatus.APPROVED


def test_an_approved_model_version_is_never_rejected_by_the_gate(tables: Any) -> None:
    approved_model(tables)

    answer = _writer(tables).handle(
        rejection(MODEL, AuditAction.EVALUATION_REJECTED), Capability.PROMOTION_RUNS
    )

    assert answer.error is not None
    assert "does not lead from approved to rejected" in answer.error["message"]
    with pytest.raises(IllegalTransitionError, match="only an approved prompt version"):
        RegistryService(*tables).reject_evaluated(MODEL, 1, actor="wf", reason="worse")
    assert tables[0].get_version(MODEL, 1).status is VersionStatus.APPROVED


def test_only_the_promotion_steps_write_a_versions_evaluation_record(tables: Any) -> None:
    from flywheel.registry.models import RecordWrite

    approved_prompt(tables)
    record = RecordWrite(key=evaluation_key(PROMPT, 1), doc={"outcome": "skipped"})
    writer = _writer(tables)

    stored = writer.handle(WriteRequest(op=WriteOp.PUT_RECORD, record=record),
                           Capability.PROMOTION_RUNS)  # fmt: skip
    refused = writer.handle(WriteRequest(op=WriteOp.PUT_RECORD, record=record),
                            Capability.WORKFLOWS)  # fmt: skip

    assert stored.error is None
    assert refused.error is not None
    assert "workflows capability cannot write MODEL#faq/EVALUATION#V" in refused.error["message"]


def test_a_version_that_is_not_approved_is_not_rejected_by_the_gate(tables: Any) -> None:
    registry = approved_prompt(tables)
    registry.start_canary(PROMPT, 1, actor="wf")

    with pytest.raises(IllegalTransitionError, match="is canary; only an approved prompt"):
        registry.reject_evaluated(PROMPT, 1, actor="wf", reason="late")
    request = rejection(PROMPT, AuditAction.EVALUATION_REJECTED)
    assert request.change is not None
    late = request.model_copy(
        update={
            "change": request.change.model_copy(
                update={"statuses": (StatusChange(version=1, expected=VersionStatus.CANARY,
                                                  target=VersionStatus.REJECTED),)}
            )
        }
    )  # fmt: skip
    answer = _writer(tables).handle(late, Capability.PROMOTION_RUNS)
    assert answer.error is not None
    assert "does not lead from canary to rejected" in answer.error["message"]
