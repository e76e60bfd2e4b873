"""Monitoring stack: triggers, retry policies and DLQs, monitors, dashboards."""

from __future__ import annotations

import json
from typing import Any

from infra.config import load_stage_config
from infra.nag import flatten_reference
from tests.infra.synth import (
    Synth,
    actions_of,
    function_by_name,
    resources_text,
    role_statements,
)

MONITORING = "FlywheelMonitoring"


def rules(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["Name"]: r["Properties"]
        for r in synth.resources("AWS::Events::Rule", MONITORING).values()
    }


def target_arn(target: dict[str, Any]) -> str:
    arn = target["Arn"]
    return (
        "".join(p if isinstance(p, str) else "" for p in arn["Fn::Join"][1])
        if isinstance(arn, dict)
        else arn
    )


def test_every_rule_target_has_a_retry_policy_and_a_dead_letter_queue(synth: Synth) -> None:
    found = rules(synth)
    assert found
    for name, rule in found.items():
        for target in rule["Targets"]:
            assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0, name
            assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0, name
            assert "Arn" in target["DeadLetterConfig"], name


def test_triggers_start_the_training_workflow_with_model_and_reason(synth: Synth) -> None:
    found = rules(synth)
    training = f"stateMachine:{synth.prefix}-training"
    for detail_type, source, reason in (
        ("DriftDetected", "flywheel.monitoring", "drift"),
        ("PerformanceDegraded", "flywheel.monitoring", "performance"),
        ("RetrainRequested", "flywheel.operator", "manual"),
    ):
        rule = found[f"{synth.prefix}-training-on-{detail_type}"]
        assert rule["EventBusName"] == f"{synth.prefix}-bus"
        assert rule["EventPattern"] == {"source": [source], "detail-type": [detail_type]}
        (target,) = rule["Targets"]
        assert target_arn(target).endswith(training)
        transformer = target["InputTransformer"]
        assert transformer["InputPathsMap"]["detail-model_name"] == "$.detail.model_name"
        template = transformer["InputTemplate"]
        assert '"model_name":<detail-model_name>' in template
        assert f'"reason":"{reason}"' in template


def test_each_scheduled_model_retrains_on_its_schedule(synth: Synth) -> None:
    found = rules(synth)
    for model in load_stage_config(synth.stage).models:
        name = f"{synth.prefix}-training-schedule-{model.name}"
        if model.training_schedule is None:
            assert name not in found
            continue
        rule = found[name]
        assert rule["ScheduleExpression"] == model.training_schedule
        (target,) = rule["Targets"]
        assert f'"model_name":"{model.name}"' in target["InputTransformer"]["InputTemplate"]


def test_version_approved_starts_the_promotion_workflow(synth: Synth) -> None:
    rule = rules(synth)[f"{synth.prefix}-promotion-on-VersionApproved"]
    # Only the approval function may emit this source (IAM condition events:source).
    assert rule["EventPattern"] == {
        "source": ["flywheel.approvals"],
        "detail-type": ["VersionApproved"],
    }
    (target,) = rule["Targets"]
    assert target_arn(target).endswith(f"stateMachine:{synth.prefix}-promotion")
    assert target["InputTransformer"]["InputPathsMap"]["detail-version"] == "$.detail.version"


def test_a_requested_promotion_starts_the_same_workflow_from_the_operator_source_only(
    synth: Synth,
) -> None:
    approved = rules(synth)[f"{synth.prefix}-promotion-on-VersionApproved"]
    rule = rules(synth)[f"{synth.prefix}-promotion-on-PromotionRequested"]
    # Only the retrain API's role may emit flywheel.operator (the bus policy says so).
    assert rule["EventPattern"] == {
        "source": ["flywheel.operator"],
        "detail-type": ["PromotionRequested"],
    }
    (target,) = rule["Targets"]
    (same,) = approved["Targets"]
    assert target_arn(target) == target_arn(same)
    assert target["InputTransformer"] == same["InputTransformer"]
    assert target["DeadLetterConfig"] == same["DeadLetterConfig"]


def test_dead_letter_queues_are_encrypted_and_tls_only(synth: Synth) -> None:
    queues = synth.resources("AWS::SQS::Queue", MONITORING)
    assert len(queues) == 3
    for queue in queues.values():
        key = flatten_reference(queue["Properties"]["KmsMasterKeyId"])
        assert key.endswith(f":alias/{synth.prefix}-data"), key  # the stage CMK, by alias
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    policies = synth.resources("AWS::SQS::QueuePolicy", MONITORING).values()
    denies = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denies) == 3


def test_dead_letter_queues_are_alarmed(synth: Synth) -> None:
    names = {
        a["Properties"]["AlarmName"]
        for a in synth.resources("AWS::CloudWatch::Alarm", MONITORING).values()
    }
    for queue in ("training-triggers-dlq", "promotion-triggers-dlq", "monitors-dlq"):
        assert f"{synth.prefix}-{queue}-not-empty" in names


def test_monitors_run_on_schedule_with_a_dlq_and_emit_only_their_source(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    found = rules(synth)
    for key, schedule in (
        ("drift-scorer", config.drift_schedule),
        ("performance-monitor", config.performance_schedule),
    ):
        name = f"{synth.prefix}-{key}"
        assert found[f"{name}-schedule"]["ScheduleExpression"] == schedule
        function = next(
            f for f in synth.resources("AWS::Lambda::Function", MONITORING).values()
            if f["Properties"]["FunctionName"] == name
        )  # fmt: skip
        assert "TargetArn" in function["Properties"]["DeadLetterConfig"]
        put_events = [s for s in role_statements(synth, name) if s["Action"] == "events:PutEvents"]
        assert put_events
        assert all(
            s["Condition"] == {"StringEquals": {"events:source": "flywheel.monitoring"}}
            for s in put_events
        )


def test_one_dashboard_per_model(synth: Synth) -> None:
    dashboards = {
        d["Properties"]["DashboardName"]: d["Properties"]
        for d in synth.resources("AWS::CloudWatch::Dashboard", MONITORING).values()
    }
    models = load_stage_config(synth.stage).models
    assert set(dashboards) == {f"{synth.prefix}-{m.name}" for m in models}
    for model in models:
        body = json.dumps(dashboards[f"{synth.prefix}-{model.name}"]["DashboardBody"])
        assert f"{synth.prefix}-{model.name}-canary-errorrate" in body
        assert "ValidationFailureRate" in body
        assert "PredictionDrift" in body


def _allowed(statements: list[dict[str, Any]], action: str, resource_part: str) -> bool:
    return any(
        s["Effect"] == "Allow"
        and any(
            a == action or (a.endswith("*") and action.startswith(a[:-1])) for a in actions_of(s)
        )
        and resource_part in resources_text(s)
        for s in statements
    )


def test_feedback_writes_only_labels_and_claims_them_in_the_idempotency_table(
    synth: Synth,
) -> None:
    statements = role_statements(synth, f"{synth.prefix}-feedback")
    features = f"{synth.prefix}-features"

    assert _allowed(statements, "s3:PutObject", f"{features}")
    puts = [
        resources_text(s) for s in statements
        if any(a.startswith("s3:PutObject") for a in actions_of(s))
    ]  # fmt: skip
    assert puts
    assert all("/labels/*" in text for text in puts)
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchGetItem"):
        assert _allowed(statements, action, "-IdempotencyTable"), action


def test_the_performance_monitor_reads_capture_and_labels_and_writes_reports(
    synth: Synth,
) -> None:
    statements = role_statements(synth, f"{synth.prefix}-performance-monitor")

    for prefix in ("/capture/*", "/labels/*"):
        assert _allowed(statements, "s3:GetObject", prefix), prefix
    assert _allowed(statements, "s3:PutObject", "/reports/*")
    assert _allowed(statements, "dynamodb:GetItem", "-RegistryTable")  # versions and model configs


def test_feature_views_are_materialized_on_schedule_one_run_at_a_time(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    name = f"{synth.prefix}-feature-materializer"
    assert rules(synth)[f"{name}-schedule"]["ScheduleExpression"] == (
        config.materialization_schedule
    )
    function = next(
        f for f in synth.resources("AWS::Lambda::Function", MONITORING).values()
        if f["Properties"]["FunctionName"] == name
    )  # fmt: skip
    props = function["Properties"]
    assert props["ReservedConcurrentExecutions"] == 1  # a slow run never races the next
    assert props["PackageType"] == "Image"  # reads Parquet: pyarrow, from the training image
    assert "TargetArn" in props["DeadLetterConfig"]
    statements = role_statements(synth, name)
    assert _allowed(statements, "s3:GetObject", "/offline/*")
    assert not _allowed(statements, "s3:PutObject", "/offline/*")  # never edits the offline store
    assert _allowed(statements, "dynamodb:PutItem", "-OnlineFeaturesTable")
    # watermarks: through the records writer's features alias, never the table itself
    assert not _allowed(statements, "dynamodb:PutItem", "-RegistryTable")
    assert _allowed(statements, "lambda:InvokeFunction", "records-writer:features")


def test_the_llm_quality_monitor_runs_hourly_for_the_stage_s_prompts(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    name = f"{synth.prefix}-llm-monitor"
    assert config.llm_monitor_schedule == "rate(1 hour)"
    rule = rules(synth)[f"{name}-schedule"]
    assert rule["ScheduleExpression"] == config.llm_monitor_schedule
    (target,) = rule["Targets"]
    assert "Arn" in target["DeadLetterConfig"]
    function = next(
        f for f in synth.resources("AWS::Lambda::Function", MONITORING).values()
        if f["Properties"]["FunctionName"] == name
    )  # fmt: skip
    props = function["Properties"]
    assert props["ReservedConcurrentExecutions"] == 1
    assert "TargetArn" in props["DeadLetterConfig"]
    env = props["Environment"]["Variables"]
    assert json.loads(env["FLYWHEEL_PROMPTS"]) == sorted(config.llm.prompts)
    assert env["FLYWHEEL_PROMPT_MONITORS"] == config.llm.monitors_json()
    assert env["FLYWHEEL_LLM_CAPTURE_PREFIX"] == "llm-capture/"
    assert env["FLYWHEEL_RECORDS_CAPABILITY"] == "monitors"
    # the prompt canary's check reads whether a degraded verdict rolls it back
    _, check = function_by_name(synth, f"{synth.prefix}-promotion-check-canary")
    check_env = check["Properties"]["Environment"]["Variables"]
    assert check_env["FLYWHEEL_PROMPT_MONITORS"] == config.llm.monitors_json()


def test_the_llm_quality_monitor_reads_capture_writes_reports_and_records_through_the_writer(
    synth: Synth,
) -> None:
    statements = role_statements(synth, f"{synth.prefix}-llm-monitor")

    assert _allowed(statements, "s3:GetObject", "/llm-capture/*")
    assert not _allowed(statements, "s3:GetObject", "/capture/*")  # not the models' traffic
    assert _allowed(statements, "s3:GetObject", "/prompts/*")
    assert _allowed(statements, "s3:PutObject", "/reports/*")
    puts = [
        resources_text(s) for s in statements
        if any(a.startswith("s3:PutObject") for a in actions_of(s))
    ]  # fmt: skip
    assert puts
    assert all("/reports/*" in text for text in puts)
    # verdicts and their audit entries: the records writer's monitors alias, never the tables
    assert _allowed(statements, "lambda:InvokeFunction", "records-writer:monitors")
    assert not _allowed(statements, "lambda:InvokeFunction", "records-writer:operations")
    assert not _allowed(statements, "dynamodb:PutItem", "-RegistryTable")
    assert _allowed(statements, "dynamodb:GetItem", "-RegistryTable")
    put_events = [s for s in statements if s["Action"] == "events:PutEvents"]
    assert put_events
    assert all(
        s["Condition"] == {"StringEquals": {"events:source": "flywheel.monitoring"}}
        for s in put_events
    )
