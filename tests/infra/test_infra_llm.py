"""The LLM gateway in a stage: its function and role, its route, the prompts' canary alarms,
the stage's AWS budget, and the same route on the local runtime (synthesized templates)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from flywheel.llm.policy import LlmPolicy
from flywheel.local.deployment import LocalDeployment
from flywheel.local.rest_api import RestApiDefinition
from flywheel.settings import Settings
from infra.config import StageConfig, load_stage_config
from infra.constructs.llm_gateway import PROVIDER_TIMEOUT_SECONDS, bedrock_model_ids
from infra.nag import flatten_reference, statement_findings
from tests.infra.synth import (
    Synth,
    actions_of,
    can,
    function_by_name,
    role_named,
    role_statements,
    statements_of_role,
    synthesize,
)

SERVING = "FlywheelServing"
GOVERNANCE = "FlywheelGovernance"
PROMPT = "ticket-summary"
ROUTE = f"/v1/prompts/{PROMPT}/invoke"


def arn(service: str, rest: str) -> str:
    return f"arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{rest}"


def obj(synth: Synth, bucket: str, key: str) -> str:
    return f"arn:<AWS::Partition>:s3:::{synth.prefix}-{bucket}-<AWS::AccountId>-<AWS::Region>/{key}"


def gateway(synth: Synth) -> dict[str, Any]:
    _, function = function_by_name(synth, f"{synth.prefix}-llm-gateway")
    return dict(function["Properties"])


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Dev without an ``llm:`` section: no prompt declared, no budget."""
    data = {**load_stage_config("dev").model_dump(), "llm": {}}
    return synthesize("dev", tmp_path_factory.mktemp("cdk-bare"), StageConfig.model_validate(data))


# -- the function -----------------------------------------------------------------------------
def test_the_gateway_runs_its_handler_on_the_control_layers_with_the_stages_policy(
    synth: Synth,
) -> None:
    props = gateway(synth)
    assert props["Handler"] == "llm_gateway.handler.handler"
    layers = [
        synth.templates[SERVING]["Resources"][ref["Ref"]]["Properties"]["LayerName"]
        for ref in props["Layers"]
    ]
    # the domain and base layers: no ONNX Runtime, no model to load
    assert sorted(layers) == [f"{synth.prefix}-serving-base", f"{synth.prefix}-serving-domain"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    variables = props["Environment"]["Variables"]
    config = load_stage_config(synth.stage)
    # The stage's policy, without the prompts' canary steps (the promotion workflow's).
    policy = json.loads(variables["FLYWHEEL_LLM_POLICY"])
    assert LlmPolicy.model_validate(policy) == config.llm.policy()
    assert "canary" not in variables["FLYWHEEL_LLM_POLICY"]
    expected_budget = Decimal("0.5" if synth.stage == "dev" else 400)
    assert LlmPolicy.model_validate(policy).prompt(PROMPT).budget.month == expected_budget
    assert variables["FLYWHEEL_LLM_USAGE_TABLE"] == f"{synth.prefix}-LlmUsageTable"
    assert variables["FLYWHEEL_LLM_CAPTURE_PREFIX"] == "llm-capture/"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == f"Flywheel/{synth.stage}"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "llm-gateway"
    assert float(variables["FLYWHEEL_ROLE_REFRESH_SECONDS"]) > 0
    # A provider call and one retry end before the function (and API Gateway) give up.
    assert 2 * PROVIDER_TIMEOUT_SECONDS < props["Timeout"] <= 29
    assert float(variables["FLYWHEEL_LLM_TIMEOUT_SECONDS"]) == PROVIDER_TIMEOUT_SECONDS


def test_the_gateways_environment_reaches_the_stage_and_fits_lambdas_limit(synth: Synth) -> None:
    variables = gateway(synth)["Environment"]["Variables"]
    resolved = {
        key: value if isinstance(value, str) else _resolve(value)
        for key, value in variables.items()
    }
    settings = Settings.of_deployment(resolved, backend="aws")
    assert settings.llm_usage_table == f"{synth.prefix}-LlmUsageTable"
    assert settings.llm_policy == json.loads(variables["FLYWHEEL_LLM_POLICY"])
    assert settings.llm_capture_prefix == "llm-capture/"
    # Lambda caps keys and values together at 4 KB.
    assert sum(len(k) + len(v) for k, v in resolved.items()) < 4096


def _resolve(value: Any) -> str:
    """A template value with a real account and region (as deployed)."""
    text = flatten_reference(value)
    return text.replace("<AWS::AccountId>", "111122223333").replace("<AWS::Region>", "eu-west-1")


# -- its permissions ------------------------------------------------------------------------
def test_the_gateway_reads_prompts_and_routing_writes_usage_and_captures_only(
    synth: Synth,
) -> None:
    statements = role_statements(synth, f"{synth.prefix}-llm-gateway")
    registry = arn("dynamodb", f"table/{synth.prefix}-RegistryTable")
    usage = arn("dynamodb", f"table/{synth.prefix}-LlmUsageTable")
    # The registry: read by key, never written, its indexes not needed.
    for action in ("dynamodb:GetItem", "dynamodb:Query"):
        assert can(statements, action, registry), action
    assert not can(statements, "dynamodb:Query", f"{registry}/index/models-index")
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert not can(statements, action, registry), action
    assert not can(
        statements, "dynamodb:GetItem", arn("dynamodb", f"table/{synth.prefix}-AuditTable")
    )
    # The usage table: reservations and settlements, no scans, no deletes.
    for action in ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem",
                   "dynamodb:ConditionCheckItem"):  # fmt: skip
        assert can(statements, action, usage), action
    for action in ("dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
        assert not can(statements, action, usage), action
    # Prompt specs, not models; captures under llm-capture/ only, never read back.
    spec = obj(synth, "artifactsbucket", f"prompts/{PROMPT}/r-1/prompt.json")
    assert can(statements, "s3:GetObject", spec)
    assert not can(statements, "s3:PutObject", spec)
    assert not can(
        statements, "s3:GetObject", obj(synth, "artifactsbucket", "models/m/1/model.onnx")
    )
    capture = obj(
        synth,
        "featuresbucket",
        f"llm-capture/prompt={PROMPT}/version=1/dt=2026-12-07/hour=18/a.jsonl.gz",
    )
    assert can(statements, "s3:PutObject", capture)
    assert not can(statements, "s3:GetObject", capture)
    assert not can(statements, "s3:PutObject", obj(synth, "featuresbucket", "capture/model=m/x"))
    # Nothing of the records writer, the bus or the functions.
    assert not can(
        statements,
        "lambda:InvokeFunction",
        arn("lambda", f"function:{synth.prefix}-records-writer:operations"),
    )
    assert not can(statements, "events:PutEvents", arn("events", f"event-bus/{synth.prefix}-bus"))


def test_the_gateway_may_converse_with_the_priced_bedrock_models_of_its_region(
    synth: Synth,
) -> None:
    statements = role_statements(synth, f"{synth.prefix}-llm-gateway")

    def model(model_id: str, region: str = "<AWS::Region>") -> str:
        return f"arn:<AWS::Partition>:bedrock:{region}::foundation-model/{model_id}"

    priced = bedrock_model_ids()
    assert "amazon.nova-lite-v1:0" in priced  # ticket-summary v2's model
    for model_id in priced:
        assert can(statements, "bedrock:InvokeModel", model(model_id)), model_id
    assert not can(
        statements, "bedrock:InvokeModel", model("anthropic.claude-3-opus-20240229-v1:0")
    )
    assert not can(statements, "bedrock:InvokeModel", model(priced[0], "us-west-2"))
    assert not can(statements, "bedrock:InvokeModelWithResponseStream", model(priced[0]))
    guardrail = arn("bedrock", "guardrail/abc123xyz")
    assert can(statements, "bedrock:ApplyGuardrail", guardrail)
    assert not can(statements, "bedrock:CreateGuardrail", guardrail)


def test_the_gateways_wildcards_are_the_reviewed_ones(synth: Synth) -> None:
    found = {
        finding.replace(synth.prefix, "{prefix}")
        for statement in role_statements(synth, f"{synth.prefix}-llm-gateway")
        for finding in statement_findings(statement)
    }
    partition = "arn:<AWS::Partition>"
    assert found == {
        "Resource::*",  # X-Ray only
        f"Resource::{partition}:kms:<AWS::Region>:<AWS::AccountId>:key/*",  # by alias
        f"Resource::{partition}:s3:::{{prefix}}-artifactsbucket-<AWS::AccountId>-<AWS::Region>/prompts/*",
        f"Resource::{partition}:s3:::{{prefix}}-featuresbucket-<AWS::AccountId>-<AWS::Region>/llm-capture/*",
        f"Resource::{partition}:bedrock:<AWS::Region>:<AWS::AccountId>:guardrail/*",
        "Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*", "Action::s3:Abort*",
        "Action::kms:ReEncrypt*", "Action::kms:GenerateDataKey*",
    }  # fmt: skip
    [xray] = [
        s for s in role_statements(synth, f"{synth.prefix}-llm-gateway") if s["Resource"] == "*"
    ]
    assert {a.split(":")[0] for a in actions_of(xray)} == {"xray"}


# -- the route --------------------------------------------------------------------------------
def test_the_prompts_route_is_iam_authenticated_and_its_body_validated(synth: Synth) -> None:
    resources = synth.templates[SERVING]["Resources"]

    def path_of(resource_id: str) -> str:
        props = resources[resource_id]["Properties"]
        parent = props["ParentId"]
        above = path_of(parent["Ref"]) if "Ref" in parent else ""
        return f"{above}/{props['PathPart']}"

    [method] = [
        m["Properties"]
        for m in synth.resources("AWS::ApiGateway::Method", SERVING).values()
        if path_of(m["Properties"]["ResourceId"]["Ref"]) == "/v1/prompts/{name}/invoke"
    ]
    assert (method["HttpMethod"], method["AuthorizationType"]) == ("POST", "AWS_IAM")
    validator = resources[method["RequestValidatorId"]["Ref"]]["Properties"]
    assert validator["ValidateRequestBody"] is True
    models = {
        content_type: resources[ref["Ref"]]["Properties"]["Name"]
        for content_type, ref in method["RequestModels"].items()
    }
    assert models == {"application/json": "InvokePromptRequest", "$default": "InvokePromptRequest"}
    integration = method["Integration"]
    assert integration["Type"] == "AWS_PROXY"
    target = json.dumps(integration["Uri"])
    assert "LlmGatewayHandlerFunction" in target


def test_the_local_runtime_routes_the_prompts_route_to_the_gateway(synth: Synth) -> None:
    # The local runtime builds its REST API and its functions from these templates.
    deployment = LocalDeployment(synth.templates)
    api = RestApiDefinition.from_deployment(deployment)
    assert api is not None
    found = api.route("POST", ROUTE)
    assert found is not None
    method, params = found
    assert (method.authorization, params) == ("AWS_IAM", {"name": PROMPT})
    assert method.integration.function_arn == (
        f"arn:aws:lambda:us-east-1:123456789012:function:{synth.prefix}-llm-gateway"
    )
    assert api.route("GET", ROUTE) is None
    [function] = [f for f in deployment.functions() if f.name == f"{synth.prefix}-llm-gateway"]
    assert function.handler == "llm_gateway.handler.handler"
    assert json.loads(function.environment["FLYWHEEL_LLM_POLICY"])["prompts"][PROMPT]


# -- who may call it --------------------------------------------------------------------------
def route(synth: Synth, method: str, path: str) -> str:
    return arn("execute-api", f"<Api>/{synth.stage}/{method}{path}")


def test_an_application_may_call_prompts_and_nothing_else(synth: Synth) -> None:
    name = f"{synth.prefix}-application"
    stack, role_id = role_named(synth, name)
    role = synth.templates[stack]["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert flatten_reference(trust["Principal"]["AWS"]).endswith(":iam::<AWS::AccountId>:root")
    assert "Condition" not in trust  # services of the account: no MFA
    statements = statements_of_role(synth, stack, role_id)
    assert [actions_of(s) for s in statements] == [["execute-api:Invoke"]]
    assert can(statements, "execute-api:Invoke", route(synth, "POST", ROUTE))
    for method, path in (
        ("POST", "/v1/models/breast-cancer/predict"),
        ("POST", "/v1/models/breast-cancer/retrain"),
        ("POST", "/v1/approvals/a-1"),
        ("POST", "/v1/feedback"),
        ("GET", ROUTE),
    ):
        assert not can(statements, "execute-api:Invoke", route(synth, method, path)), path


def test_the_application_role_may_put_no_flywheel_events_on_the_bus(synth: Synth) -> None:
    # Its name carries the stage's prefix, like the functions' roles; the bus still refuses it.
    from tests.infra.test_infra_access import bus_policy, denied_by

    bus = arn("events", f"event-bus/{synth.prefix}-bus")
    application = f"arn:<AWS::Partition>:iam::<AWS::AccountId>:role/{synth.prefix}-application"
    for source in ("flywheel.approvals", "flywheel.llm", "flywheel.operator"):
        context = {"aws:PrincipalArn": application, "events:source": [source]}
        assert denied_by(bus_policy(synth), "events:PutEvents", bus, context), source


def test_data_scientists_and_ml_engineers_may_call_prompts_approvers_may_not(
    synth: Synth,
) -> None:
    def persona(key: str) -> list[dict[str, Any]]:
        return statements_of_role(synth, *role_named(synth, f"{synth.prefix}-{key}"))

    for key in ("data-scientist", "ml-engineer"):
        assert can(persona(key), "execute-api:Invoke", route(synth, "POST", ROUTE)), key
    assert not can(persona("approver"), "execute-api:Invoke", route(synth, "POST", ROUTE))


# -- the prompts' canary ----------------------------------------------------------------------
def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm", SERVING).values()
    }


def test_each_declared_prompt_has_canary_alarms_on_its_canary_calls(synth: Synth) -> None:
    found = alarms(synth)
    thresholds = load_stage_config(synth.stage).llm.prompts[PROMPT].alarms
    name = f"{synth.prefix}-{PROMPT}-canary"
    assert {n for n in found if n.startswith(name)} == {
        f"{name}-errorrate", f"{name}-latencyp99", f"{name}-costpercall"
    }  # fmt: skip
    canary = [{"Name": "Prompt", "Value": PROMPT}, {"Name": "Variant", "Value": "canary"}]
    namespace = f"Flywheel/{synth.stage}"

    def inputs(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}

    def expression(alarm: dict[str, Any]) -> str:
        return next(m["Expression"] for m in alarm["Metrics"] if "Expression" in m)

    error_rate = found[f"{name}-errorrate"]
    assert expression(error_rate) == "IF(calls > 0, 100 * FILL(errors, 0) / calls, 0)"
    assert error_rate["Threshold"] == thresholds.error_rate_percent
    latency = found[f"{name}-latencyp99"]
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("Latency", "p99")
    assert (latency["Namespace"], latency["Dimensions"]) == (namespace, canary)
    assert latency["Threshold"] == thresholds.latency_p99_ms
    cost = found[f"{name}-costpercall"]
    assert expression(cost) == "IF(calls > 0, FILL(cost, 0) / calls, 0)"
    assert cost["Threshold"] == float(thresholds.cost_per_call)
    for alarm in (error_rate, cost):
        stats = inputs(alarm)
        assert {s["Metric"]["MetricName"] for s in stats.values()} <= {"Calls", "Errors", "Cost"}
        assert all(s["Metric"]["Dimensions"] == canary for s in stats.values())
        assert all(s["Metric"]["Namespace"] == namespace for s in stats.values())
        assert all(s["Stat"] == "Sum" for s in stats.values())
    for alarm in (error_rate, latency, cost):
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_the_promotion_steps_get_the_prompts_alarms_and_canary_steps(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    names = sorted(n for n in alarms(synth) if n.startswith(f"{synth.prefix}-{PROMPT}-canary-"))
    steps = [s.model_dump() for s in config.llm.prompts[PROMPT].canary.steps]
    assert steps == (
        [{"weight": 0.25, "bake_minutes": 5}, {"weight": 0.5, "bake_minutes": 5}]
        if synth.stage == "dev"
        else [{"weight": 0.05, "bake_minutes": 15}, {"weight": 0.25, "bake_minutes": 30}]
    )
    for step in ("shift-alias", "check-canary", "promote-all", "rollback"):
        _, function = function_by_name(synth, f"{synth.prefix}-promotion-{step}")
        variables = function["Properties"]["Environment"]["Variables"]
        listed = json.loads(variables["FLYWHEEL_CANARY_ALARMS"])
        assert sorted(listed[PROMPT]) == names, step
        assert json.loads(variables["FLYWHEEL_CANARY_STEPS"])[PROMPT] == steps, step
        # what the steps' settings read
        settings = Settings(
            backend="local",
            canary_alarms=listed,
            canary_steps=json.loads(variables["FLYWHEEL_CANARY_STEPS"]),
        )
        assert [s.weight for s in settings.canary_steps[PROMPT]] == [s["weight"] for s in steps]
    # check_canary may read exactly those alarms
    check = role_statements(synth, f"{synth.prefix}-promotion-check-canary")
    for name in names:
        assert can(check, "cloudwatch:DescribeAlarms", arn("cloudwatch", f"alarm:{name}")), name


def test_a_prompt_without_a_cost_alarm_is_judged_on_errors_and_latency_only() -> None:
    from infra.assets import Assets
    from infra.constructs.canary_alarms import all_canary_alarm_names
    from infra.context import StageContext
    from infra.naming import Naming

    data = load_stage_config("dev").model_dump()
    data["llm"] = {"prompts": {"greet": {}, "sum-up": {"alarms": {"cost_per_call": "0.01"}}}}
    config = StageConfig.model_validate(data)
    ctx = StageContext(config=config, naming=Naming(config.prefix), assets=Assets("stub"))
    listed = all_canary_alarm_names(ctx)
    assert listed["greet"] == [
        "flywheel-dev-greet-canary-errorrate",
        "flywheel-dev-greet-canary-latencyp99",
    ]
    assert listed["sum-up"][-1] == "flywheel-dev-sum-up-canary-costpercall"
    assert set(listed) == {"greet", "sum-up"} | {m.name for m in config.models}


def test_a_stage_without_an_llm_section_has_the_gateway_but_no_prompt_alarms(bare: Synth) -> None:
    assert bare.error is None, bare.error
    variables = gateway(bare)["Environment"]["Variables"]
    assert variables["FLYWHEEL_LLM_POLICY"] == "{}"  # every prompt gets the defaults
    models = {m.name for m in load_stage_config("dev").models}
    owners = {n.removeprefix(f"{bare.prefix}-").split("-canary-")[0] for n in alarms(bare)
              if "-canary-" in n}  # fmt: skip
    assert owners == models
    _, check = function_by_name(bare, f"{bare.prefix}-promotion-check-canary")
    listed = json.loads(check["Properties"]["Environment"]["Variables"]["FLYWHEEL_CANARY_ALARMS"])
    assert set(listed) == {m.name for m in load_stage_config("dev").models}
    # and no budget: nothing in Budgets, nobody from Budgets on the topic or the key
    assert bare.resources("AWS::Budgets::Budget") == {}
    assert "budgets.amazonaws.com" not in json.dumps(bare.templates[GOVERNANCE])
    assert "budgets.amazonaws.com" not in json.dumps(bare.templates["FlywheelData"])


# -- the stage's budget -----------------------------------------------------------------------
def test_the_monthly_budget_alerts_the_topic_on_actual_and_forecast_spend(synth: Synth) -> None:
    llm = load_stage_config(synth.stage).llm
    [(key, budget)] = synth.resources("AWS::Budgets::Budget").items()
    assert key.startswith(f"{GOVERNANCE}/")
    props = budget["Properties"]
    assert props["Budget"] == {
        "BudgetName": f"{synth.prefix}-monthly",
        "BudgetType": "COST",
        "TimeUnit": "MONTHLY",
        "BudgetLimit": {"Amount": float(llm.monthly_budget), "Unit": "USD"},
    }
    assert props["Budget"]["BudgetLimit"]["Amount"] == (50 if synth.stage == "dev" else 500)
    resources = synth.templates[GOVERNANCE]["Resources"]
    [topic_id] = [k for k, r in resources.items() if r["Type"] == "AWS::SNS::Topic"]
    notices = {
        (n["Notification"]["NotificationType"], n["Notification"]["Threshold"]): n
        for n in props["NotificationsWithSubscribers"]
    }
    assert set(notices) == {("ACTUAL", llm.alert_percent), ("FORECASTED", 100)}
    for notice in notices.values():
        assert notice["Notification"]["ComparisonOperator"] == "GREATER_THAN"
        assert notice["Notification"]["ThresholdType"] == "PERCENTAGE"
        assert notice["Subscribers"] == [{"SubscriptionType": "SNS", "Address": {"Ref": topic_id}}]
    # created once the topic's policy admits it
    [policy_id] = [k for k, r in resources.items() if r["Type"] == "AWS::SNS::TopicPolicy"]
    assert policy_id in budget["DependsOn"]


def test_budgets_may_publish_to_the_topic_and_encrypt_with_the_stage_key(synth: Synth) -> None:
    [policy] = synth.resources("AWS::SNS::TopicPolicy", GOVERNANCE).values()
    [statement] = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "budgets.amazonaws.com" in json.dumps(s["Principal"])
    ]
    assert (statement["Effect"], actions_of(statement)) == ("Allow", ["sns:Publish"])
    assert statement["Condition"]["StringEquals"] == {
        "aws:SourceAccount": {"Ref": "AWS::AccountId"}
    }
    [key] = [
        k for k in synth.resources("AWS::KMS::Key", "FlywheelData").values()
        if "KeySpec" not in k["Properties"]
    ]  # fmt: skip
    granted = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if "budgets.amazonaws.com" in json.dumps(s["Principal"])
    ]
    assert granted
    for s in granted:
        assert {"kms:Decrypt", "kms:GenerateDataKey*"} == set(actions_of(s))
        assert s["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
