"""Experiments as registry state: start, stop, refusals, the winner, and what they block."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.errors import (
    ExperimentInProgressError,
    ExperimentNotFoundError,
    ExperimentRefusedError,
    IllegalTransitionError,
    InvalidInputError,
    PromotionInProgressError,
    ReasonRequiredError,
    VersionNotFoundError,
)
from flywheel.registry.models import RegistryChange, VersionStatus
from flywheel.serving.capture import capture_key, encode_rows
from flywheel.serving.experiments import (
    ExperimentKind,
    ExperimentStatus,
    experiment_key,
    read_experiment,
)
from flywheel.workflows.experiments import ExperimentService
from flywheel.workflows.promotion_requests import PROMOTION_REQUESTED, PromotionRequests
from flywheel.workflows.records import write
from flywheel.workflows.writer import Capability, RecordsWriter, WriteOp, WriteRequest
from tests.factories import version_draft
from tests.unit.workflows.conftest import World
from tests.workflow_support import MODEL

OPERATOR = "arn:aws:iam::123456789012:user/sam.operator"
SHADOW, AB = ExperimentKind.SHADOW, ExperimentKind.AB


def _version(world: World, status: VersionStatus, seed: int) -> int:
    registry = world.registry
    number = registry.register(version_draft(name=MODEL, seed=seed), actor="ci").version
    if status is VersionStatus.CANDIDATE:
        return number
    registry.request_approval(MODEL, number, actor="ci")
    if status is VersionStatus.PENDING_APPROVAL:
        return number
    if status is VersionStatus.REJECTED:
        registry.reject(MODEL, number, actor="ana", reason="no")
        return number
    registry.approve(MODEL, number, actor="ana", reason="ok")
    return number


@pytest.fixture
def lab(world: World) -> tuple[World, ExperimentService, InMemoryCaptureSink]:
    """Version 1 champion; 2 approved, 3 pending approval, 4 rejected."""
    _version(world, VersionStatus.APPROVED, 1)
    world.registry.promote(MODEL, 1, actor="ops", reason="launch")
    _version(world, VersionStatus.APPROVED, 2)
    _version(world, VersionStatus.PENDING_APPROVAL, 3)
    _version(world, VersionStatus.REJECTED, 4)
    capture = InMemoryCaptureSink()
    service = ExperimentService(
        registry=world.registry, records=world.store, clock=world.clock, capture=capture
    )
    return world, service, capture


def test_start_and_stop_are_registry_records_with_their_audit_entries(lab: Any) -> None:
    world, service, _ = lab

    started = service.start(MODEL, kind=AB, version=2, weight=0.2, actor=OPERATOR, reason="try")

    assert (started.control, started.weight, started.salt) == (1, 0.2, started.id)
    stored, revision = read_experiment(world.store, MODEL)
    assert stored == started
    assert revision == 1
    entry = list(world.audit.entries(MODEL))[-1]
    assert (entry.action, entry.actor, entry.version) == (
        AuditAction.EXPERIMENT_STARTED,
        OPERATOR,
        2,
    )
    assert entry.details["kind"] == "ab"
    assert entry.details["weight"] == 0.2
    world.clock.advance(timedelta(hours=2))

    stopped = service.stop(MODEL, actor=OPERATOR, reason="enough data")

    assert not stopped.running
    assert stopped.stopped_at == world.clock.now()
    assert read_experiment(world.store, MODEL) == (stopped, 2)
    assert world.actions()[-1] == "experiment_stopped"
    # A stopped experiment makes room for the next one (the record keeps the latest).
    again = service.start(MODEL, kind=SHADOW, version=3, actor=OPERATOR)
    assert (again.kind, again.weight, again.salt) == (SHADOW, None, None)
    assert world.registry.verify(MODEL).ok


def _refusal(error: type[Exception], match: str, **start: Any) -> tuple[Any, str, dict[str, Any]]:
    return error, match, start


@pytest.mark.parametrize(
    ("error", "match", "start"),
    [
        _refusal(VersionNotFoundError, "version 9", kind=SHADOW, version=9),
        _refusal(ExperimentRefusedError, "is the champion", kind=SHADOW, version=1),
        _refusal(
            ExperimentRefusedError,
            "is pending_approval; an A/B experiment needs a version that is approved",
            kind=AB,
            version=3,
        ),
        _refusal(ExperimentRefusedError, "is rejected", kind=SHADOW, version=4),
    ],
    ids=["unknown version", "the champion", "A/B of an unapproved version", "rejected shadow"],
)
def test_versions_that_cannot_take_part_are_refused_and_nothing_is_written(
    lab: Any, error: type[Exception], match: str, start: dict[str, Any]
) -> None:
    world, service, _ = lab
    before = world.actions()

    with pytest.raises(error, match=match):
        service.start(MODEL, actor=OPERATOR, **start)

    assert world.actions() == before
    assert read_experiment(world.store, MODEL) is None


def test_a_pending_candidate_may_run_in_shadow(lab: Any) -> None:
    _, service, _ = lab
    assert service.start(MODEL, kind=SHADOW, version=3, actor=OPERATOR).version == 3


def test_one_experiment_at_a_time_and_none_during_a_canary(lab: Any) -> None:
    world, service, _ = lab
    service.start(MODEL, kind=SHADOW, version=2, actor=OPERATOR)

    with pytest.raises(ExperimentInProgressError, match="runs a shadow experiment of version 2"):
        service.start(MODEL, kind=SHADOW, version=3, actor=OPERATOR)

    service.stop(MODEL, actor=OPERATOR, reason="done")
    world.registry.start_canary(MODEL, 2, actor="workflow", reason="canary")
    with pytest.raises(PromotionInProgressError, match="version 2 of 'cancer' is on canary"):
        service.start(MODEL, kind=SHADOW, version=3, actor=OPERATOR)


def test_stop_needs_a_running_experiment_and_a_reason(lab: Any) -> None:
    world, service, _ = lab
    with pytest.raises(ExperimentNotFoundError, match="no experiment is running"):
        service.stop(MODEL, actor=OPERATOR, reason="nothing")
    service.start(MODEL, kind=SHADOW, version=2, actor=OPERATOR)
    with pytest.raises(ReasonRequiredError):
        service.stop(MODEL, actor=OPERATOR, reason=" ")
    assert read_experiment(world.store, MODEL)[0].running  # type: ignore[index]


def test_only_operations_may_start_or_stop_experiments(lab: Any) -> None:
    # Data scientists (alias training) and the workflows cannot; ML engineers can.
    world, service, _ = lab
    writer = RecordsWriter(
        store=world.store,
        audit=world.audit,
        configs=world.configs,
        identity=None,
        trust_asserted=True,
    )
    started = service.start(MODEL, kind=SHADOW, version=2, actor=OPERATOR)
    stopped = started.model_copy(update={"status": ExperimentStatus.STOPPED})
    request = WriteRequest(
        op=WriteOp.APPLY,
        change=RegistryChange(model=MODEL, records=(write(experiment_key(MODEL), stopped, 1),)),
        audit=AuditDraft(
            model=MODEL, action=AuditAction.EXPERIMENT_STOPPED, actor="dee", reason="mine"
        ),
    )
    for capability in (Capability.TRAINING, Capability.PROMOTION_RUNS, Capability.WORKFLOWS):
        refused = writer.handle(request, capability)
        assert refused.error is not None
        assert refused.error["code"] == "not_permitted", capability
    assert read_experiment(world.store, MODEL)[0].running  # type: ignore[index]
    assert writer.handle(request, Capability.OPERATIONS).error is None
    assert not read_experiment(world.store, MODEL)[0].running  # type: ignore[index]


def test_no_canary_starts_and_no_hand_promotion_happens_during_an_experiment(lab: Any) -> None:
    world, service, _ = lab
    service.start(MODEL, kind=AB, version=2, actor=OPERATOR)
    # The promotion workflow of version 2 (approved) fails at PublishVersion, alias untouched.
    execution = world.promote({"model_name": MODEL, "version": 2})
    assert execution.error == "PromotionFailed"
    assert execution.state["error"]["Error"] == "ExperimentInProgressError"
    assert world.registry.get_version(MODEL, 2).status is VersionStatus.APPROVED
    with pytest.raises(ExperimentInProgressError, match="promote its winner"):
        world.promotion.promote_now(MODEL, 2, actor="ops", reason="by hand")
    assert world.registry.get_model(MODEL).champion == 1


def _rows(world: World, capture: InMemoryCaptureSink, labelled: dict[str, bool]) -> None:
    """60 requests split between arms; ``labelled[arm]``: whether its answers were right."""
    now = world.clock.now().timestamp() + 60
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    labels = []
    for i in range(60):
        arm = "ab"[i % 2]
        version = 1 if arm == "a" else 2
        row = {
            "request_id": f"r{i}", "row": 0, "variant": arm, "version": version,
            "timestamp": world.clock.now().replace(second=30).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "latency_ms": 1.0, "prediction": "malignant",
        }  # fmt: skip
        rows.setdefault((arm, version), []).append(row)
        right = labelled[arm] or i % 6 == 0
        label = "malignant" if right else "benign"
        labels.append({"request_id": f"r{i}", "row": 0, "label": label})
    for (_, version), group in rows.items():
        capture.put(capture_key(MODEL, version, now), encode_rows(group))
    hour = world.clock.now().strftime("date=%Y-%m-%d/hour=%H")
    capture.put(f"labels/model={MODEL}/{hour}/l.jsonl.gz", encode_rows(labels))


def test_the_ab_winner_is_the_arm_better_on_the_delayed_labels(lab: Any) -> None:
    world, service, capture = lab
    service.start(MODEL, kind=AB, version=2, weight=0.5, actor=OPERATOR)
    _rows(world, capture, {"a": False, "b": True})

    report = service.report(MODEL)

    assert report.comparison.ab is not None
    assert report.comparison.ab.difference is not None
    assert report.comparison.ab.difference.significant
    assert service.winner(report) == 2
    assert service.winner(report, named=1) == 1  # a person may decide otherwise
    with pytest.raises(InvalidInputError, match="version 3 is not in the experiment"):
        service.winner(report, named=3)


def test_an_ab_test_without_labels_has_no_winner_until_one_is_named(lab: Any) -> None:
    _, service, _ = lab
    service.start(MODEL, kind=AB, version=2, actor=OPERATOR)
    report = service.report(MODEL)
    with pytest.raises(ExperimentRefusedError, match="no labelled rows in both arms yet"):
        service.winner(report)
    assert service.winner(report, named=2) == 2


def test_a_shadow_experiments_winner_is_its_version(lab: Any) -> None:
    _, service, _ = lab
    service.start(MODEL, kind=SHADOW, version=3, actor=OPERATOR)
    assert service.winner(service.report(MODEL)) == 3


def test_a_promotion_is_requested_only_for_an_approved_version_with_nothing_running(
    lab: Any,
) -> None:
    world, service, _ = lab
    requests = PromotionRequests(registry=world.registry, records=world.store, events=world.events)
    with pytest.raises(IllegalTransitionError, match="is pending_approval; only an approved"):
        requests.request(MODEL, version=3, requested_by=OPERATOR, reason="won")
    service.start(MODEL, kind=SHADOW, version=2, actor=OPERATOR)
    with pytest.raises(ExperimentInProgressError):
        requests.request(MODEL, version=2, requested_by=OPERATOR, reason="won")
    service.stop(MODEL, actor=OPERATOR, reason="won", winner=2, outcome="promotion requested")

    receipt = requests.request(MODEL, version=2, requested_by=OPERATOR, reason="won")

    detail_type, detail = world.events.events[-1]
    assert detail_type == PROMOTION_REQUESTED
    assert detail["artifact_sha256"] == world.registry.get_version(MODEL, 2).artifact.sha256
    assert (receipt.requested_by, receipt.version) == (OPERATOR, 2)
    # The promotion workflow rolls it out from that event as from VersionApproved.
    execution = world.promote(detail)
    assert execution.status == "SUCCEEDED", execution.state.get("error")
    assert world.registry.get_model(MODEL).champion == 2
