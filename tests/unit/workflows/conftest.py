"""The workflow services wired to in-memory adapters, plus helpers to drive them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
from flywheel.adapters.memory_workflows import (
    InMemoryCanaryHealth,
    InMemoryEventPublisher,
    InMemoryServingControl,
    InMemoryTaskTokens,
)
from flywheel.clock import FixedClock
from flywheel.errors import DatasetError
from flywheel.llm.catalog import PromptCatalog
from flywheel.registry.service import RegistryService
from flywheel.workflows.approvals import ApprovalService
from flywheel.workflows.config import ModelConfigStore, parse_model_config
from flywheel.workflows.failures import WorkflowFailures
from flywheel.workflows.promotion import PromotionSteps
from flywheel.workflows.prompt_gate import EvaluationGate
from flywheel.workflows.state import (
    ApprovalRequest,
    PromotionState,
    TrainingState,
)
from flywheel.workflows.training import TrainingSteps
from tests import asl_walker
from tests.factories import version_draft
from tests.workflow_support import (
    MODEL,
    PROMOTION_MACHINE,
    TRAINING_MACHINE,
    approval_request_for,
    as_handlers,
    model_config,
    promotion_input,
    promotion_machine,
    training_input,
    training_machine,
)

START = datetime(2026, 1, 1, 12, tzinfo=UTC)
REQUESTER = "arn:aws:iam::123456789012:user/requester"
REVIEWER = "arn:aws:iam::123456789012:user/reviewer"


@dataclass
class World:
    clock: FixedClock
    audit: InMemoryAuditLog
    store: InMemoryModelRegistry
    registry: RegistryService
    artifacts: InMemoryArtifactStore
    tokens: InMemoryTaskTokens
    events: InMemoryEventPublisher
    serving: InMemoryServingControl
    health: InMemoryCanaryHealth
    approvals: ApprovalService
    training: TrainingSteps
    promotion: PromotionSteps
    failures: WorkflowFailures
    configs: ModelConfigStore
    gate: EvaluationGate

    def actions(self, model: str = MODEL) -> list[str]:
        return [str(e.action) for e in self.audit.entries(model)]

    def configure(self, **overrides: Any) -> None:
        self.configs.put(parse_model_config(model_config(**overrides)), actor="ops")

    # -- running the real definitions against the in-memory services -------------------------
    def training_handlers(self) -> dict[str, Any]:
        t = self.training

        def state(method: Any) -> Any:
            return lambda event: method(TrainingState.model_validate(event))

        return as_handlers(
            {
                "acquire_run_lock": state(t.acquire_run_lock),
                "validate_data": state(t.validate_data),
                "build_training_set": state(t.build_training_set),
                "train": state(t.train),
                "evaluate": state(t.evaluate),
                "gate": state(t.gate),
                "register": state(t.register),
                "request_approval": lambda e: t.request_approval(ApprovalRequest.model_validate(e)),
                "release_run_lock": state(t.release_run_lock),
                "record_failure": self.failures.record,
            }
        )

    def promotion_handlers(self) -> dict[str, Any]:
        p = self.promotion

        def state(method: Any) -> Any:
            return lambda event: method(PromotionState.model_validate(event))

        return as_handlers(
            {
                "evaluate_candidate": state(self.gate.evaluate_candidate),
                "publish_version": state(p.publish_version),
                "shift_alias": state(p.shift_alias),
                "check_canary": state(p.check_canary),
                "promote_all": state(p.promote_all),
                "rollback": state(p.rollback),
                "record_failure": self.failures.record,
            }
        )

    def start_training(self, reason: str = "schedule", **kwargs: Any) -> asl_walker.Execution:
        return asl_walker.start(
            training_machine(),
            self.training_handlers(),
            training_input(reason, **kwargs),
            state_machine=TRAINING_MACHINE,
        )

    def approve(self, execution: asl_walker.Execution, approver: str = REVIEWER) -> Any:
        """Approve the pending approval and deliver the task token back to the execution."""
        from flywheel.workflows.approvals import Decision

        approval_id = self.pending_approval_id()
        doc = self.approvals.decide(
            approval_id, decision=Decision.APPROVE, approver=approver, reason="looks good"
        )
        kind, token, output = self.tokens.sent[-1]
        assert kind == "success"
        execution.send_task_success(token, output)
        return doc

    def pending_approval_id(self, version: int | None = None) -> str:
        number = version or self.registry.get_model(MODEL).latest_version
        found = self.approvals.find_for_version(MODEL, number)
        assert found is not None
        return found[0].approval_id

    def promote(self, detail: dict[str, Any] | None = None) -> asl_walker.Execution:
        """Run the promotion workflow for the last VersionApproved event."""
        if detail is None:
            detail_type, detail = self.events.events[-1]
            assert detail_type == "VersionApproved"
        return asl_walker.start(
            promotion_machine(),
            self.promotion_handlers(),
            promotion_input(detail),
            state_machine=PROMOTION_MACHINE,
        )


def approval_request(world: World, **kwargs: Any) -> ApprovalRequest:
    """A candidate registered (factory draft) and the RequestApproval payload for it."""
    kwargs.setdefault("requested_by", REQUESTER)
    version = world.registry.register(version_draft(name=MODEL), actor="workflow")
    return approval_request_for(version, **kwargs)


@pytest.fixture
def world() -> World:
    clock = FixedClock(START)
    audit = InMemoryAuditLog(clock=clock)
    store = InMemoryModelRegistry(audit, clock=clock)
    registry = RegistryService(store, audit)
    artifacts = InMemoryArtifactStore()
    tokens = InMemoryTaskTokens()
    events = InMemoryEventPublisher()
    serving = InMemoryServingControl({MODEL: f"{MODEL}-inference"})
    health = InMemoryCanaryHealth({MODEL: ["errors", "latency", "drift"]})
    approvals = ApprovalService(
        registry=registry,
        records=store,
        tokens=tokens,
        events=events,
        clock=clock,
        max_timeout_seconds=48 * 3600,
    )

    def fetch(uri: str) -> bytes:
        raise DatasetError(f"no object store for {uri}", field="dataset.source")

    training = TrainingSteps(
        registry=registry,
        records=store,
        artifacts=artifacts,
        approvals=approvals,
        fetch=fetch,
        clock=clock,
        lock_ttl_seconds=6 * 3600,
        max_approval_timeout_seconds=48 * 3600,
    )
    promotion = PromotionSteps(
        registry=registry,
        records=store,
        serving=serving,
        health=health,
        default_canary_weight=0.1,
    )
    failures = WorkflowFailures(registry=registry, approvals=approvals, promotion=promotion)

    def no_runner(_policy: Any) -> Any:
        raise AssertionError("a model's promotion answers no evaluation set")

    gate = EvaluationGate(
        registry=registry,
        records=store,
        catalog=PromptCatalog(registry, artifacts),
        runner=no_runner,
        clock=clock,
    )
    world = World(
        clock=clock,
        audit=audit,
        store=store,
        registry=registry,
        artifacts=artifacts,
        tokens=tokens,
        events=events,
        serving=serving,
        health=health,
        approvals=approvals,
        training=training,
        promotion=promotion,
        failures=failures,
        configs=ModelConfigStore(registry, store),
        gate=gate,
    )
    world.configure()
    return world
