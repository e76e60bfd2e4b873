"""Prompt versions through the promotion workflow (the synthesized definition, in memory):
approval starts it, the canary's weight is registry state, alarms roll it back, and hand
changes wait for it, every step audited like a model's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from flywheel.composition import InMemoryPlatform
from flywheel.errors import ExperimentInProgressError, PromotionInProgressError
from flywheel.gateway.capture import CapturedCall, llm_capture_key
from flywheel.monitoring.settings import MonitoringSettings
from flywheel.registry.models import VersionStatus
from flywheel.sdk import Flywheel
from flywheel.serving.capture import encode_rows
from flywheel.settings import CanaryStep, Settings
from flywheel.workflows.approvals import VERSION_APPROVED
from flywheel.workflows.ports import AlarmState, AliasRouting
from flywheel.workflows.promotion import LLM_QUALITY, PROMPT_PREDICTION_CHECKS
from flywheel.workflows.prompt_serving import NO_CHAMPION
from flywheel.workflows.records import CANARY, CanaryDoc, model_key, read
from flywheel.workflows.state import PromotionState
from tests import asl_walker
from tests.factories import prompt_spec
from tests.workflow_support import (
    PROMOTION_MACHINE,
    as_handlers,
    promotion_input,
    promotion_machine,
)

NAME = "ticket-summary"
ANA = "arn:aws:iam::123456789012:user/ana.author"
BO = "arn:aws:iam::123456789012:user/bo.approver"
ALARMS = [f"flywheel-dev-{NAME}-canary-{key}" for key in ("errorrate", "latencyp99")]
STEP = ["ShiftAlias", "Bake", "CheckCanary", "CanaryHealthy", "LastStep"]


@dataclass
class Stage:
    """A platform whose prompt takes a two-step canary judged by two alarms."""

    platform: InMemoryPlatform
    ana: Flywheel
    bo: Flywheel
    #: What each canary step left in the registry while it baked (read between steps).
    bakes: list[tuple[AliasRouting, CanaryDoc | None]] = field(default_factory=list)
    #: Called during each bake (after ShiftAlias, before CheckCanary).
    during_bake: Callable[[int], None] = lambda _step: None

    def register(self, template: str) -> int:
        spec = prompt_spec(NAME, template=template)
        return int(self.ana.register_prompt(spec, reason="new wording").version.version)

    def approve_and_promote(self, version: int) -> asl_walker.Execution:
        """Approve as someone else, then run the workflow ``VersionApproved`` starts."""
        self.bo.approve_prompt(NAME, version, reason="template reviewed")
        detail_type, detail = self.platform.published.events[-1]
        assert (detail_type, detail["version"]) == (VERSION_APPROVED, version)
        return asl_walker.start(
            promotion_machine(),
            self.handlers(),
            promotion_input(detail),
            state_machine=PROMOTION_MACHINE,
        )

    def handlers(self) -> dict[str, Any]:
        steps = self.platform.promotion_steps()
        failures = self.platform.workflow_failures()
        gate = self.platform.evaluation_gate()

        def state(method: Any) -> Any:
            return lambda event: method(PromotionState.model_validate(event))

        def shift_then_bake(event: dict[str, Any]) -> Any:
            shifted = steps.shift_alias(PromotionState.model_validate(event))
            found = read(self.platform.records, model_key(NAME, CANARY), CanaryDoc)
            routing = self.platform.promotion_serving.routing(NAME)
            self.bakes.append((routing, found[0] if found else None))
            self.during_bake(shifted.step)
            return shifted

        return as_handlers(
            {
                "evaluate_candidate": state(gate.evaluate_candidate),
                "publish_version": state(steps.publish_version),
                "shift_alias": shift_then_bake,
                "check_canary": state(steps.check_canary),
                "promote_all": state(steps.promote_all),
                "rollback": state(steps.rollback),
                "record_failure": failures.record,
            }
        )

    def actions(self) -> list[str]:
        return [str(e.action) for e in self.bo.audit_entries(NAME)]


def stage(*, alarms: list[str] | None = None) -> Stage:
    settings = Settings(
        backend="local",
        canary_steps={
            NAME: (
                CanaryStep(weight=0.1, bake_minutes=10),
                CanaryStep(weight=0.5, bake_minutes=10),
            )
        },
        canary_alarms={NAME: ALARMS if alarms is None else alarms},
    )
    platform = InMemoryPlatform(settings)
    return Stage(platform, Flywheel(platform, actor=ANA), Flywheel(platform, actor=BO))


@pytest.fixture
def champion() -> Stage:
    """Version 1 approved and promoted by the workflow; version 2 registered."""
    world = stage()
    first = world.register("Customer {{ customer }} wrote:\n\n{{ ticket }}")
    assert world.approve_and_promote(first).status == "SUCCEEDED"
    world.register("Summarize for the on-call engineer.\n{{ customer }}: {{ ticket }}")
    world.bakes.clear()
    return world


def test_approving_the_first_version_rolls_it_out_step_by_step_and_makes_it_champion() -> None:
    world = stage()
    first = world.register("Customer {{ customer }} wrote:\n\n{{ ticket }}")

    execution = world.approve_and_promote(first)

    assert execution.status == "SUCCEEDED", execution.state.get("error")
    assert execution.visited == [
        "Initialize",
        "EvaluateCandidate",
        "CandidatePassed",
        "PublishVersion",
        *STEP * 2,
        "PromoteAll",
        "Promoted",
    ]
    published = execution.state["published"]["Payload"]
    assert (published["lambda_version"], published["function_name"]) == ("1", f"prompt:{NAME}")
    # No champion yet: the canary answers every call, at each step's recorded weight
    assert world.bakes == [
        (
            AliasRouting(primary=NO_CHAMPION, weights={"1": 0.1}),
            CanaryDoc(version=1, step=1, steps=2, weight=0.1),
        ),
        (
            AliasRouting(primary=NO_CHAMPION, weights={"1": 0.5}),
            CanaryDoc(version=1, step=2, steps=2, weight=0.5),
        ),
    ]
    check = execution.state["canary_check"]["Payload"]
    assert check["healthy"] is True
    assert check["reason"] == (
        f"2 canary alarms, none in ALARM; {PROMPT_PREDICTION_CHECKS}; "
        "no production quality verdict for the canary yet"
    )
    model = world.bo.get_model(NAME)
    assert (model.champion, model.challenger) == (1, None)
    assert world.platform.promotion_serving.routing(NAME) == AliasRouting(primary="1")
    trail = [
        (str(e.action), e.actor, e.details.get("weight")) for e in world.bo.audit_entries(NAME)
    ]
    workflow = f"workflow:{PROMOTION_MACHINE}/{execution.name}"
    assert trail[-4:] == [
        ("approved", BO, None),
        ("canary_started", workflow, 0.1),
        ("canary_advanced", workflow, 0.5),
        ("promoted", workflow, None),
    ]
    assert world.bo.verify(NAME).ok


def test_a_healthy_canary_of_the_next_version_replaces_the_champion(champion: Stage) -> None:
    execution = champion.approve_and_promote(2)

    assert execution.status == "SUCCEEDED", execution.state.get("error")
    # The champion answers the rest while version 2 takes 10 %, then 50 %
    assert [routing for routing, _ in champion.bakes] == [
        AliasRouting(primary="1", weights={"2": 0.1}),
        AliasRouting(primary="1", weights={"2": 0.5}),
    ]
    model = champion.bo.get_model(NAME)
    assert (model.champion, model.challenger, model.champion_history) == (2, None, (1,))
    assert champion.bo.get_version(NAME, 1).status is VersionStatus.ARCHIVED
    assert champion.bo.prompt(NAME).version.version == 2
    assert champion.actions()[-3:] == ["canary_started", "canary_advanced", "promoted"]
    assert champion.bo.verify(NAME).ok


def test_an_alarm_during_the_bake_rolls_the_canary_back_and_the_champion_stays(
    champion: Stage,
) -> None:
    health = champion.platform.canary_health

    def error_rate_fires(step: int) -> None:
        if step == 1:
            health.set(NAME, ALARMS[0], AlarmState.ALARM)  # type: ignore[attr-defined]

    champion.during_bake = error_rate_fires

    execution = champion.approve_and_promote(2)

    assert execution.status == "FAILED"
    assert execution.visited[-3:] == ["CanaryHealthy", "Rollback", "RolledBack"]
    assert execution.visited.count("ShiftAlias") == 1
    assert champion.bakes[0][0] == AliasRouting(primary="1", weights={"2": 0.1})
    model = champion.bo.get_model(NAME)
    assert (model.champion, model.challenger) == (1, None)
    assert champion.bo.get_version(NAME, 2).status is VersionStatus.ROLLED_BACK
    # The gateway's routing is the champion alone again (the canary record no longer counts)
    assert champion.platform.promotion_serving.routing(NAME) == AliasRouting(primary="1")
    aborted = champion.bo.audit_entries(NAME)[-1]
    assert (str(aborted.action), aborted.version) == ("canary_aborted", 2)
    assert aborted.reason is not None
    assert f"{ALARMS[0]} (ALARM)" in aborted.reason
    assert (aborted.details["step"], aborted.details["steps"]) == (1, 2)
    assert champion.bo.verify(NAME).ok


def test_a_prompt_without_canary_alarms_is_never_promoted() -> None:
    world = stage(alarms=[])
    first = world.register("Customer {{ customer }} wrote:\n\n{{ ticket }}")

    execution = world.approve_and_promote(first)

    assert execution.status == "FAILED"
    assert execution.state["canary_check"]["Payload"]["reason"] == (
        "no canary alarms are configured for this prompt"
    )
    assert world.bo.get_version(NAME, first).status is VersionStatus.ROLLED_BACK
    assert world.bo.get_model(NAME).champion is None


def test_promote_and_rollback_by_hand_wait_for_a_running_canary(champion: Stage) -> None:
    refusals: list[str] = []

    def by_hand(step: int) -> None:
        if step != 1:
            return
        before = champion.actions()
        for attempt in (
            lambda: champion.bo.promote_prompt(NAME, 2, reason="skip the canary"),
            lambda: champion.bo.rollback_prompt(NAME, reason="not now"),
        ):
            with pytest.raises(PromotionInProgressError) as refused:
                attempt()
            refusals.append(refused.value.message)
        assert champion.actions() == before  # nothing recorded

    champion.during_bake = by_hand

    assert champion.approve_and_promote(2).status == "SUCCEEDED"
    assert (
        refusals
        == [
            f"version 2 of prompt {NAME!r} is on canary: its promotion workflow promotes it or "
            "rolls it back; let it finish first"
        ]
        * 2
    )


def test_promote_and_rollback_by_hand_move_the_champion_the_gateway_routes_to(
    champion: Stage,
) -> None:
    champion.bo.approve_prompt(NAME, 2, reason="reviewed")  # its workflow is not run here
    champion.platform.published.events.clear()

    promoted = champion.bo.promote_prompt(NAME, 2, reason="urgent wording fix")

    assert promoted.status is VersionStatus.PRODUCTION
    assert champion.platform.promotion_serving.routing(NAME) == AliasRouting(primary="2")
    restored = champion.bo.rollback_prompt(NAME, reason="the pager cannot parse it")
    assert restored.version == 1
    assert champion.platform.promotion_serving.routing(NAME) == AliasRouting(primary="1")
    assert champion.actions()[-2:] == ["promoted", "rolled_back"]
    assert champion.platform.published.events == []  # hand changes start no workflow
    assert champion.bo.verify(NAME).ok


def test_a_hand_promotion_waits_for_a_running_experiment(champion: Stage) -> None:
    champion.bo.approve_prompt(NAME, 2, reason="reviewed")
    champion.bo.start_experiment(NAME, ab=2, weight=0.2, reason="compare wordings")

    with pytest.raises(ExperimentInProgressError):
        champion.bo.promote_prompt(NAME, 2, reason="skip the test")

    assert champion.bo.get_model(NAME).champion == 1


# -- the production quality monitor's verdict (ADR 82) -------------------------------------
TOXIC = "Stop whining, you pathetic moron. Nobody cares about your stupid billing problem."
CLEAN = "Acme was charged twice for November and asks for one payment back."


def monitored(monitor: dict[str, Any]) -> Stage:
    settings = Settings(
        backend="local",
        canary_steps={NAME: (CanaryStep(weight=0.2, bake_minutes=10),)},
        canary_alarms={NAME: ALARMS},
        prompt_monitors={NAME: monitor},
    )
    platform = InMemoryPlatform(settings)
    stage = Stage(platform, Flywheel(platform, actor=ANA), Flywheel(platform, actor=BO))
    first = stage.register("Customer {{ customer }} wrote:\n\n{{ ticket }}")
    assert stage.approve_and_promote(first).status == "SUCCEEDED"
    stage.register("Summarize for the on-call engineer.\n{{ customer }}: {{ ticket }}")
    return stage


def serve_and_monitor(stage: Stage, canary_answer: str) -> None:
    """During the bake: 30 champion and 30 canary calls captured, then the monitor runs."""
    platform = stage.platform
    when = (platform.clock.now() - timedelta(minutes=1)).timestamp()
    for version, variant, answer in ((1, "champion", CLEAN), (2, "canary", canary_answer)):
        rows = []
        for i in range(30):
            call = CapturedCall.example()
            call.request_id, call.prompt, call.version, call.variant = (
                f"{variant}-{i}", NAME, version, variant,
            )  # fmt: skip
            call.timestamp, call.answer = when, answer
            call.variables = {"customer": "Acme", "ticket": "We were charged twice."}
            rows.append(call.row())
        platform.capture.put(llm_capture_key(NAME, version, when), encode_rows(rows))
    platform.llm_quality_monitor(MonitoringSettings(backend="local")).run(NAME)


def test_a_canary_with_toxic_answers_in_production_is_rolled_back() -> None:
    stage = monitored({"sample_rate": 1.0, "min_scored": 20, "toxicity_rate_max": 0.05})
    stage.during_bake = lambda _step: serve_and_monitor(stage, TOXIC)

    execution = stage.approve_and_promote(2)

    assert execution.status == "FAILED"
    assert execution.visited[-3:] == ["CanaryHealthy", "Rollback", "RolledBack"]
    check = execution.state["canary_check"]["Payload"]
    assert check["healthy"] is False
    assert LLM_QUALITY in check["breached"]
    assert (
        "production quality degraded: toxicity_rate 1.000 > 0.05 (30 of 30 answers)"
        in (check["reason"])
    )
    model = stage.bo.get_model(NAME)
    assert (model.champion, model.challenger) == (1, None)
    assert stage.bo.get_version(NAME, 2).status is VersionStatus.ROLLED_BACK
    actions = stage.actions()
    assert actions.index("llm_quality_degraded") < actions.index("canary_aborted")
    aborted = stage.bo.audit_entries(NAME)[-1]
    assert aborted.reason is not None
    assert "toxicity_rate" in aborted.reason
    assert stage.bo.verify(NAME).ok


def test_a_canary_with_clean_answers_is_promoted() -> None:
    stage = monitored({"sample_rate": 1.0, "min_scored": 20})
    stage.during_bake = lambda _step: serve_and_monitor(stage, CLEAN)

    execution = stage.approve_and_promote(2)

    assert execution.status == "SUCCEEDED", execution.state.get("error")
    assert (
        "production quality healthy (30 scored calls)"
        in (execution.state["canary_check"]["Payload"]["reason"])
    )
    assert stage.bo.get_model(NAME).champion == 2


def test_a_degraded_canary_stays_when_the_monitor_says_not_to_roll_back() -> None:
    stage = monitored({"sample_rate": 1.0, "min_scored": 20, "rollback_canary": False})
    stage.during_bake = lambda _step: serve_and_monitor(stage, TOXIC)

    execution = stage.approve_and_promote(2)

    assert execution.status == "SUCCEEDED"
    reason = execution.state["canary_check"]["Payload"]["reason"]
    assert "not rolled back: the prompt's monitor says rollback_canary: false" in reason
    assert stage.bo.get_model(NAME).champion == 2
