"""Serving stack: inference per model on alias live, the REST API, approvals, alarms."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from flywheel.serving.http import MAX_BODY_BYTES
from flywheel.serving.models import ErrorBody
from infra.config import load_stage_config
from infra.constructs.inference_api import decimal_above
from tests.infra.synth import Synth, actions_of, allowed, function_by_name, role_statements

SERVING = "FlywheelServing"
EVENTS = Path(__file__).parents[1] / "events"
WRITE_ACTIONS = (
    "s3:PutObject",
    "s3:DeleteObject",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)


def test_each_model_gets_an_inference_function_with_reserved_concurrency(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    for model in config.models:
        _, function = function_by_name(synth, f"{synth.prefix}-inference-{model.name}")
        props = function["Properties"]
        assert props["Handler"] == "inference.handler.handler"
        assert props["Runtime"] == "python3.12"
        assert props["ReservedConcurrentExecutions"] == model.reserved_concurrency
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["MemorySize"] == model.memory_mb
        assert len(props["Layers"]) == 3  # domain + base + onnxruntime
        assert props["Environment"]["Variables"]["FLYWHEEL_MODEL_NAME"] == model.name
        assert props["Environment"]["Variables"]["FLYWHEEL_BACKEND"] == "aws"
        # Published versions resume from a snapshot taken after the model loaded,
        # unless provisioned concurrency (exclusive with SnapStart) keeps them warm.
        expected = None if model.provisioned_concurrency else {"ApplyOn": "PublishedVersions"}
        assert props.get("SnapStart") == expected


def test_all_zip_functions_share_one_code_asset_and_one_domain_layer(synth: Synth) -> None:
    functions = [
        f for f in synth.resources("AWS::Lambda::Function").values() if "Runtime" in f["Properties"]
    ]
    assert {json.dumps(f["Properties"]["Code"], sort_keys=True) for f in functions} == {
        json.dumps(functions[0]["Properties"]["Code"], sort_keys=True)
    }
    domain_layers = [
        layer
        for layer in synth.resources("AWS::Lambda::LayerVersion").values()
        if layer["Properties"]["LayerName"].endswith("-domain")
    ]
    # One domain layer per compute stack, all from the same asset (uploaded once).
    assert (
        len({json.dumps(lay["Properties"]["Content"], sort_keys=True) for lay in domain_layers})
        == 1
    )


def test_alias_live_starts_on_a_fixed_bootstrap_version_without_routing(synth: Synth) -> None:
    template = synth.template(SERVING)
    aliases = synth.resources("AWS::Lambda::Alias", SERVING)
    assert len(aliases) == len(load_stage_config(synth.stage).models)
    for alias in aliases.values():
        props = alias["Properties"]
        assert props["Name"] == "live"
        version_id = props["FunctionVersion"]["Fn::GetAtt"][0]
        assert "BootstrapVersion" in version_id
        # The promotion workflow owns the weights: CloudFormation must never reset them.
        assert "RoutingConfig" not in props
    template.has_resource(
        "AWS::Lambda::Version", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    )


def test_inference_cannot_write_models_registry_or_audit(synth: Synth) -> None:
    for model in load_stage_config(synth.stage).models:
        name = f"{synth.prefix}-inference-{model.name}"
        for action in WRITE_ACTIONS:
            assert not allowed(synth, name, action, "artifactsbucket"), action
            assert not allowed(synth, name, action, "RegistryTable"), action
            assert not allowed(synth, name, action, "AuditTable"), action
        assert not allowed(synth, name, "states:SendTaskSuccess")
        # What it may do: read its model, write its captures.
        assert allowed(
            synth,
            name,
            "s3:GetObject",
            f"artifactsbucket-<AWS::AccountId>-<AWS::Region>/models/{model.name}/*",
        )
        assert allowed(synth, name, "s3:PutObject", f"/capture/model={model.name}/*")


def test_only_the_approval_function_can_resume_a_paused_training(synth: Synth) -> None:
    approvers = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if {"states:SendTaskSuccess", "states:SendTaskFailure"} & set(actions_of(statement)):
                approvers.extend(r["Ref"] for r in policy["Properties"]["Roles"])
    assert len(approvers) == 1
    assert approvers[0].startswith("ApprovalsHandlerRole")
    name = f"{synth.prefix}-approval-api"
    assert allowed(synth, name, "states:SendTaskSuccess", f"stateMachine:{synth.prefix}-training")
    # Its decisions are recorded by the records writer, through the approvals alias only
    assert not allowed(synth, name, "dynamodb:UpdateItem", "RegistryTable")
    assert allowed(synth, name, "lambda:InvokeFunction", f"{synth.prefix}-records-writer:approvals")
    assert not allowed(synth, name, "lambda:InvokeFunction", "records-writer:workflows")
    assert not allowed(synth, name, "lambda:InvokeFunction", "records-writer:promotion-runs")
    # It announces approvals, and only as the approvals source.
    put_events = [s for s in role_statements(synth, name) if "events:PutEvents" in actions_of(s)]
    assert put_events
    assert all(
        s["Condition"] == {"StringEquals": {"events:source": "flywheel.approvals"}}
        for s in put_events
    )


def test_no_method_is_unauthenticated_and_iam_is_the_default(synth: Synth) -> None:
    methods = synth.resources("AWS::ApiGateway::Method", SERVING)
    assert methods
    assert {m["Properties"]["AuthorizationType"] for m in methods.values()} == {"AWS_IAM"}


def test_bodies_are_validated_for_every_content_type(synth: Synth) -> None:
    template = synth.template(SERVING)
    template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator",
        {"ValidateRequestBody": True, "ValidateRequestParameters": True},
    )
    lambda_methods = [
        m
        for m in synth.resources("AWS::ApiGateway::Method", SERVING).values()
        if m["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    ]
    assert lambda_methods
    for method in lambda_methods:
        props = method["Properties"]
        assert props["HttpMethod"] == "POST"
        assert "RequestValidatorId" in props
        assert set(props["RequestModels"]) == {"application/json", "$default"}
    template.has_resource_properties(
        "AWS::ApiGateway::Model",
        {
            "Name": "ApprovalDecision",
            "Schema": Match.object_like(
                {
                    "required": ["decision", "reason"],
                    "properties": Match.object_like(
                        {"decision": {"type": "string", "enum": ["approve", "reject"]}}
                    ),
                }
            ),
        },
    )


def test_routes(synth: Synth) -> None:
    paths = {
        r["Properties"]["PathPart"]
        for r in synth.resources("AWS::ApiGateway::Resource", SERVING).values()
    }
    models = {m.name for m in load_stage_config(synth.stage).models}
    assert {
        "v1", "models", "predict", "retrain", "approvals", "{id}", "feedback", "{name}"
    } | models <= paths  # fmt: skip
    # Retraining is reachable under every served name and under {name} alike: API Gateway
    # picks a static segment and never falls back to {name} below it.
    resources = synth.templates[SERVING]["Resources"]
    for operator_route in ("retrain", "promotions"):
        parents = {
            resources[r["Properties"]["ParentId"]["Ref"]]["Properties"]["PathPart"]
            for r in synth.resources("AWS::ApiGateway::Resource", SERVING).values()
            if r["Properties"]["PathPart"] == operator_route
        }
        assert parents == models | {"{name}"}, operator_route


def test_stage_is_throttled_traced_and_logs_without_bodies(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    stage = next(iter(synth.resources("AWS::ApiGateway::Stage", SERVING).values()))["Properties"]
    assert stage["StageName"] == synth.stage
    assert stage["TracingEnabled"] is True
    assert stage["MethodSettings"] == [
        {
            "DataTraceEnabled": False,
            "HttpMethod": "*",
            "LoggingLevel": config.api.logging_level,
            "MetricsEnabled": True,
            "ResourcePath": "/*",
            "ThrottlingBurstLimit": config.api.throttle_burst_limit,
            "ThrottlingRateLimit": config.api.throttle_rate_limit,
        }
    ]
    log_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "caller", "resourcePath"} <= set(log_format)
    assert not any("body" in v.lower() for v in log_format.values())


def test_endpoint_is_regional_with_a_tls12_minimum(synth: Synth) -> None:
    synth.template(SERVING).has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "SecurityPolicy": Match.string_like_regexp("^SecurityPolicy_TLS13_1_[23]_"),
            "EndpointAccessMode": "STRICT",
        },
    )


def test_waf_in_prod_only(dev: Synth, prod: Synth) -> None:
    prod.template(SERVING).has_resource_properties(
        "AWS::WAFv2::WebACL",
        {
            "Scope": "REGIONAL",
            "Rules": Match.array_with(
                [Match.object_like({"Name": "RateLimitPerIp", "Action": {"Block": {}}})]
            ),
        },
    )
    prod.template(SERVING).resource_count_is("AWS::WAFv2::WebACLAssociation", 1)
    dev.template(SERVING).resource_count_is("AWS::WAFv2::WebACL", 0)


def _batch_body(event: str, key: str, count: int) -> bytes:
    """A body of ``count`` items, repeating the first one of a sample event's body."""
    sample = json.loads(json.loads((EVENTS / event).read_text())["body"])
    return json.dumps({**sample, key: sample[key][:1] * count}).encode()


def test_waf_lets_documented_batches_through_and_answers_413_above_the_limit(
    prod: Synth,
) -> None:
    template = prod.template(SERVING)
    # The common rule set's SizeRestrictions_BODY (any body over 8 KB) only counts.
    template.has_resource_properties(
        "AWS::WAFv2::WebACL",
        {
            "Rules": Match.array_with(
                [
                    Match.object_like(
                        {
                            "Name": "AWSManagedRulesCommonRuleSet",
                            "OverrideAction": {"None": {}},
                            "Statement": {
                                "ManagedRuleGroupStatement": Match.object_like(
                                    {
                                        "Name": "AWSManagedRulesCommonRuleSet",
                                        "RuleActionOverrides": [
                                            {
                                                "Name": "SizeRestrictions_BODY",
                                                "ActionToUse": {"Count": {}},
                                            }
                                        ],
                                    }
                                )
                            },
                        }
                    )
                ]
            )
        },
    )
    (acl,) = (a["Properties"] for a in prod.resources("AWS::WAFv2::WebACL", SERVING).values())
    assert "SizeConstraintStatement" not in json.dumps(acl)  # WAF sees 16 KB at most
    (size_rule,) = [r for r in acl["Rules"] if "RegexMatchStatement" in r["Statement"]]
    assert size_rule["Priority"] == min(r["Priority"] for r in acl["Rules"])
    statement = size_rule["Statement"]["RegexMatchStatement"]
    assert statement["FieldToMatch"] == {"SingleHeader": {"Name": "content-length"}}
    assert statement["TextTransformations"] == [{"Priority": 0, "Type": "NONE"}]

    def blocked(content_length: int) -> bool:
        return re.search(statement["RegexString"], str(content_length)) is not None

    # The documented limits pass: 100 records, 100 labels, anything up to 6 MB.
    predict_100 = _batch_body("predict_batch.json", "records", 100)
    feedback_100 = _batch_body("feedback_batch.json", "labels", 100)
    assert len(predict_100) > 8192  # what SizeRestrictions_BODY alone would block
    for size in (len(predict_100), len(feedback_100), 8193, 65_537, MAX_BODY_BYTES):
        assert not blocked(size), size
    for size in (MAX_BODY_BYTES + 1, 10 * 1024 * 1024, 10**12):
        assert blocked(size), size
    # Above it, the handler's own 413 answer.
    response = size_rule["Action"]["Block"]["CustomResponse"]
    assert response["ResponseCode"] == 413
    body = acl["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    assert body["ContentType"] == "APPLICATION_JSON"
    error = ErrorBody.model_validate_json(body["Content"]).error
    assert (error.code, error.message) == (
        "payload_too_large",
        f"the body is larger than {MAX_BODY_BYTES} bytes",
    )


@pytest.mark.parametrize("limit", [0, 8, 9, 99, 100, 1999, 6_291_456])
def test_decimal_above_matches_exactly_the_larger_numbers(limit: int) -> None:
    pattern = re.compile(decimal_above(limit))
    around = range(max(limit - 2000, 0), limit + 2000)
    for n in (*around, limit * 10, limit * 10 + 9, 10**15):
        assert (pattern.search(str(n)) is not None) == (n > limit), n
        assert (pattern.search(f"00{n}") is not None) == (n > limit), n
    assert pattern.search(f"{limit + 1}0x") is None


def test_canary_alarms_judge_the_canarys_own_traffic(synth: Synth) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm", SERVING).values()
    }
    namespace = f"Flywheel/{synth.stage}"
    for model in load_stage_config(synth.stage).models:
        name = f"{synth.prefix}-{model.name}-canary"
        canary = [{"Name": "Model", "Value": model.name}, {"Name": "Variant", "Value": "canary"}]
        latency = alarms[f"{name}-latencyp99"]
        assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("Latency", "p99")
        assert (latency["Namespace"], latency["Dimensions"]) == (namespace, canary)
        for metric, statistic in (
            ("ValidationFailureRate", "Average"),
            ("PredictionDrift", "Maximum"),
        ):
            alarm = alarms[f"{name}-{metric.lower()}"]
            assert (alarm["MetricName"], alarm["Statistic"]) == (metric, statistic)
            assert (alarm["Namespace"], alarm["Dimensions"]) == (namespace, canary)
        error_rate = alarms[f"{name}-errorrate"]["Metrics"]
        assert any(
            m.get("Expression", "").endswith("100 * errors / requests, 0)") for m in error_rate
        )
        inputs = {m["Id"]: m["MetricStat"]["Metric"] for m in error_rate if "MetricStat" in m}
        assert {i["MetricName"] for i in inputs.values()} == {"Errors", "Requests"}
        assert all(i["Dimensions"] == canary for i in inputs.values())
        # Crashes (no custom metric at all) show up as Lambda errors on alias live.
        crashes = alarms[f"{name}-crashes"]
        assert (crashes["Namespace"], crashes["MetricName"], crashes["Threshold"]) == (
            "AWS/Lambda", "Errors", 0,
        )  # fmt: skip
        resource = next(d for d in crashes["Dimensions"] if d["Name"] == "Resource")
        assert resource["Value"]["Fn::Join"][1][-1] == ":live"
        for alarm in (a for n, a in alarms.items() if n.startswith(name)):
            assert alarm["TreatMissingData"] == "notBreaching"
            assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert f"{synth.prefix}-{model.name}-capture-failures" in alarms


def test_check_canary_is_told_exactly_these_alarms(synth: Synth) -> None:
    _, function = function_by_name(synth, f"{synth.prefix}-promotion-check-canary")
    listed = json.loads(
        function["Properties"]["Environment"]["Variables"]["FLYWHEEL_CANARY_ALARMS"]
    )
    names = {
        a["Properties"]["AlarmName"]
        for a in synth.resources("AWS::CloudWatch::Alarm", SERVING).values()
        if "-canary-" in a["Properties"]["AlarmName"]
    }
    assert {n for alarms in listed.values() for n in alarms} == names


def test_check_canary_reads_captured_predictions_and_reference_profiles_only(
    synth: Synth,
) -> None:
    name = f"{synth.prefix}-promotion-check-canary"
    assert allowed(synth, name, "s3:GetObject", "featuresbucket")
    assert allowed(synth, name, "s3:GetObject", "/capture/*")
    assert allowed(synth, name, "s3:GetObject", "artifactsbucket")
    assert allowed(synth, name, "s3:GetObject", "/models/*")  # the holdout's score deciles
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not allowed(synth, name, action, "artifactsbucket"), action
        assert not allowed(synth, name, action, "featuresbucket"), action


def test_every_log_group_has_a_retention(synth: Synth) -> None:
    days = load_stage_config(synth.stage).log_retention_days
    groups = synth.resources("AWS::Logs::LogGroup")
    assert groups
    assert {g["Properties"]["RetentionInDays"] for g in groups.values()} == {days}
