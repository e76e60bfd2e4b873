"""The workflow handlers on moto, driven by the synthesized definitions' state shapes.

Every Lambda task gets the whole state and its result lands at ``$.<key>.Payload``,
exactly as ``infra/workflows`` defines it; approvals go through the approval API's
handler with an API Gateway proxy event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from flywheel.registry.models import VersionStatus
from flywheel.workflows.approvals import ApprovalService
from flywheel.workflows.config import ModelConfigStore, parse_model_config
from flywheel.workflows.ports import AliasRouting
from flywheel.workflows.records import RUN_LOCK, RunLockDoc, model_key, read
from functions.approval_api import handler as approval_handler
from functions.promotion_steps import handler as promotion_handler
from functions.training_steps import handler as training_handler
from tests.asl_walker import FakeContext
from tests.aws_workflows import ALARMS, AwsWorkflows, provision
from tests.factories import version_draft
from tests.workflow_support import MODEL, approval_request_for, event, model_config, training_input

REVIEWER = "arn:aws:iam::123456789012:user/reviewer"
ORIGINAL_ROOT = promotion_handler._steps


@pytest.fixture
def aws(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AwsWorkflows:
    world = provision(local_names, monkeypatch)
    configure(world)
    return world


def configure(world: AwsWorkflows, **overrides: Any) -> None:
    store = world.registry.registry
    ModelConfigStore(world.registry, store).put(  # type: ignore[arg-type]
        parse_model_config(model_config(**overrides)), actor="ops"
    )


def approvals() -> ApprovalService:
    """The approval API's own service (same session, clock and tables as the handlers)."""
    return approval_handler._service()


def approve_via_api(world: AwsWorkflows, execution: Any) -> dict[str, Any]:
    """Approve the run's candidate through the API, then deliver the token to the run."""
    version = execution.state["registration"]["Payload"]["version"]
    found = approvals().find_for_version(MODEL, version)
    assert found is not None
    status, body = world.decide(found[0].approval_id, {"decision": "approve", "reason": "ok"})
    assert status == 200, body
    kind, sent = world.sent_task_results()[-1]
    assert kind == "SendTaskSuccess"
    assert sent["taskToken"] == execution.task_token
    execution.send_task_success(sent["taskToken"], json.loads(sent["output"]))
    return body


def test_train_approve_and_promote_through_the_handlers(aws: AwsWorkflows) -> None:
    # A drift trigger trains a candidate, which waits for approval ...
    execution = aws.start_training("drift")
    assert execution.status == "WAITING", execution.state.get("error")
    snapshot = execution.state["training_set"]["Payload"]["snapshot"]
    assert snapshot["uri"].startswith(
        f"s3://{aws.names['FLYWHEEL_ARTIFACTS_BUCKET']}/training-sets/"
    )
    version = aws.registry.get_version(MODEL, 1)
    assert version.status is VersionStatus.PENDING_APPROVAL
    # ... whose lineage points at the immutable snapshot (reproducible from S3)
    assert version.lineage.training_config["dataset"]["source"] == snapshot["uri"]
    assert version.lineage.dataset_sha256 == snapshot["sha256"]

    # A reviewer approves through the API: the run resumes and VersionApproved goes out
    body = approve_via_api(aws, execution)
    assert body["status"] == "approved"
    assert execution.status == "SUCCEEDED"
    assert execution.visited[-2:] == ["ReleaseRunLock", "Done"]
    [approved] = aws.version_approved_events()
    assert approved["detail"]["approver"] == REVIEWER

    # The promotion workflow publishes a pinned version, canaries it, and promotes it
    promotion = aws.promote(approved["detail"])
    assert promotion.status == "SUCCEEDED", promotion.state.get("error")
    assert promotion.visited[-2:] == ["PromoteAll", "Promoted"]
    routing = aws.alias()
    assert routing.weights == {}
    assert aws.pinned_model_version(routing.primary) == 1
    assert aws.registry.get_model(MODEL).champion == 1
    assert aws.actions()[-4:] == ["approval_requested", "approved", "canary_started", "promoted"]
    assert aws.registry.verify(MODEL).ok


def test_a_gate_rejection_registers_nothing_and_audits_why(aws: AwsWorkflows) -> None:
    configure(aws, gate={"minimums": {"roc_auc": 0.99999}})

    execution = aws.start_training("schedule")

    assert execution.visited[-2:] == ["ReleaseRunLockAfterGateRejection", "NotPromoted"]
    with pytest.raises(Exception, match="does not exist"):
        aws.registry.get_model(MODEL)
    entry = aws.last_entry()
    assert str(entry.action) == "gate_rejected"
    assert entry.reason.startswith("minimum.roc_auc: ")
    assert aws.actions()[-2:] == ["retrain_triggered", "gate_rejected"]


def lock_state(reason: str, name: str, **kwargs: Any) -> dict[str, Any]:
    """The state AcquireRunLock receives: the execution input plus ``$.run`` (Initialize)."""
    return {
        **training_input(reason, **kwargs),
        "run": {
            "execution_id": f"arn:aws:states:us-east-1:123456789012:execution:training:{name}",
            "execution_name": name,
            "started_at": "2026-01-01T12:00:00.000Z",
            "state_machine": "flywheel-test-training",
        },
    }


def test_cooldown_and_duplicate_triggers_are_suppressed_and_audited(aws: AwsWorkflows) -> None:
    context = FakeContext("training-acquire-run-lock")
    first = lock_state("schedule", "r1", event_id="evt-1")
    assert training_handler.acquire_run_lock(first, context)["suppressed"] is False
    assert training_handler.release_run_lock(first, context) == {"released": True}

    # EventBridge redelivers the same event, then drift fires within the cooldown
    again = training_handler.acquire_run_lock(
        lock_state("schedule", "r2", event_id="evt-1"), context
    )
    drift = training_handler.acquire_run_lock(lock_state("drift", "r3"), context)
    manual = training_handler.acquire_run_lock(lock_state("manual", "r4"), context)

    assert again == {
        **again,
        "suppressed": True,
        "reason": "duplicate event evt-1: it already started a run",
    }
    assert drift["suppressed"] is True
    assert drift["reason"].startswith("cooldown: the last run started at 2026-01-01T12:00:00")
    assert manual["suppressed"] is False
    assert aws.actions()[1:] == [
        "retrain_triggered",
        "retrain_suppressed",
        "retrain_suppressed",
        "retrain_triggered",
    ]
    found = read(aws.registry.registry, model_key(MODEL, RUN_LOCK), RunLockDoc)  # type: ignore[arg-type]
    assert found is not None
    assert found[0].run_id == "r4"


def test_a_failed_training_step_releases_the_lock_and_is_audited(aws: AwsWorkflows) -> None:
    # ValidateData writes its report (two objects); the snapshot's upload is refused
    aws.faults.fail_call("s3", "PutObject", 3, code="AccessDenied", status=403)

    execution = aws.start_training("schedule")

    assert execution.error == "TrainingFailed"
    assert execution.visited[-4:] == [
        "BuildTrainingSet",
        "ReleaseRunLockAfterFailure",
        "RecordFailure",
        "TrainingFailed",
    ]
    assert execution.state["lock_release"]["Payload"] == {"released": True}
    entry = aws.last_entry()
    assert str(entry.action) == "training_failed"
    assert entry.reason.startswith("BuildTrainingSet failed: ArtifactError: ")
    assert "AccessDenied" not in entry.reason  # the service's own text never leaks


# -- promotion failures: one test per step ------------------------------------------------------
@pytest.fixture
def champion(aws: AwsWorkflows) -> AwsWorkflows:
    """Version 1 promoted through the workflow; version 2 approved and announced."""
    for number in (1, 2):
        version = aws.registry.register(version_draft(name=MODEL, seed=number), actor="workflow")
        request = approval_request_for(
            version, requested_by="workflow", token=f"token-{number}", execution=f"run-{number}"
        )
        doc = approvals().request(request)
        status, _ = aws.decide(doc.approval_id, {"decision": "approve", "reason": "reviewed"})
        assert status == 200
        if number == 1:
            [announced] = aws.version_approved_events()
            assert aws.promote(announced["detail"]).status == "SUCCEEDED"
    assert aws.alias() == AliasRouting(primary="2")
    return aws


def inject_publish(aws: AwsWorkflows) -> None:
    aws.faults.fail("lambda", "PublishVersion")


def inject_shift(aws: AwsWorkflows) -> None:
    aws.faults.fail("lambda", "UpdateAlias", code="TooManyRequestsException", status=429)


def inject_check(aws: AwsWorkflows) -> None:
    aws.faults.fail("cloudwatch", "DescribeAlarms", code="AccessDenied", status=403)


def inject_promote(aws: AwsWorkflows) -> None:
    # Alias updates: ShiftAlias's succeeds, PromoteAll's fails, RecordFailure's succeeds.
    aws.faults.fail_call("lambda", "UpdateAlias", 2)


def inject_rollback(aws: AwsWorkflows) -> None:
    boto3.client("cloudwatch").set_alarm_state(
        AlarmName=ALARMS[0], StateValue="ALARM", StateReason="errors"
    )
    aws.faults.fail_call("lambda", "UpdateAlias", 2)  # the second alias update is Rollback's


@pytest.mark.parametrize(
    ("inject", "failed_step", "status"),
    [
        (inject_publish, "PublishVersion", VersionStatus.APPROVED),
        (inject_shift, "ShiftAlias", VersionStatus.ROLLED_BACK),
        (inject_check, "CheckCanary", VersionStatus.ROLLED_BACK),
        (inject_promote, "PromoteAll", VersionStatus.PRODUCTION),
        (inject_rollback, "Rollback", VersionStatus.ROLLED_BACK),
    ],
    ids=["publish_version", "shift_alias", "check_canary", "promote_all", "rollback"],
)
def test_a_failure_at_a_promotion_step_leaves_alias_registry_and_audit_consistent(
    champion: AwsWorkflows,
    inject: Callable[[AwsWorkflows], None],
    failed_step: str,
    status: VersionStatus,
) -> None:
    [announced] = champion.version_approved_events()
    assert announced["detail"]["version"] == 2
    inject(champion)

    execution = champion.promote(announced["detail"])

    assert execution.error == "PromotionFailed"
    assert execution.visited[-2:] == ["RecordFailure", "PromotionFailed"]
    assert execution.state["failure"]["Payload"]["failed_step"] == failed_step
    # alias live serves exactly the registry's champion (the last version approved and promoted)
    model = champion.registry.get_model(MODEL)
    routing = champion.alias()
    assert routing.weights == {}
    assert champion.pinned_model_version(routing.primary) == model.champion
    assert model.challenger is None
    assert champion.registry.get_version(MODEL, 2).status is status
    entry = champion.last_entry()
    assert str(entry.action) == "promotion_failed"
    assert entry.reason.startswith(f"{failed_step} failed: ")
    assert champion.registry.verify(MODEL).ok


def test_the_real_composition_root_reads_its_settings(
    aws: AwsWorkflows, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler's own cached root, built from the FLYWHEEL_* variables alone.
    ORIGINAL_ROOT.cache_clear()
    monkeypatch.setattr(promotion_handler, "_steps", ORIGINAL_ROOT)
    state = {**event("promotion_input.json"), "run": lock_state("manual", "p1")["run"]}

    result = promotion_handler.check_canary(state, FakeContext("promotion-check-canary"))

    assert result["healthy"] is True
    assert sorted(result["alarms"]) == sorted(ALARMS)
    ORIGINAL_ROOT.cache_clear()


def test_a_training_set_failing_its_expectations_stops_before_train(aws: AwsWorkflows) -> None:
    # Given an extract in S3 with a column that is the label in disguise
    from flywheel.training.datasets import load_dataset
    from flywheel.workflows.training import dataset_csv

    lines = dataset_csv(load_dataset("sklearn:breast_cancer")).decode().splitlines()
    rows = [f"{int(line.endswith('malignant'))},{line}" for line in lines[1:]]
    bucket = aws.names["FLYWHEEL_ARTIFACTS_BUCKET"]
    body = "\n".join([f"outcome_flag,{lines[0]}", *rows]) + "\n"
    boto3.client("s3").put_object(Bucket=bucket, Key="extracts/cancer.csv", Body=body.encode())
    source = f"s3://{bucket}/extracts/cancer.csv"
    configure(aws, training={"dataset": {"source": source, "target": "target"}})

    execution = aws.start_training("schedule")

    # Then the run fails at ValidateData, the lock is free and the failure is audited
    assert execution.visited[-4:] == [
        "ValidateData",
        "ReleaseRunLockAfterFailure",
        "RecordFailure",
        "TrainingFailed",
    ]
    assert "Train" not in execution.visited
    assert execution.state["lock_release"]["Payload"] == {"released": True}
    entry = aws.last_entry()
    assert str(entry.action) == "data_validation_failed"
    assert "failed: leakage.outcome_flag; report s3://" in entry.reason
    # The report is in the artifacts bucket next to the other reports, JSON and HTML
    key = entry.details["report"]
    report = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert report["passed"] is False
    assert [r["feature"] for r in report["results"] if r["status"] == "failed"] == ["outcome_flag"]
    html = boto3.client("s3").get_object(Bucket=bucket, Key=key.replace(".json", ".html"))
    assert b"leakage.outcome_flag" in html["Body"].read()
    assert aws.registry.verify(MODEL).ok
