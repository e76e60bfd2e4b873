"""Notifications: the stage's topic, every alarm's actions, the event rules and their text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from flywheel.audit.anchoring import AnchorOutcome
from flywheel.local.runtime import readable, render_template
from flywheel.workflows.approvals import announcement
from flywheel.workflows.importance import compare_importance
from flywheel.workflows.records import ApprovalDoc
from infra.config import load_stage_config
from infra.nag import flatten_reference
from tests.infra.synth import Synth, actions_of, function_by_name, role_statements

GOVERNANCE = "FlywheelGovernance"
MONITORING = "FlywheelMonitoring"


def topic_arn(synth: Synth) -> str:
    return f"arn:<AWS::Partition>:sns:<AWS::Region>:<AWS::AccountId>:{synth.prefix}-notifications"


def rules(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["Name"]: r["Properties"]
        for r in synth.resources("AWS::Events::Rule", GOVERNANCE).values()
    }


def topic_policy(synth: Synth) -> list[dict[str, Any]]:
    (policy,) = synth.resources("AWS::SNS::TopicPolicy", GOVERNANCE).values()
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def alarms(synth: Synth, stack: str | None = None) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm", stack).values()
    }


def test_one_topic_per_stage_encrypted_with_the_stage_key(synth: Synth) -> None:
    (topic,) = synth.resources("AWS::SNS::Topic").values()
    props = topic["Properties"]
    assert props["TopicName"] == f"{synth.prefix}-notifications"
    assert flatten_reference(props["KmsMasterKeyId"]).endswith(f":alias/{synth.prefix}-data")


def test_every_alarm_of_every_stack_notifies_the_topic_when_it_fires_and_clears(
    synth: Synth,
) -> None:
    found = synth.resources("AWS::CloudWatch::Alarm")
    assert {key.split("/")[0] for key in found} >= {GOVERNANCE, "FlywheelServing", MONITORING}
    for key, alarm in found.items():
        props = alarm["Properties"]
        for actions in ("AlarmActions", "OKActions"):
            assert [flatten_reference(a) for a in props.get(actions, [])] == [topic_arn(synth)], (
                key,
                actions,
            )
        # the topic takes CloudWatch only for this stage's alarms (by name)
        assert props["AlarmName"].startswith(f"{synth.prefix}-"), key


def test_the_topic_is_tls_only_and_names_who_may_publish(synth: Synth) -> None:
    statements = topic_policy(synth)
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert [d["Condition"] for d in denies] == [{"Bool": {"aws:SecureTransport": "false"}}]
    allows = {s["Principal"]["Service"]: s for s in statements if s["Effect"] == "Allow"}
    # AWS Budgets too: the example project sets llm.monthly_budget (tests/infra/test_infra_llm.py)
    assert set(allows) == {
        "events.amazonaws.com",
        "cloudwatch.amazonaws.com",
        "budgets.amazonaws.com",
    }
    # EventBridge: only the notification rules of this stage
    events_condition = allows["events.amazonaws.com"]["Condition"]
    logical_ids = {
        key.split("/")[1]: rule["Properties"]["Name"]
        for key, rule in synth.resources("AWS::Events::Rule", GOVERNANCE).items()
    }
    named = sorted(
        logical_ids[arn["Fn::GetAtt"][0]] for arn in events_condition["ArnEquals"]["aws:SourceArn"]
    )
    assert named == sorted(
        f"{synth.prefix}-notify-on-{t}"
        for t in (
            "ApprovalRequested", "AuditTamperDetected", "BiasViolation", "BudgetThresholdReached",
            "LlmQualityDegraded",
        )
    )  # fmt: skip
    # CloudWatch: only alarms named after the stage, in this account
    cloudwatch = allows["cloudwatch.amazonaws.com"]["Condition"]
    assert flatten_reference(cloudwatch["ArnLike"]["aws:SourceArn"]).endswith(
        f":alarm:{synth.prefix}-*"
    )
    # AWS Budgets: only this account's budgets
    budgets = allows["budgets.amazonaws.com"]["Condition"]
    assert flatten_reference(budgets["ArnLike"]["aws:SourceArn"]) == (
        "arn:<AWS::Partition>:budgets::<AWS::AccountId>:*"
    )
    for statement in allows.values():
        assert actions_of(statement) == ["sns:Publish"]
        assert statement["Condition"]["StringEquals"] == {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"}
        }


def test_the_data_key_lets_cloudwatch_and_eventbridge_encrypt_for_the_topic(synth: Synth) -> None:
    (key,) = [
        k for k in synth.resources("AWS::KMS::Key", "FlywheelData").values()
        if "KeySpec" not in k["Properties"]  # the data key (the audit key is an HMAC key)
    ]  # fmt: skip
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
        granted = [
            s
            for s in statements
            if service in json.dumps(s["Principal"])
            and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(actions_of(s))
        ]
        assert granted, service
        assert all(
            s["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
            for s in granted
        )


def test_notification_rules_listen_to_their_producers_only(synth: Synth) -> None:
    found = rules(synth)
    for detail_type, source in (
        ("ApprovalRequested", "flywheel.workflows"),
        ("BiasViolation", "flywheel.monitoring"),
        ("AuditTamperDetected", "flywheel.audit"),
        ("BudgetThresholdReached", "flywheel.llm"),
        ("LlmQualityDegraded", "flywheel.monitoring"),
    ):
        rule = found[f"{synth.prefix}-notify-on-{detail_type}"]
        assert rule["EventBusName"] == f"{synth.prefix}-bus"
        assert rule["EventPattern"] == {"source": [source], "detail-type": [detail_type]}
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Ref": _topic_logical_id(synth)}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert "Arn" in target["DeadLetterConfig"]


def _topic_logical_id(synth: Synth) -> str:
    (key,) = synth.resources("AWS::SNS::Topic", GOVERNANCE)
    return key.split("/")[1]


def _event(detail_type: str, source: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-01-01T12:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
    }


def _message(synth: Synth, detail_type: str, event: dict[str, Any]) -> tuple[str, str]:
    """(what the topic receives, as people read it) for ``event``, from the template."""
    (target,) = rules(synth)[f"{synth.prefix}-notify-on-{detail_type}"]["Targets"]
    transformer = target["InputTransformer"]
    raw = render_template(transformer["InputTemplate"], transformer["InputPathsMap"], event)
    for name in transformer["InputPathsMap"]:
        assert f"<{name}>" not in raw, f"{name} did not resolve in the sample event"
    # every line is JSON, most of them strings (EventBridge's multi-line text form)
    assert all(json.loads(line) is not None for line in raw.splitlines()), raw
    return raw, readable(raw)


def test_an_approval_request_message_says_what_waits_and_how_to_decide(synth: Synth) -> None:
    doc = ApprovalDoc(
        approval_id="3f2a9c0d4e5b6a7f8091a2b3c4d5e6f7",
        model="breast-cancer",
        version=7,
        artifact_sha256="0" * 64,
        artifact_uri="s3://artifacts/models/breast-cancer/7/model.onnx",
        task_token="token",
        execution_id="arn:aws:states:eu-west-1:123456789012:execution:training:run-1",
        requested_by="workflow:training/run-1",
        requested_at=datetime(2026, 1, 1, 12, tzinfo=UTC),
        expires_at=datetime(2026, 1, 2, 12, tzinfo=UTC),
        summary={
            "champion": {"version": 6},
            "importance": compare_importance(
                {"worst radius": 2.0, 'mean "texture"': 1.0},
                {'mean "texture"': 0.4, "worst radius": 0.3},
                champion_version=6,
            ).model_dump(mode="json"),
        },
    )
    detail = announcement(doc)
    raw, text = _message(synth, "ApprovalRequested", _event("ApprovalRequested", "x", detail))

    assert text.splitlines()[0] == "Flywheel: breast-cancer version 7 waits for approval"
    # what the candidate leans on, against the champion (feature names quoted as they are)
    assert (
        "vs champion v6: rank correlation -1.00, NDCG@2 0.94; "
        'top 2: worst radius (↑1), mean "texture" (↓1)'
    ) in text
    for part in (
        doc.approval_id,
        "requested by workflow:training/run-1",
        "expires at 2026-01-02T12:00:00",
        detail["decide"]["cli"],
        detail["decide"]["api"],  # the JSON body, quotes and all
    ):
        assert part in text, part
    assert detail["decide"]["cli"] in raw  # no quotes: readable even where lines stay quoted


def test_a_bias_violation_message_names_the_model_the_gaps_and_the_report(synth: Synth) -> None:
    detail = {
        "model_name": "breast-cancer",
        "version": 3,
        "attribute": "mean radius",
        "violations": ["demographic parity difference 0.759 > 0.100", "disparate impact 0.06"],
        "demographic_parity_difference": 0.759,
        "disparate_impact_ratio": 0.06,
        "equal_opportunity_difference": 0.935,
        "report": "s3://artifacts/reports/breast-cancer/performance/2026-01-01.html",
        "window_start": "2026-01-01T00:00:00+00:00",
        "window_end": "2026-01-02T00:00:00+00:00",
    }
    _, text = _message(synth, "BiasViolation", _event("BiasViolation", "x", detail))

    assert text.splitlines()[0] == (
        "Flywheel: breast-cancer version 3 broke its bias policy on mean radius"
    )
    for part in ("demographic parity difference 0.759", "disparate impact ratio 0.06",
                 "demographic parity difference 0.759 > 0.100", detail["report"],
                 "2026-01-01T00:00:00+00:00 to 2026-01-02T00:00:00+00:00"):  # fmt: skip
        assert part in text, part


def test_a_tamper_message_names_the_chain_the_problem_and_the_check(synth: Synth) -> None:
    outcome = AnchorOutcome(
        stream="breast-cancer", result="tampered", seq=12, problem='entry 3: edited ("actor")'
    )
    detail = outcome.model_dump(mode="json")
    _, text = _message(synth, "AuditTamperDetected", _event("AuditTamperDetected", "x", detail))

    assert text.splitlines()[0] == (
        "Flywheel: the audit chain breast-cancer failed verification (tampered, head 12)"
    )
    assert 'entry 3: edited ("actor")' in text
    assert "flywheel audit verify breast-cancer" in text


@pytest.mark.parametrize(
    ("period", "spent", "first", "since"),
    [
        ("day", "4.5", "has spent 90.0% of its day limit (2026-12-07)", "2026-12-07"),
        ("month", "50", "has spent 100.0% of its month limit (2026-12)", "2026-12-01"),
    ],
)
def test_a_budget_message_names_the_budget_its_spend_and_where_to_look(
    synth: Synth, period: str, spent: str, first: str, since: str
) -> None:
    # The detail exactly as the budget meter puts it
    from flywheel.llm.budgets import BudgetLine
    from flywheel.llm.meter import THRESHOLD_REACHED, BudgetMeter
    from flywheel.llm.policy import LlmPolicy

    line = BudgetLine(scope="prompt", name="ticket-summary", period=period,
                      period_key="2026-12-07" if period == "day" else "2026-12",
                      limit=Decimal(5 if period == "day" else 50))  # fmt: skip
    meter = BudgetMeter(LlmPolicy(), None, None, None)  # type: ignore[arg-type]
    percent = float(Decimal(spent) * 100 / line.limit)
    detail = meter.detail(line, Decimal(spent), percent, datetime(2026, 12, 7, 18, tzinfo=UTC))
    event = _event(THRESHOLD_REACHED, "flywheel.llm", detail)

    _, text = _message(synth, THRESHOLD_REACHED, event)

    lines = text.splitlines()
    assert lines[0] == f"Flywheel: LLM budget prompt:ticket-summary {first}"
    assert lines[1] == f"Spent {spent} of {line.limit} USD; the alert is set at 80.0%."
    assert "refused (HTTP 429) until the period ends" in text
    assert lines[-1] == f"Where the money went: flywheel cost report --since {since}"


def test_a_quality_message_names_the_prompt_version_breaches_and_the_report(
    synth: Synth,
) -> None:
    # The detail's shape as the LLM quality monitor publishes it (ADR 82)
    detail = {
        "prompt_name": "ticket-summary",
        "version": 3,
        "variant": "canary",
        "window_start": "2026-12-07T17:30:00.000Z",
        "window_end": "2026-12-07T18:30:00.000Z",
        "sampled": 40,
        "scored": 38,
        "metrics": {"toxicity_rate": 0.4211, "format_failure_rate": 0.0},
        "breaches": ['toxicity_rate 0.421 > 0.05 (16 of 38 answers, "quoted")'],
        "report_uri": "s3://artifacts/reports/ticket-summary/quality/2026-12-07T183000.html",
    }
    event = _event("LlmQualityDegraded", "flywheel.monitoring", detail)

    _, text = _message(synth, "LlmQualityDegraded", event)

    assert text.splitlines()[0] == (
        "Flywheel: prompt ticket-summary version 3 (canary) answers worse in production"
    )
    for part in (
        "2026-12-07T17:30:00.000Z to 2026-12-07T18:30:00.000Z: 38 of 40 sampled calls scored",
        'toxicity_rate 0.421 > 0.05 (16 of 38 answers, \\"quoted\\")',  # quotes stay escaped
        '"toxicity_rate": 0.4211',
        "rollback_canary: false",
        str(detail["report_uri"]),
    ):
        assert part in text, part


def _metric_source(synth: Synth, function_name: str) -> dict[str, str]:
    """Namespace and ``service`` of what a function emits through Powertools."""
    _, function = function_by_name(synth, function_name)
    env = function["Properties"]["Environment"]["Variables"]
    return {
        "namespace": env["POWERTOOLS_METRICS_NAMESPACE"],
        "service": env["POWERTOOLS_SERVICE_NAME"],
    }


def test_each_model_has_a_bias_violation_alarm_on_what_the_monitor_emits(synth: Synth) -> None:
    emitted = _metric_source(synth, f"{synth.prefix}-performance-monitor")
    found = alarms(synth, MONITORING)
    for model in load_stage_config(synth.stage).models:
        alarm = found[f"{synth.prefix}-{model.name}-bias-violation"]
        assert alarm["MetricName"] == "BiasViolation"
        assert alarm["Namespace"] == emitted["namespace"]
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "Model": model.name,
            "service": emitted["service"],
        }
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
            1,
            "GreaterThanOrEqualToThreshold",
        )


def test_a_tampered_chain_raises_an_alarm_on_what_the_anchor_job_emits(synth: Synth) -> None:
    emitted = _metric_source(synth, f"{synth.prefix}-audit-anchor")
    alarm = alarms(synth, GOVERNANCE)[f"{synth.prefix}-audit-chain-tampered"]
    assert alarm["MetricName"] == "ChainsTampered"
    assert alarm["Namespace"] == emitted["namespace"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": emitted["service"]}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_only_the_request_approval_step_announces_with_the_workflows_source(
    synth: Synth,
) -> None:
    for resource in synth.resources("AWS::Lambda::Function").values():
        name = resource["Properties"]["FunctionName"]
        if not name.startswith(f"{synth.prefix}-training-"):
            continue
        env = resource["Properties"]["Environment"]["Variables"]
        puts = [s for s in role_statements(synth, name) if "events:PutEvents" in actions_of(s)]
        if name == f"{synth.prefix}-training-request-approval":
            assert env["FLYWHEEL_EVENT_SOURCE"] == "flywheel.workflows"
            assert puts
            assert all(
                s["Condition"] == {"StringEquals": {"events:source": "flywheel.workflows"}}
                for s in puts
            )
        else:
            assert "FLYWHEEL_EVENT_SOURCE" not in env, name
            assert puts == [], name


def test_the_stages_subscribe_nobody_until_configured(synth: Synth) -> None:
    assert synth.resources("AWS::SNS::Subscription") == {}
    assert synth.resources("AWS::Chatbot::SlackChannelConfiguration") == {}


def test_emails_and_a_slack_channel_from_the_config_subscribe_to_the_topic(
    subscribed: Synth,
) -> None:
    # Given prod configured with two addresses and a Slack channel, When it is synthesized,
    # Then each address subscribes (undeliverable messages kept in the notifications DLQ)
    resources = subscribed.templates[GOVERNANCE]["Resources"]
    topic = {"Ref": _topic_logical_id(subscribed)}
    (dlq,) = [k for k, r in resources.items()
              if r["Type"] == "AWS::SQS::Queue"
              and r["Properties"]["QueueName"] == "flywheel-prod-notifications-dlq"]  # fmt: skip
    found = [r["Properties"] for r in subscribed.resources("AWS::SNS::Subscription").values()]
    assert sorted(s["Endpoint"] for s in found) == ["ana@example.com", "ops@example.com"]
    for subscription in found:
        assert (subscription["Protocol"], subscription["TopicArn"]) == ("email", topic)
        assert subscription["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}
        }
    # and Chatbot posts the topic's messages to the channel, Slack users reading CloudWatch
    # at most (Chatbot's default guardrail is AdministratorAccess)
    (slack,) = [
        r["Properties"]
        for r in subscribed.resources("AWS::Chatbot::SlackChannelConfiguration").values()
    ]
    assert (slack["SlackWorkspaceId"], slack["SlackChannelId"]) == ("T0123ABCD", "C0123ABCD")
    assert slack["SnsTopicArns"] == [topic]
    guardrails = [flatten_reference(p) for p in slack["GuardrailPolicies"]]
    assert guardrails == ["arn:<AWS::Partition>:iam::aws:policy/CloudWatchReadOnlyAccess"]
    # and SNS may use the data key for that encrypted queue (the stages without
    # subscriptions do not grant it)
    (key,) = [
        k for k in subscribed.resources("AWS::KMS::Key", "FlywheelData").values()
        if "KeySpec" not in k["Properties"]
    ]  # fmt: skip
    assert "sns.amazonaws.com" in json.dumps(key["Properties"]["KeyPolicy"])


def test_a_subscribed_stage_passes_the_rule_packs_and_cfn_lint(subscribed: Synth) -> None:
    from cfnlint.api import lint

    assert subscribed.error is None, subscribed.error
    report = subscribed.validation_report()
    assert [v["ruleName"] for p in report["pluginReports"] for v in p["violations"]] == []
    matches = lint(json.dumps(subscribed.templates[GOVERNANCE]), regions=["eu-west-1"])
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id != "W3005"] == []


def test_the_data_key_grants_sns_nothing_without_subscriptions(synth: Synth) -> None:
    (key,) = [
        k for k in synth.resources("AWS::KMS::Key", "FlywheelData").values()
        if "KeySpec" not in k["Properties"]
    ]  # fmt: skip
    assert "sns.amazonaws.com" not in json.dumps(key["Properties"]["KeyPolicy"])


def test_an_alarm_named_outside_the_stage_fails_synthesis() -> None:
    # The topic accepts CloudWatch only for alarm:<prefix>-*: such an alarm would never
    # reach anyone, so the aspect refuses it.
    from aws_cdk import App, Aspects, Duration, Stack
    from aws_cdk import aws_cloudwatch as cw

    from infra.constructs.notifications import AlarmNotifications
    from infra.naming import Naming

    app = App()
    stack = Stack(app, "Other")
    cw.Alarm(
        stack,
        "Foreign",
        alarm_name="someone-else-errors",
        metric=cw.Metric(namespace="X", metric_name="Errors", period=Duration.minutes(5)),
        threshold=1,
        evaluation_periods=1,
    )
    Aspects.of(app).add(AlarmNotifications(Naming("flywheel-dev")))
    with pytest.raises(Exception, match="must be named flywheel-dev-"):
        app.synth()
