"""The workflow adapters on moto: Lambda versions and aliases, alarms, events, task tokens."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from flywheel.adapters.aws_workflows import (
    CloudWatchCanaryHealth,
    EventBridgePublisher,
    LambdaServingControl,
    StepFunctionsTaskTokens,
)
from flywheel.cli.app import app
from flywheel.errors import ConcurrentModificationError, ServingControlError, TaskTokenError
from flywheel.workflows.ports import AlarmState, AliasRouting
from tests.aws_workflows import ALARMS, BUS, FUNCTION, AwsWorkflows, provision
from tests.workflow_support import MODEL

#: The Lambda operations the promotion's publish step is allowed, and nothing else.
PUBLISH_OPERATIONS = {
    "GetFunctionConfiguration",
    "ListVersionsByFunction",
    "UpdateFunctionConfiguration",
    "PublishVersion",
}


@pytest.fixture
def aws(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AwsWorkflows:
    return provision(local_names, monkeypatch)


def test_publishing_pins_the_model_version_and_is_idempotent(aws: AwsWorkflows) -> None:
    serving = LambdaServingControl({MODEL: FUNCTION}, client=aws.session.client("lambda"))

    first = serving.publish(MODEL, 3)
    again = serving.publish(MODEL, 3)
    other = serving.publish(MODEL, 4)

    assert (first.lambda_version, again.lambda_version, other.lambda_version) == ("2", "2", "3")
    assert aws.pinned_model_version("2") == 3
    assert aws.pinned_model_version("3") == 4


def test_publishing_needs_only_the_publish_steps_rights_and_changes_only_the_environment(
    aws: AwsWorkflows,
) -> None:
    serving = LambdaServingControl({MODEL: FUNCTION}, client=aws.session.client("lambda"))

    serving.publish(MODEL, 3)
    serving.publish(MODEL, 3)  # found again: nothing written

    # Every Lambda call is one the publish step's policy allows (PUBLISH_ACTIONS in
    # infra/constructs/promotion_workflow.py; tests/infra/test_infra_access.py) ...
    called = {key.split(".", 1)[1] for key, _ in aws.faults.calls if key.startswith("lambda.")}
    assert called <= PUBLISH_OPERATIONS
    # ... and the one write sends no layers, handler or code: the policy's lambda:Layer
    # condition never stands in the way, and the pin is the only change.
    [update] = aws.faults.called("lambda.UpdateFunctionConfiguration")
    assert set(update) <= {"FunctionName", "Environment", "RevisionId"}
    assert update["Environment"]["Variables"]["FLYWHEEL_MODEL_VERSION"] == "3"


def test_routing_moves_alias_live(aws: AwsWorkflows) -> None:
    serving = LambdaServingControl({MODEL: FUNCTION}, client=aws.session.client("lambda"))
    canary = serving.publish(MODEL, 1).lambda_version

    serving.route(MODEL, AliasRouting(primary="1", weights={canary: 0.25}))
    assert serving.routing(MODEL) == AliasRouting(primary="1", weights={canary: 0.25})
    serving.route(MODEL, AliasRouting(primary=canary))
    assert serving.routing(MODEL) == AliasRouting(primary=canary)


def test_lambda_failures_become_our_errors(aws: AwsWorkflows) -> None:
    serving = LambdaServingControl(
        {MODEL: FUNCTION, "other": "missing-fn"}, client=aws.session.client("lambda")
    )
    aws.faults.fail("lambda", "UpdateAlias", code="PreconditionFailedException", status=412)

    with pytest.raises(ConcurrentModificationError):
        serving.route(MODEL, AliasRouting(primary="1"))
    with pytest.raises(ServingControlError, match="failed") as caught:
        serving.routing("other")
    assert "ResourceNotFound" not in caught.value.message
    with pytest.raises(ServingControlError, match="no inference function"):
        serving.publish("unknown", 1)


def test_alarm_states_treat_missing_alarms_as_unhealthy(aws: AwsWorkflows) -> None:
    import boto3

    boto3.client("cloudwatch").set_alarm_state(
        AlarmName=ALARMS[1], StateValue="ALARM", StateReason="p99"
    )
    health = CloudWatchCanaryHealth(
        {MODEL: [*ALARMS, "deleted-alarm"]}, client=aws.session.client("cloudwatch")
    )

    states = health.alarm_states(MODEL)

    assert states == {
        ALARMS[0]: AlarmState.OK,
        ALARMS[1]: AlarmState.ALARM,
        ALARMS[2]: AlarmState.OK,
        "deleted-alarm": AlarmState.MISSING,
    }
    assert health.alarm_states("unconfigured") == {}


def test_events_reach_the_bus_and_refused_tokens_are_told_apart(aws: AwsWorkflows) -> None:
    publisher = EventBridgePublisher(
        BUS, source="flywheel.approvals", client=aws.session.client("events")
    )
    publisher.publish("VersionApproved", {"model_name": MODEL, "version": 9})
    [delivered] = aws.version_approved_events()
    assert delivered["detail"] == {"model_name": MODEL, "version": 9}

    tokens = StepFunctionsTaskTokens(client=aws.session.client("stepfunctions"))
    tokens.succeed("token-1", {"ok": True})
    aws.faults.fail("sfn", "SendTaskSuccess", code="TaskTimedOut", status=400)
    with pytest.raises(TaskTokenError) as caught:
        tokens.succeed("token-2", {"ok": True})
    assert caught.value.details == {"reason": "TaskTimedOut"}


def test_flywheel_models_configure_stores_an_audited_config(
    aws: AwsWorkflows, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_ACTOR", raising=False)  # in AWS mode, the STS identity acts
    config = tmp_path / "cancer.yaml"
    config.write_text(
        "training:\n  task: classification\n  dataset: {source: 'sklearn:breast_cancer'}\n"
        "  estimator: logistic_regression\n"
        "gate: {metric: roc_auc, min_improvement: 0.005}\n"
        "retraining: {cooldown_minutes: 120}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("metric: roc_auc", "metric: rmse"))
    runner = CliRunner()

    result = runner.invoke(
        app,
        ["models", "configure", MODEL, str(config), "-r", "first policy"],
        catch_exceptions=False,
    )
    refused = runner.invoke(app, ["models", "configure", MODEL, str(bad)], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "config revision 1" in printed
    assert "gate roc_auc >= champion + 0.005, cooldown 120 min" in printed
    entry = aws.last_entry()
    assert (entry.action, entry.actor, entry.reason) == (
        "model_configured",
        boto3.client("sts").get_caller_identity()["Arn"],
        "first policy",
    )
    assert refused.exit_code == 1
    assert "gate.metric: unknown metric 'rmse'" in " ".join(refused.output.split())
    assert aws.actions() == ["model_configured"]
