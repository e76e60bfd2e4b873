"""The promotion workflow on in-memory adapters: canary, promote, roll back, fail safely."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flywheel.registry.models import Alias, VersionStatus
from flywheel.workflows.approvals import Decision
from flywheel.workflows.ports import AlarmState, AliasRouting
from flywheel.workflows.records import SERVING, ServingDoc, model_key, read
from tests.asl_walker import Execution
from tests.unit.workflows.conftest import REVIEWER, World, approval_request
from tests.workflow_support import CANARY_WEIGHT, MODEL

PROMOTED = [
    "Initialize",
    "PublishVersion",
    "ShiftAlias",
    "Bake",
    "CheckCanary",
    "CanaryHealthy",
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
