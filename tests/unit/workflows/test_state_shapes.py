"""The state models read exactly what the synthesized definitions and EventBridge produce."""

from __future__ import annotations

from flywheel.workflows.state import PromotionState, TaskError, TrainingState
from infra.workflows.asl import task_states
from tests.workflow_support import event, promotion_input, promotion_machine, training_machine


def test_every_training_task_result_has_a_field_in_the_state_model() -> None:
    keys = {
        spec["ResultPath"].removeprefix("$.") for spec in task_states(training_machine()).values()
    }

    unknown = keys - set(TrainingState.model_fields) - {"lock_release", "failure"}
    assert unknown == set()
    choices = [s for s in training_machine()["States"].values() if s["Type"] == "Choice"]
    assert {c["Choices"][0]["Variable"] for c in choices} == {
        "$.lock.Payload.suppressed",
        "$.gate.Payload.passed",
    }


def test_every_promotion_task_result_has_a_field_in_the_state_model() -> None:
    keys = {
        spec["ResultPath"].removeprefix("$.") for spec in task_states(promotion_machine()).values()
    }

    assert keys - set(PromotionState.model_fields) == {"failure"}


def test_the_version_approved_rule_input_parses_as_a_promotion_state() -> None:
    approved = event("version_approved_event.json")
    state = {
        **promotion_input(approved["detail"]),
        "run": {
            "execution_id": "arn:aws:states:us-east-1:123456789012:execution:promotion:e1",
            "execution_name": "e1",
            "started_at": "2026-01-01T01:00:05.000Z",
            "state_machine": "flywheel-dev-promotion",
            "canary_weight": 0.2,
            "bake_seconds": 300,
        },
    }

    parsed = PromotionState.model_validate(state)

    assert (parsed.version, parsed.run.canary_weight) == (2, 0.2)
    assert parsed.approval["artifact_sha256"] == approved["detail"]["artifact_sha256"]


def test_a_lambda_error_keeps_the_message_and_drops_the_stack_trace() -> None:
    error = TaskError.model_validate(event("lambda_task_error.json"))

    assert error.summary == (
        "ServingControlError: routing alias live of flywheel-test-inference-cancer failed"
    )
