"""A prompt canary whose production answers the quality monitor found degraded is rolled
back by its canary check (ADR 82), unless the prompt's monitor says not to; the model's
canary check is unchanged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flywheel.composition import InMemoryPlatform
from flywheel.gateway.capture import CapturedCall, llm_capture_key
from flywheel.monitoring.settings import MonitoringSettings
from flywheel.registry.models import VersionStatus
from flywheel.sdk import Flywheel
from flywheel.serving.capture import encode_rows
from flywheel.settings import CanaryStep, Settings
from flywheel.workflows.promotion import LLM_QUALITY
from tests.unit.workflows.test_prompt_promotion import ALARMS, ANA, BO, NAME, Stage

TOXIC = "Stop whining, you pathetic moron. Nobody cares about your stupid billing problem."
CLEAN = "Acme was charged twice for November and asks for one payment back."


def world(monitor: dict[str, Any]) -> Stage:
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
    stage = world({"sample_rate": 1.0, "min_scored": 20, "toxicity_rate_max": 0.05})
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
    stage = world({"sample_rate": 1.0, "min_scored": 20})
    stage.during_bake = lambda _step: serve_and_monitor(stage, CLEAN)

    execution = stage.approve_and_promote(2)

    assert execution.status == "SUCCEEDED", execution.state.get("error")
    assert (
        "production quality healthy (30 scored calls)"
        in (execution.state["canary_check"]["Payload"]["reason"])
    )
    assert stage.bo.get_model(NAME).champion == 2


def test_a_degraded_canary_stays_when_the_monitor_says_not_to_roll_back() -> None:
    stage = world({"sample_rate": 1.0, "min_scored": 20, "rollback_canary": False})
    stage.during_bake = lambda _step: serve_and_monitor(stage, TOXIC)

    execution = stage.approve_and_promote(2)

    assert execution.status == "SUCCEEDED"
    reason = execution.state["canary_check"]["Payload"]["reason"]
    assert "not rolled back: the prompt's monitor says rollback_canary: false" in reason
    assert stage.bo.get_model(NAME).champion == 2
