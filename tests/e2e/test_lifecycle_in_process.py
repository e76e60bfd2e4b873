"""The synthesized workflows end to end on moto in this process, with the real handlers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from flywheel.local.lifecycle import APPROVER, MODEL, OPERATOR, InProcessDriver, Lifecycle
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from flywheel.settings import Settings
from infra.config import load_stage_config
from infra.naming import Naming


@pytest.fixture
def lifecycle(aws_env: dict[str, str]) -> Iterator[Lifecycle]:
    from moto import mock_aws

    with mock_aws(config=MOTO_CONFIG), LocalRuntime() as runtime:
        yield Lifecycle(InProcessDriver(runtime))


def test_train_approve_promote_and_serve(lifecycle: Lifecycle) -> None:
    records = lifecycle.seed()
    asked: list[tuple[int, dict[str, Any]]] = []
    arn, version, approval_id = lifecycle.train_until_approval(
        lambda: asked.append(lifecycle.request_retrain("first model", caller=OPERATOR))
    )
    assert version == 1
    [(status, receipt)] = asked
    assert (status, receipt["requested_by"]) == (202, OPERATOR)
    # The run knows who asked for it (and keeps them from approving it).
    _, _, described = lifecycle.history(arn)
    assert json.loads(described["input"])["trigger"]["detail"]["requested_by"] == OPERATOR
    status, body = lifecycle.approve(approval_id, "metrics reviewed")
    assert status == 200, body
    status, states = lifecycle.wait(arn)
    assert status == "SUCCEEDED", states
    assert states[:9] == [
        "Initialize", "AcquireRunLock", "IsSuppressed", "ValidateData", "BuildTrainingSet",
        "Train", "Evaluate", "Gate", "GatePassed",
    ]  # fmt: skip
    promotion = lifecycle.wait_for_new_execution("promotion", 0)
    status, states = lifecycle.wait(promotion["executionArn"])
    assert status == "SUCCEEDED", states
    # The example project's breast-cancer canary takes three steps, each baked and judged.
    step = ["ShiftAlias", "Bake", "CheckCanary", "CanaryHealthy", "LastStep"]
    assert states == [
        "Initialize", "EvaluateCandidate", "CandidatePassed", "PublishVersion",
        *step * 3, "PromoteAll", "Promoted",
    ]  # fmt: skip
    steps = [
        (str(e.action), e.details.get("weight"))
        for e in lifecycle.sdk(OPERATOR).audit_entries(MODEL)
        if str(e.action) in ("canary_started", "canary_advanced")
    ]
    assert steps == [("canary_started", 0.1), ("canary_advanced", 0.25), ("canary_advanced", 0.5)]
    status, body = lifecycle.predict(records[:5])
    assert status == 200, body
    assert body["version"] == 1
    assert body["variant"] == "champion"
    assert lifecycle.verify().ok
    actors = {e["actor"] for e in lifecycle.run_record.audit}
    assert APPROVER in actors


def test_the_platform_record_is_provisioned_from_the_template(lifecycle: Lifecycle) -> None:
    driver = lifecycle.driver
    assert isinstance(driver, InProcessDriver)
    name = Naming(load_stage_config("dev").prefix).platform_parameter
    parameter = driver.client("ssm").get_parameter(Name=name)
    record = json.loads(parameter["Parameter"]["Value"])

    assert (record["stage"], record["region"]) == ("dev", "us-east-1")
    assert record["api_url"] == ""  # no API Gateway here: handlers are invoked directly
    assert set(record["state_machines"].values()) == set(
        driver.runtime.provisioned.state_machines.values()  # type: ignore[union-attr]
    )
    # Its environment reaches the same resources the runtime hands the CLI and the SDK.
    exported = driver.runtime.deployment.resource_environment()
    assert {k: record["environment"][k] for k in exported} == exported
    settings = Settings.of_deployment(record["environment"], backend="aws")
    assert settings.records_writer == lifecycle.function_name("records-writer")


def champion_in_production(lifecycle: Lifecycle) -> list[dict[str, float]]:
    """Seed, train (manual trigger), approve and promote v1; return the rows to score."""
    records = lifecycle.seed()
    arn, _, approval_id = lifecycle.train_until_approval(
        lambda: lifecycle.put_event("flywheel.operator", "RetrainRequested", {"model_name": MODEL})
    )
    lifecycle.approve(approval_id, "metrics reviewed")
    lifecycle.wait(arn)
    promotion = lifecycle.wait_for_new_execution("promotion", 0)
    lifecycle.wait(promotion["executionArn"])
    return records


def test_drift_triggers_exactly_one_retraining_run(lifecycle: Lifecycle) -> None:
    # Given a champion in production serving traffic
    records = champion_in_production(lifecycle)
    # When drifted traffic arrives and the drift scorer's hourly schedule comes due
    lifecycle.serve_traffic(records, requests=10, shift=1.0)
    lifecycle.serve_traffic(records, requests=10, shift=1.8)
    fired = lifecycle.driver.advance(3600 + 60)
    assert fired.count("flywheel-dev-drift-scorer-schedule") == 1
    # Then the drift report finds the features and the champion's scores moved (the
    # deciles of its holdout scores came with its reference profile from training)
    drift = lifecycle.monitoring_reports()["drift"]
    assert drift["drift_detected"] is True
    assert drift["prediction_drift"]["drifted"] is True
    assert drift["prediction_drift"]["window_rows"] == 400
    # And it explained the whole 400-row window with the champion's verified explainer,
    # in the space its training importance was measured in (ADR 73)
    attribution = drift["attribution_drift"]
    assert (attribution["status"], attribution["sample_rows"]) == ("scored", 400)
    assert (attribution["method"], attribution["space"]) == ("linear_shap", "log_odds")
    assert 0 < attribution["ndcg"] <= 1
    # And a drift retraining run starts and waits for approval with a new candidate
    retrain = lifecycle.wait_for_new_execution("training", 1)
    status, states = lifecycle.wait(retrain["executionArn"], until="RequestApproval")
    assert status == "RUNNING", states
    # And a second DriftDetected while that run is in progress is suppressed, and audited
    lifecycle.put_event("flywheel.monitoring", "DriftDetected", {"model_name": MODEL})
    second = lifecycle.wait_for_new_execution("training", 2)
    status, states = lifecycle.wait(second["executionArn"])
    assert (status, states[-1]) == ("SUCCEEDED", "Suppressed")
    actions = lifecycle.audit_actions()
    assert actions.count("retrain_triggered") == 2  # the manual run and the drift run
    assert actions.count("retrain_suppressed") == 1
    assert lifecycle.verify().ok


def test_wrong_labels_degrade_performance_and_the_retrain_is_suppressed_and_audited(
    lifecycle: Lifecycle,
) -> None:
    # Given a champion serving normal and then drifted traffic, and the drift run waiting
    records = champion_in_production(lifecycle)
    lifecycle.serve_traffic(records, requests=10, shift=1.0)
    lifecycle.serve_traffic(records, requests=10, shift=1.8)
    lifecycle.driver.advance(3600 + 60)
    drift_run = lifecycle.wait_for_new_execution("training", 1, reason="drift")
    lifecycle.wait(drift_run["executionArn"], until="RequestApproval")

    # When the ground truth comes back through POST /v1/feedback: true for the normal
    # traffic, wrong for every drifted prediction
    answers = lifecycle.label_traffic(wrong_when_shifted=True)
    assert {status for status, _ in answers} == {200}
    assert sum(body["stored"] for _, body in answers) == 400
    first = lifecycle.served[0]
    status, body = lifecycle.feedback(
        {"model": MODEL, "labels": [{"request_id": first.request_id, "row": 0, "label": "x"}]}
    )
    assert (status, body["error"]["code"]) == (422, "invalid_labels")

    # And the six-hourly performance monitor comes due
    known = len(lifecycle.executions("training"))
    fired = lifecycle.driver.advance(5 * 3600)

    # Then it ran once, reported the accuracy drop against the holdout, and published
    # PerformanceDegraded, whose training run was suppressed (the drift run holds the lock)
    assert fired.count("flywheel-dev-performance-monitor-schedule") == 1
    performance = lifecycle.wait_for_new_execution("training", known, reason="performance")
    status_text, states = lifecycle.wait(performance["executionArn"])
    assert (status_text, states[-1]) == ("SUCCEEDED", "Suppressed")
    [audited] = lifecycle.events_of("retrain_suppressed", "performance")
    assert audited["reason"].startswith("run ")
    assert "is in progress" in audited["reason"]
    reports = lifecycle.monitoring_reports()
    degraded = reports["performance"]
    assert degraded["performance"]["verdict"] == "degraded"
    window = degraded["performance"]["window"]
    assert (window["predictions"], window["labelled"]) == (400, 400)
    assert 0.4 < window["metrics"]["accuracy"] < 0.55  # right on normal rows, wrong on drifted
    assert degraded["bias"]["attribute"] == "mean radius"
    assert lifecycle.verify().ok
