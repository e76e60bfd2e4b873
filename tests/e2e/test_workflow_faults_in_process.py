"""Fault paths of the synthesized workflows on the local runtime: retries, canary rollback,
and a failed promotion step, judged from execution histories, alias routing, registry and audit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from flywheel.local.bridge import THROTTLE
from flywheel.local.lifecycle import MODEL, InProcessDriver, Lifecycle
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from flywheel.registry.models import VersionStatus


@pytest.fixture
def setup(aws_env: dict[str, str]) -> Iterator[tuple[Lifecycle, LocalRuntime]]:
    from moto import mock_aws

    with mock_aws(config=MOTO_CONFIG), LocalRuntime() as runtime:
        life = Lifecycle(InProcessDriver(runtime))
        life.seed()
        yield life, runtime


def _manual(life: Lifecycle) -> None:
    life.put_event("flywheel.operator", "RetrainRequested", {"model_name": MODEL})


def _release(life: Lifecycle, promotions_before: int) -> tuple[str, list[str]]:
    """Train, approve, and return the promotion execution's outcome."""
    arn, _, approval_id = life.train_until_approval(lambda: _manual(life))
    status, body = life.approve(approval_id, "reviewed")
    assert status == 200, body
    life.wait(arn)
    promotion = life.wait_for_new_execution("promotion", promotions_before)
    return life.wait(promotion["executionArn"])


def _live(life: Lifecycle) -> dict[str, Any]:
    alias = boto3.client("lambda").get_alias(
        FunctionName=life.function_name(f"inference-{MODEL}"), Name="live"
    )
    return {
        "primary": alias["FunctionVersion"],
        "weights": (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {},
    }


def test_injected_throttling_is_retried_and_visible_in_the_history(
    setup: tuple[Lifecycle, LocalRuntime],
) -> None:
    life, runtime = setup
    runtime.bridge.inject(life.function_name("training-validate-data"), THROTTLE, THROTTLE)
    arn, version, _ = life.train_until_approval(lambda: _manual(life))
    report = runtime.report(arn)
    assert report.retries == {"ValidateData": 2}
    assert version == 1  # the run went on to register its candidate


def test_an_alarming_canary_is_rolled_back_and_audited(
    setup: tuple[Lifecycle, LocalRuntime],
) -> None:
    life, _ = setup
    status, _ = _release(life, 0)
    assert status == "SUCCEEDED"
    champion_routing = _live(life)
    # Given the canary's error-rate alarm fires during the bake
    alarm = f"flywheel-dev-{MODEL}-canary-errorrate"
    boto3.client("cloudwatch").set_alarm_state(
        AlarmName=alarm, StateValue="ALARM", StateReason="forced by the test"
    )
    # When version 2 is released
    status, states = _release(life, 1)
    # Then the promotion rolls back: alias weights revert, registry and audit say so
    assert status == "FAILED"
    assert states[-3:] == ["CanaryHealthy", "Rollback", "RolledBack"]
    assert _live(life) == champion_routing
    sdk = life.sdk("test")
    assert sdk.get_model(MODEL).champion == 1
    assert sdk.get_version(MODEL, 2).status is VersionStatus.ROLLED_BACK
    assert "canary_aborted" in life.audit_actions()
    assert life.verify().ok


def test_an_alarm_during_the_second_step_rolls_the_whole_canary_back(
    setup: tuple[Lifecycle, LocalRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.adapters.aws_workflows import CloudWatchCanaryHealth

    life, _ = setup
    _release(life, 0)
    champion_routing = _live(life)
    # Given the canary's error-rate alarm fires while step 2 of 3 bakes
    alarm = f"flywheel-dev-{MODEL}-canary-errorrate"
    original = CloudWatchCanaryHealth.alarm_states
    checks: list[str] = []

    def fires_during_step_two(health: CloudWatchCanaryHealth, model: str) -> Any:
        checks.append(model)
        if len(checks) == 2:
            boto3.client("cloudwatch").set_alarm_state(
                AlarmName=alarm, StateValue="ALARM", StateReason="step 2 breached"
            )
        return original(health, model)

    monkeypatch.setattr(CloudWatchCanaryHealth, "alarm_states", fires_during_step_two)
    # When version 2 is released
    status, states = _release(life, 1)
    # Then the synthesized machine walked step 1, was judged unhealthy at step 2 and
    # rolled back: all of the canary's traffic, not just the last step's
    assert status == "FAILED"
    assert states.count("ShiftAlias") == 2
    assert states[-3:] == ["CanaryHealthy", "Rollback", "RolledBack"]
    assert _live(life) == champion_routing
    sdk = life.sdk("test")
    assert sdk.get_model(MODEL).champion == 1
    assert sdk.get_version(MODEL, 2).status is VersionStatus.ROLLED_BACK
    trail = [e for e in sdk.audit_entries(MODEL) if e.version == 2]
    assert [str(e.action) for e in trail][-3:] == [
        "canary_started", "canary_advanced", "canary_aborted",
    ]  # fmt: skip
    assert (trail[-1].details["step"], trail[-1].details["steps"]) == (2, 3)
    assert life.verify().ok


def test_a_failed_promotion_step_leaves_alias_registry_and_audit_consistent(
    setup: tuple[Lifecycle, LocalRuntime],
) -> None:
    life, runtime = setup
    _release(life, 0)
    champion_routing = _live(life)
    # Given the shift_alias step will fail (every attempt)
    runtime.bridge.inject(life.function_name("promotion-shift-alias"), "disk on fire")
    # When version 2 is released
    status, states = _release(life, 1)
    # Then the workflow records the failure and live still serves the champion alone
    assert status == "FAILED"
    assert "RecordFailure" in states
    assert states[-1] == "PromotionFailed"
    assert _live(life) == champion_routing
    assert life.sdk("test").get_model(MODEL).champion == 1
    assert "promotion_failed" in life.audit_actions()
    assert life.verify().ok


def test_a_candidate_that_fails_the_gate_is_never_registered(
    setup: tuple[Lifecycle, LocalRuntime],
) -> None:
    life, _ = setup
    # Given a gate no model can pass
    from flywheel.local.lifecycle import OPERATOR, _write_temp_config, model_config

    config = model_config(life.settings.features_bucket)
    config["gate"]["minimums"] = {"accuracy": 0.9999}
    life.sdk(OPERATOR).configure_model(MODEL, _write_temp_config(config), reason="strict gate")
    # When a run is triggered
    known = len(life.executions("training"))
    _manual(life)
    execution = life.wait_for_new_execution("training", known)
    status, states = life.wait(execution["executionArn"])
    # Then it ends at NotPromoted, nothing is registered, and the audit says why
    assert (status, states[-1]) == ("SUCCEEDED", "NotPromoted")
    assert "Register" not in states
    entries = life.sdk(OPERATOR).audit_entries(MODEL)
    rejected = [e for e in entries if str(e.action) == "gate_rejected"]
    assert len(rejected) == 1
    assert "accuracy" in (rejected[0].reason or "") + str(rejected[0].details)
    assert "version_registered" not in [str(e.action) for e in entries]


def test_rollback_moves_alias_live_back_with_the_registry(
    setup: tuple[Lifecycle, LocalRuntime],
) -> None:
    life, _ = setup
    _release(life, 0)
    first = _live(life)
    status, _ = _release(life, 1)
    assert status == "SUCCEEDED"
    assert _live(life) != first
    # When an operator rolls back with one call
    from flywheel.local.lifecycle import OPERATOR

    restored = life.sdk(OPERATOR).rollback(MODEL, reason="latency regression after release")
    # Then registry, alias live and audit agree on version 1
    assert restored.version.version == 1
    assert restored.lambda_version == first["primary"]
    assert _live(life) == first
    assert life.sdk(OPERATOR).get_model(MODEL).champion == 1
    assert life.audit_actions()[-1] == "rolled_back"
    status, body = life.predict([dict.fromkeys(_feature_names(), 1.0)])
    assert (status, body["version"]) == (200, 1)


def _feature_names() -> list[str]:
    from sklearn.datasets import load_breast_cancer

    return [str(n) for n in load_breast_cancer().feature_names]
