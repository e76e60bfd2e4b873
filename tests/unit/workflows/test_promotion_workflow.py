"""The promotion workflow on in-memory adapters: canary, promote, roll back, fail safely."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flywheel.registry.models import Alias, VersionStatus
from flywheel.settings import CanaryStep
from flywheel.workflows.approvals import Decision
from flywheel.workflows.failures import WorkflowFailures
from flywheel.workflows.ports import AlarmState, AliasRouting
from flywheel.workflows.promotion import PromotionSteps
from flywheel.workflows.records import CANARY, SERVING, CanaryDoc, ServingDoc, model_key, read
from flywheel.workflows.state import PromotionState
from tests.asl_walker import Execution
from tests.unit.workflows.conftest import REVIEWER, World, approval_request
from tests.workflow_support import CANARY_WEIGHT, MODEL

PROMOTED = [
    "Initialize",
    "EvaluateCandidate",
    "CandidatePassed",
    "PublishVersion",
    "ShiftAlias",
    "Bake",
    "CheckCanary",
    "CanaryHealthy",
    "LastStep",
    "PromoteAll",
    "Promoted",
]


def approve_new_version(world: World, execution: str) -> int:
    doc = world.approvals.request(approval_request(world, execution=execution, token=execution))
    world.approvals.decide(
        doc.approval_id, decision=Decision.APPROVE, approver=REVIEWER, reason="reviewed"
    )
    return doc.version


@pytest.fixture
def champion(world: World) -> World:
    """Version 1 promoted through the workflow: alias live serves Lambda version 2 alone."""
    approve_new_version(world, "run-1")
    execution = world.promote()
    assert execution.status == "SUCCEEDED", execution.state.get("error")
    return world


def served(world: World) -> tuple[AliasRouting, int | None]:
    routing = world.serving.routing(MODEL)
    return routing, world.serving.model_version_served(MODEL, routing.primary)


def test_a_healthy_canary_is_promoted(world: World) -> None:
    approve_new_version(world, "run-1")

    execution = world.promote()

    assert execution.status == "SUCCEEDED"
    assert execution.visited == PROMOTED
    canary = execution.state["canary"]["Payload"]
    assert (canary["primary"], canary["weight"]) == ("1", CANARY_WEIGHT)
    routing, model_version = served(world)
    assert routing == AliasRouting(primary="2")
    assert model_version == 1
    model = world.registry.get_model(MODEL)
    assert (model.champion, model.challenger) == (1, None)
    assert world.actions()[-2:] == ["canary_started", "promoted"]
    serving = read(world.store, model_key(MODEL, SERVING), ServingDoc)
    assert serving is not None
    assert serving[0].lambda_versions == {"1": "2"}
    # The first (here: only) step's weight was recorded with canary_started
    canary = read(world.store, model_key(MODEL, CANARY), CanaryDoc)
    assert canary is not None
    assert canary[0] == CanaryDoc(version=1, step=1, steps=1, weight=CANARY_WEIGHT)


def test_the_next_version_replaces_the_champion(champion: World) -> None:
    approve_new_version(champion, "run-2")

    assert champion.promote().status == "SUCCEEDED"

    assert served(champion) == (AliasRouting(primary="3"), 2)
    assert champion.registry.get_version(MODEL, 1).status is VersionStatus.ARCHIVED
    assert champion.registry.get_model(MODEL).champion == 2


def test_an_unhealthy_canary_is_rolled_back(champion: World) -> None:
    approve_new_version(champion, "run-2")
    champion.health.set(MODEL, "errors", AlarmState.ALARM)

    execution = champion.promote()

    assert execution.status == "FAILED"
    assert execution.error == "CanaryRolledBack"
    assert execution.visited[-3:] == ["CanaryHealthy", "Rollback", "RolledBack"]
    assert served(champion) == (AliasRouting(primary="2"), 1)
    assert champion.registry.get_version(MODEL, 2).status is VersionStatus.ROLLED_BACK
    entry = list(champion.audit.entries(MODEL))[-1]
    assert str(entry.action) == "canary_aborted"
    assert entry.reason == "canary alarms breached or missing: errors (ALARM)"


def test_a_canary_without_alarms_is_not_trusted(champion: World) -> None:
    approve_new_version(champion, "run-2")
    champion.health._states.clear()

    execution = champion.promote()

    assert execution.state["canary_check"]["Payload"]["healthy"] is False
    assert execution.error == "CanaryRolledBack"


def fail_publish(world: World) -> None:
    world.serving.fail_next.add("publish")


def fail_shift(world: World) -> None:
    world.serving.fail_next.add("route")  # after the registry started the canary


def fail_check(world: World) -> None:
    world.health.fail = True


def fail_promote(world: World) -> None:
    original = world.promotion.promote_all

    def promote_then_lose_the_alias(state: object) -> object:
        world.serving.fail_next.add("route")  # the registry write succeeds, the alias fails
        return original(state)  # type: ignore[arg-type]

    world.promotion.promote_all = promote_then_lose_the_alias  # type: ignore[method-assign]


def fail_rollback(world: World) -> None:
    world.health.set(MODEL, "latency", AlarmState.ALARM)
    original = world.promotion.rollback

    def rollback_with_a_broken_alias(state: object) -> object:
        world.serving.fail_next.add("route")
        return original(state)  # type: ignore[arg-type]

    world.promotion.rollback = rollback_with_a_broken_alias  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("inject", "failed_step", "version_status"),
    [
        (fail_publish, "PublishVersion", VersionStatus.APPROVED),
        (fail_shift, "ShiftAlias", VersionStatus.ROLLED_BACK),
        (fail_check, "CheckCanary", VersionStatus.ROLLED_BACK),
        (fail_promote, "PromoteAll", VersionStatus.PRODUCTION),
        (fail_rollback, "Rollback", VersionStatus.ROLLED_BACK),
    ],
    ids=["publish_version", "shift_alias", "check_canary", "promote_all", "rollback"],
)
def test_a_failure_at_any_step_leaves_alias_registry_and_audit_consistent(
    champion: World,
    inject: Callable[[World], None],
    failed_step: str,
    version_status: VersionStatus,
) -> None:
    # Given version 2 approved while version 1 is champion
    approve_new_version(champion, "run-2")
    inject(champion)

    # When its promotion fails at one step
    execution: Execution = champion.promote()

    # Then the workflow ends PromotionFailed after RecordFailure ...
    assert execution.status == "FAILED"
    assert execution.error == "PromotionFailed"
    assert execution.visited[-2:] == ["RecordFailure", "PromotionFailed"]
    failure = execution.state["failure"]["Payload"]
    assert failure["failed_step"] == failed_step
    # ... alias live serves the registry's champion alone ...
    model = champion.registry.get_model(MODEL)
    routing, model_version = served(champion)
    assert routing.weights == {}
    assert model_version == model.champion
    assert model.aliases.get(Alias.CHALLENGER) is None
    # ... the candidate is left where the failure found it, never half-promoted ...
    assert champion.registry.get_version(MODEL, 2).status is version_status
    # ... and the audit trail ends with promotion_failed, chain intact.
    entry = list(champion.audit.entries(MODEL))[-1]
    assert str(entry.action) == "promotion_failed"
    assert entry.reason is not None
    assert entry.reason.startswith(f"{failed_step} failed: ")
    assert entry.details["failed_step"] == failed_step
    assert champion.registry.verify(MODEL).ok


def test_a_second_promotion_never_disturbs_the_canary_in_progress(champion: World) -> None:
    # Version 2 is on canary (its workflow is baking) ...
    approve_new_version(champion, "run-2")
    champion.registry.start_canary(MODEL, 2, actor="ops", reason="canary")
    champion.serving.publish(MODEL, 2)
    champion.serving.route(MODEL, AliasRouting(primary="2", weights={"3": 0.2}))
    # ... when version 3 is approved and its promotion starts
    approve_new_version(champion, "run-3")
    _, detail = champion.events.events[-1]

    execution = champion.promote(detail)

    assert execution.error == "PromotionFailed"
    assert execution.state["error"]["Error"] == "PromotionInProgressError"
    assert champion.serving.routing(MODEL) == AliasRouting(primary="2", weights={"3": 0.2})
    assert champion.registry.get_version(MODEL, 2).status is VersionStatus.CANARY
    assert champion.registry.get_version(MODEL, 3).status is VersionStatus.APPROVED


# -- multi-step canaries ------------------------------------------------------------------------
STEPS = (
    CanaryStep(weight=0.05, bake_minutes=10),
    CanaryStep(weight=0.25, bake_minutes=30),
    CanaryStep(weight=0.5, bake_minutes=30),
)
STEP_STATES = ["ShiftAlias", "Bake", "CheckCanary", "CanaryHealthy", "LastStep"]


@pytest.fixture
def stepped(champion: World) -> World:
    """Version 1 is champion; the model's canary now takes three steps (the project file's)."""
    champion.promotion = PromotionSteps(
        registry=champion.registry,
        records=champion.store,
        serving=champion.serving,
        health=champion.health,
        default_canary_weight=0.1,
        canary_steps={MODEL: STEPS},
    )
    champion.failures = WorkflowFailures(
        registry=champion.registry, approvals=champion.approvals, promotion=champion.promotion
    )
    return champion


def record_routes(world: World) -> list[AliasRouting]:
    """Every routing the promotion sets on alias live, in order."""
    routes: list[AliasRouting] = []
    original = world.serving.route

    def route(model: str, routing: AliasRouting) -> None:
        original(model, routing)
        routes.append(routing)

    world.serving.route = route  # type: ignore[method-assign]
    return routes


def test_a_three_step_canary_walks_every_step_then_promotes(stepped: World) -> None:
    approve_new_version(stepped, "run-2")
    routes = record_routes(stepped)
    shifts: list[dict[str, object]] = []
    original = stepped.promotion.shift_alias

    def shift(state: PromotionState) -> object:
        result = original(state)
        shifts.append(result.model_dump())
        return result

    stepped.promotion.shift_alias = shift  # type: ignore[method-assign,assignment]

    execution = stepped.promote()

    assert execution.status == "SUCCEEDED", execution.state.get("error")
    assert execution.visited == [
        "Initialize", "EvaluateCandidate", "CandidatePassed", "PublishVersion",
        *STEP_STATES * 3, "PromoteAll", "Promoted",
    ]  # fmt: skip
    # Each step routed a larger share to the new version (Lambda version 3), baked as
    # long as its step says, and only then did the new version take all traffic.
    assert [r.weights for r in routes] == [{"3": 0.05}, {"3": 0.25}, {"3": 0.5}, {}]
    assert routes[-1].primary == "3"
    assert [(s["step"], s["bake_seconds"], s["last"]) for s in shifts] == [
        (1, 600, False), (2, 1800, False), (3, 1800, True),
    ]  # fmt: skip
    assert stepped.registry.get_model(MODEL).champion == 2
    # The trail records each step with its weight and the check that let it happen.
    entries = [e for e in stepped.audit.entries(MODEL) if e.version == 2][-4:]
    assert [str(e.action) for e in entries] == [
        "canary_started", "canary_advanced", "canary_advanced", "promoted",
    ]  # fmt: skip
    assert [(e.details.get("step"), e.details.get("weight")) for e in entries[:3]] == [
        (1, 0.05), (2, 0.25), (3, 0.5),
    ]  # fmt: skip
    assert entries[1].reason == "canary at 25% of live traffic (step 2 of 3)"
    assert entries[1].details["previous_check"] == "3 canary alarms, none in ALARM"
    assert (entries[3].details["step"], entries[3].details["steps"]) == (3, 3)
    assert stepped.registry.verify(MODEL).ok


def test_a_breach_at_step_two_rolls_the_whole_canary_back(stepped: World) -> None:
    approve_new_version(stepped, "run-2")
    routes = record_routes(stepped)
    checks = 0
    original = stepped.health.alarm_states

    def alarm_at_the_second_check(model: str) -> dict[str, AlarmState]:
        nonlocal checks
        checks += 1
        if checks == 2:
            stepped.health.set(MODEL, "latency", AlarmState.ALARM)
        return original(model)

    stepped.health.alarm_states = alarm_at_the_second_check  # type: ignore[method-assign]

    execution = stepped.promote()

    assert execution.error == "CanaryRolledBack"
    assert execution.visited == [
        "Initialize", "EvaluateCandidate", "CandidatePassed", "PublishVersion",
        *STEP_STATES, *STEP_STATES[:4], "Rollback", "RolledBack",
    ]  # fmt: skip
    # Traffic went to 5 %, then 25 %, then back to the champion alone: all or nothing.
    assert [r.weights for r in routes] == [{"3": 0.05}, {"3": 0.25}, {}]
    assert served(stepped) == (AliasRouting(primary="2"), 1)
    assert stepped.registry.get_version(MODEL, 2).status is VersionStatus.ROLLED_BACK
    model = stepped.registry.get_model(MODEL)
    assert (model.champion, model.challenger) == (1, None)
    aborted = list(stepped.audit.entries(MODEL))[-1]
    assert str(aborted.action) == "canary_aborted"
    assert aborted.reason == "canary alarms breached or missing: latency (ALARM)"
    assert (aborted.details["step"], aborted.details["steps"]) == (2, 3)
    assert stepped.registry.verify(MODEL).ok


def test_a_retried_step_is_audited_once(stepped: World) -> None:
    approve_new_version(stepped, "run-2")
    original = stepped.promotion.shift_alias

    def answer_lost_then_retried(state: PromotionState) -> object:
        if state.canary is not None:
            original(state)  # the first attempt did its work, but its answer was lost
        return original(state)

    stepped.promotion.shift_alias = answer_lost_then_retried  # type: ignore[method-assign,assignment]

    execution = stepped.promote()

    assert execution.status == "SUCCEEDED", execution.state.get("error")
    advanced = [e.details["step"] for e in stepped.audit.entries(MODEL)
                if str(e.action) == "canary_advanced"]  # fmt: skip
    assert advanced == [2, 3]
    assert stepped.registry.verify(MODEL).ok


def test_a_step_that_fails_is_named_and_repaired(stepped: World) -> None:
    approve_new_version(stepped, "run-2")
    original = stepped.promotion.shift_alias
    calls = 0

    def fail_the_second_shift(state: PromotionState) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            stepped.serving.fail_next.add("route")  # after step 2 is audited
        return original(state)

    stepped.promotion.shift_alias = fail_the_second_shift  # type: ignore[method-assign,assignment]

    execution = stepped.promote()

    assert execution.error == "PromotionFailed"
    failure = execution.state["failure"]["Payload"]
    assert failure["failed_step"] == "ShiftAlias"
    assert served(stepped) == (AliasRouting(primary="2"), 1)
    assert stepped.registry.get_version(MODEL, 2).status is VersionStatus.ROLLED_BACK
    assert stepped.actions()[-3:] == ["canary_started", "canary_advanced", "promotion_failed"]
    assert stepped.registry.verify(MODEL).ok


def test_a_check_that_fails_at_a_later_step_is_named_as_the_check(stepped: World) -> None:
    approve_new_version(stepped, "run-2")
    original = stepped.health.alarm_states
    checks = 0

    def unreachable_at_the_second_check(model: str) -> dict[str, AlarmState]:
        nonlocal checks
        checks += 1
        if checks == 2:
            stepped.health.fail = True  # CloudWatch cannot be read during step 2's check
        return original(model)

    stepped.health.alarm_states = unreachable_at_the_second_check  # type: ignore[method-assign]

    execution = stepped.promote()

    assert execution.error == "PromotionFailed"
    assert execution.state["failure"]["Payload"]["failed_step"] == "CheckCanary"
    assert served(stepped) == (AliasRouting(primary="2"), 1)
    assert stepped.registry.get_version(MODEL, 2).status is VersionStatus.ROLLED_BACK
