"""Who may do what: the personas, the API's and the bus's resource policies, the publish step,
the platform record (synthesized templates, both stages).

Requests are written as flattened ARNs (``<AWS::AccountId>``, ``<Api>``) and judged the way
IAM matches them (``tests.infra.synth.can``); resource policies are judged with the few
condition operators they use (:func:`denied_by`).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from aws_cdk import Stack

from infra.config import StageConfig, load_stage_config
from infra.constructs.promotion_workflow import PUBLISH_ACTIONS
from infra.nag import flatten_reference
from tests.infra.synth import (
    STACKS,
    Synth,
    actions_of,
    can,
    role_named,
    role_statements,
    statements_of_role,
)

SERVING = "FlywheelServing"
DATA = "FlywheelData"
ACCOUNT = "arn:<AWS::Partition>:iam::<AWS::AccountId>"
PERSONAS = ("data-scientist", "ml-engineer", "approver")


def persona(synth: Synth, key: str) -> list[dict[str, Any]]:
    return statements_of_role(synth, *role_named(synth, f"{synth.prefix}-{key}"))


def arn(service: str, rest: str) -> str:
    return f"arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{rest}"


def route(synth: Synth, method: str, path: str) -> str:
    return arn("execute-api", f"<Api>/{synth.stage}/{method}{path}")


def writer(synth: Synth, capability: str) -> str:
    return arn("lambda", f"function:{synth.prefix}-records-writer:{capability}")


def artifact(synth: Synth, key: str) -> str:
    bucket = f"{synth.prefix}-artifactsbucket-<AWS::AccountId>-<AWS::Region>"
    return f"arn:<AWS::Partition>:s3:::{bucket}/{key}"


def execution(synth: Synth, machine: str) -> str:
    return arn("states", f"execution:{synth.prefix}-{machine}:run-1")


def platform_parameter(synth: Synth) -> str:
    return arn("ssm", "parameter<PlatformParameter>")


# -- the personas -------------------------------------------------------------------------------
def test_each_persona_is_a_role_with_a_managed_policy_of_the_same_name_and_mfa(
    synth: Synth,
) -> None:
    for key in PERSONAS:
        name = f"{synth.prefix}-{key}"
        stack, role_id = role_named(synth, name)
        role = synth.templates[stack]["Resources"][role_id]["Properties"]
        [statement] = role["AssumeRolePolicyDocument"]["Statement"]
        assert flatten_reference(statement["Principal"]["AWS"]) == f"{ACCOUNT}:root"
        assert statement["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
        assert role["MaxSessionDuration"] == 3600
        assert "Policies" not in role  # everything is in the managed policy
        [policy_ref] = role["ManagedPolicyArns"]
        policy = synth.templates[stack]["Resources"][policy_ref["Ref"]]["Properties"]
        # The same name lets an IAM Identity Center permission set reference the policy.
        assert (policy["ManagedPolicyName"], policy["Path"]) == (name, "/")


def test_everyone_reads_registry_audit_reports_and_the_platform_record(synth: Synth) -> None:
    registry = arn("dynamodb", f"table/{synth.prefix}-RegistryTable")
    audit = arn("dynamodb", f"table/{synth.prefix}-AuditTable")
    for key in PERSONAS:
        statements = persona(synth, key)
        assert can(statements, "dynamodb:Query", registry), key
        assert can(statements, "dynamodb:Query", audit), key
        assert can(statements, "kms:VerifyMac", arn("kms", "key/audit")), key
        assert can(statements, "s3:GetObject", artifact(synth, "reports/drift/r.json")), key
        assert can(statements, "ssm:GetParameter", platform_parameter(synth)), key
        # ... and writes none of it, nor signs, nor touches serving.
        for action, resource in (
            ("dynamodb:PutItem", registry),
            ("dynamodb:UpdateItem", audit),
            ("kms:GenerateMac", arn("kms", "key/audit")),
            ("s3:PutObject", artifact(synth, "models/m/1/model.onnx")),
            ("s3:GetObject", artifact(synth, "policies/p.json")),
            ("events:PutEvents", arn("events", f"event-bus/{synth.prefix}-bus")),
            ("states:StartExecution", arn("states", f"stateMachine:{synth.prefix}-training")),
            ("states:SendTaskSuccess", arn("states", f"stateMachine:{synth.prefix}-training")),
            ("lambda:UpdateFunctionConfiguration", arn("lambda", "function:x")),
            ("lambda:UpdateAlias", arn("lambda", "function:x:live")),
            ("lambda:InvokeFunction", writer(synth, "workflows")),
            ("lambda:InvokeFunction", writer(synth, "approvals")),
            ("lambda:InvokeFunction", writer(synth, "features")),
            ("iam:PassRole", f"{ACCOUNT}:role/{synth.prefix}-records-writer"),
        ):
            assert not can(statements, action, resource), (key, action, resource)


def test_the_data_scientist_trains_and_reads_runs_but_cannot_approve_promote_or_deploy(
    synth: Synth,
) -> None:
    model = load_stage_config(synth.stage).models[0].name
    ds = persona(synth, "data-scientist")
    assert can(ds, "execute-api:Invoke", route(synth, "POST", f"/v1/models/{model}/retrain"))
    assert can(ds, "execute-api:Invoke", route(synth, "POST", "/v1/models/new-model/retrain"))
    assert can(ds, "lambda:InvokeFunction", writer(synth, "training"))
    assert can(ds, "s3:GetObject", artifact(synth, f"models/{model}/3/model.onnx"))
    assert can(ds, "s3:GetObject", artifact(synth, "training-sets/t.parquet"))
    assert can(ds, "states:ListExecutions", arn("states", f"stateMachine:{synth.prefix}-training"))
    assert can(ds, "states:DescribeExecution", execution(synth, "training"))

    assert not can(ds, "execute-api:Invoke", route(synth, "POST", "/v1/approvals/a-1"))
    assert not can(ds, "execute-api:Invoke", route(synth, "POST", f"/v1/models/{model}/predict"))
    # Asking the promotion workflow for a version (an experiment's winner) is operations'.
    assert not can(ds, "execute-api:Invoke", route(synth, "POST", f"/v1/models/{model}/promotions"))
    assert not can(ds, "lambda:InvokeFunction", writer(synth, "operations"))
    assert not can(ds, "states:DescribeExecution", execution(synth, "promotion"))
    # Histories carry the approval task tokens: describing a run is enough.
    assert not can(ds, "states:GetExecutionHistory", execution(synth, "training"))
    assert not can(ds, "sts:AssumeRole", f"{ACCOUNT}:role/cdk-hnb659fds-deploy-role-1-r")


def test_the_ml_engineer_operates_and_deploys_but_cannot_approve(synth: Synth) -> None:
    model = load_stage_config(synth.stage).models[0].name
    mle = persona(synth, "ml-engineer")
    assert can(mle, "lambda:InvokeFunction", writer(synth, "operations"))
    assert can(mle, "execute-api:Invoke", route(synth, "POST", f"/v1/models/{model}/retrain"))
    assert can(mle, "execute-api:Invoke", route(synth, "POST", f"/v1/models/{model}/promotions"))
    for machine in ("training", "promotion"):
        assert can(mle, "states:DescribeExecution", execution(synth, machine))
        assert can(mle, "states:GetExecutionHistory", execution(synth, machine))
    deploy = f"{ACCOUNT}:role/cdk-hnb659fds-deploy-role-<AWS::AccountId>-<AWS::Region>"
    assert can(mle, "sts:AssumeRole", deploy)
    [assume] = [s for s in mle if "sts:AssumeRole" in actions_of(s) and "Condition" in s]
    assert assume["Condition"] == {
        "StringEquals": {
            "iam:ResourceTag/aws-cdk:bootstrap-role": [
                "deploy",
                "lookup",
                "file-publishing",
                "image-publishing",
            ]
        }
    }
    assert not can(mle, "sts:AssumeRole", f"{ACCOUNT}:role/{synth.prefix}-records-writer")
    assert not can(mle, "execute-api:Invoke", route(synth, "POST", "/v1/approvals/a-1"))
    assert not can(mle, "lambda:InvokeFunction", writer(synth, "training"))


def test_the_approver_decides_approvals_and_nothing_else(synth: Synth) -> None:
    model = load_stage_config(synth.stage).models[0].name
    approver = persona(synth, "approver")
    assert can(approver, "execute-api:Invoke", route(synth, "POST", "/v1/approvals/a-1"))
    for method, path in (
        ("POST", f"/v1/models/{model}/predict"),
        ("POST", f"/v1/models/{model}/retrain"),
        ("POST", f"/v1/models/{model}/promotions"),
        ("POST", "/v1/prompts/ticket-summary/versions"),  # registering is the authors'
        ("POST", "/v1/feedback"),
        ("GET", "/v1/approvals/a-1"),
    ):
        assert not can(approver, "execute-api:Invoke", route(synth, method, path)), path
    for capability in ("training", "operations", "approvals", "workflows", "features"):
        assert not can(approver, "lambda:InvokeFunction", writer(synth, capability))
    assert not can(approver, "s3:GetObject", artifact(synth, f"models/{model}/1/model.onnx"))
    assert not can(approver, "states:DescribeExecution", execution(synth, "training"))


# -- resource policies --------------------------------------------------------------------------
def _matches(value: str, patterns: Any) -> bool:
    patterns = patterns if isinstance(patterns, list) else [patterns]
    return any(fnmatch.fnmatchcase(value, flatten_reference(p)) for p in patterns)


def denied_by(policy: dict[str, Any], action: str, resource: str, context: dict[str, Any]) -> bool:
    """Whether a Deny of ``policy`` applies to the request (its conditions all hold)."""
    operators = {
        "ArnLike": lambda key, p: _matches(context[key], p),
        "ArnNotLike": lambda key, p: not _matches(context[key], p),
        "ArnNotEquals": lambda key, p: (
            context[key] not in [flatten_reference(v) for v in p]
            if isinstance(p, list)
            else context[key] != flatten_reference(p)
        ),
        "ForAnyValue:StringLike": lambda key, p: any(_matches(v, p) for v in context[key]),
        "ForAnyValue:StringEquals": lambda key, p: any(
            v in (p if isinstance(p, list) else [p]) for v in context[key]
        ),
    }
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Deny", "the resource policies only deny"
        if action not in actions_of(statement) or not _matches(resource, statement["Resource"]):
            continue
        if all(
            operators[op](key, pattern)
            for op, keys in statement.get("Condition", {}).items()
            for key, pattern in keys.items()
        ):
            return True
    return False


def api_policy(synth: Synth) -> dict[str, Any]:
    [api] = synth.resources("AWS::ApiGateway::RestApi", SERVING).values()
    policy: dict[str, Any] = api["Properties"]["Policy"]
    return policy


def test_only_approver_principals_get_through_to_the_approvals_route(synth: Synth) -> None:
    policy = api_policy(synth)
    model = load_stage_config(synth.stage).models[0].name

    def denied(principal: str, method: str, path: str) -> bool:
        resource = f"execute-api:/{synth.stage}/{method}{path}"
        return denied_by(policy, "execute-api:Invoke", resource, {"aws:PrincipalArn": principal})

    approver = f"{ACCOUNT}:role/{synth.prefix}-approver"
    others = [
        f"{ACCOUNT}:role/{synth.prefix}-data-scientist",
        f"{ACCOUNT}:role/{synth.prefix}-ml-engineer",
        f"{ACCOUNT}:role/Admin",  # execute-api:Invoke on "*" is not enough
        f"{ACCOUNT}:user/ci",
    ]
    assert not denied(approver, "POST", "/v1/approvals/a-1")
    for principal in others:
        assert denied(principal, "POST", "/v1/approvals/a-1"), principal
        # Every other route stays as reachable as the caller's own IAM policy makes it.
        assert not denied(principal, "POST", f"/v1/models/{model}/predict"), principal
        assert not denied(principal, "POST", f"/v1/models/{model}/retrain"), principal
        assert not denied(principal, "POST", "/v1/feedback"), principal


def test_approver_principals_come_from_the_stage_config(tmp_path: Any) -> None:
    from infra.app import build_app

    config = load_stage_config("dev").model_copy(
        update={
            "approver_principals": (
                "role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Approver_*",
                "arn:aws:iam::123456789012:user/ana",
            )
        }
    )
    StageConfig.model_validate(config.model_dump())  # what a stage definition goes through
    app = build_app(config=config, assets="stub", outdir=str(tmp_path), nag=False)
    stack = next(c for c in app.node.children if isinstance(c, Stack) and c.node.id == SERVING)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    [api] = [r for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    [deny] = api["Properties"]["Policy"]["Statement"]
    allowed = [flatten_reference(p) for p in deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]]
    assert allowed == [
        f"{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Approver_*",
        "arn:aws:iam::123456789012:user/ana",
    ]


def bus_policy(synth: Synth) -> dict[str, Any]:
    [bus] = synth.resources("AWS::Events::EventBus", DATA).values()
    policy: dict[str, Any] = bus["Properties"]["Policy"]
    return policy


def test_only_the_stages_own_roles_put_flywheel_events(synth: Synth) -> None:
    policy = bus_policy(synth)
    bus = arn("events", f"event-bus/{synth.prefix}-bus")

    def denied(principal: str, *sources: str) -> bool:
        context = {"aws:PrincipalArn": principal, "events:source": list(sources)}
        return denied_by(policy, "events:PutEvents", bus, context)

    monitor = f"{ACCOUNT}:role/{synth.prefix}-monitoring-MonitorsDriftScorerRole-1A2B3C"
    approvals = f"{ACCOUNT}:role/{synth.prefix}-serving-ApprovalsHandlerRole-4D5E6F"
    retrain = f"{ACCOUNT}:role/{synth.prefix}-retrain-api"
    assert not denied(monitor, "flywheel.monitoring")
    assert not denied(approvals, "flywheel.approvals")
    assert not denied(retrain, "flywheel.operator")
    # People may not put VersionApproved or RetrainRequested themselves, even though their
    # roles carry the stage's prefix: they ask through the API.
    for key in PERSONAS:
        person = f"{ACCOUNT}:role/{synth.prefix}-{key}"
        assert denied(person, "flywheel.approvals"), key
        assert denied(person, "flywheel.operator"), key
    for outsider in (
        f"{ACCOUNT}:role/Admin",
        f"{ACCOUNT}:role/other-stage-retrain-api",
        f"{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_1",
    ):
        assert denied(outsider, "flywheel.approvals"), outsider
    # Only the retrain API asks for manual runs; one foreign entry denies the whole call.
    assert denied(monitor, "flywheel.operator")
    assert denied(monitor, "flywheel.monitoring", "flywheel.operator")
    # Other sources are IAM's business alone.
    assert not denied(f"{ACCOUNT}:role/Admin", "com.example.orders")


def test_every_role_of_the_stage_matches_the_bus_policy_prefix(synth: Synth) -> None:
    stacks = synth.stack_names()
    assert set(stacks) == set(STACKS)
    assert all(name.startswith(f"{synth.prefix}-") for name in stacks.values())
    for key, role in synth.resources("AWS::IAM::Role").items():
        name = role["Properties"].get("RoleName")
        # CloudFormation names a role <stack name>-<logical id>-<suffix> unless told.
        assert name is None or name.startswith(f"{synth.prefix}-"), key


def test_only_the_retrain_api_may_put_operator_events(synth: Synth) -> None:
    producers = set()
    for policy in synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "events:PutEvents" in actions_of(statement):
                source = statement["Condition"]["StringEquals"]["events:source"]
                if source == "flywheel.operator":
                    producers |= {r["Ref"] for r in policy["Properties"]["Roles"]}
    [producer] = producers
    role = synth.templates[SERVING]["Resources"][producer]["Properties"]
    assert role["RoleName"] == f"{synth.prefix}-retrain-api"
    name = f"{synth.prefix}-retrain-api"
    assert {s["Condition"]["StringEquals"]["events:source"] for s in role_statements(synth, name)
            if "events:PutEvents" in actions_of(s)} == {"flywheel.operator"}  # fmt: skip


# -- the publish step ---------------------------------------------------------------------------
def test_the_publish_step_may_pin_a_version_but_not_change_layers(synth: Synth) -> None:
    step = f"{synth.prefix}-promotion-publish-version"
    statements = [s for s in role_statements(synth, step) if s["Effect"] == "Allow"]
    lambda_actions = {a for s in statements for a in actions_of(s) if a.startswith("lambda:")}
    # Exactly what LambdaServingControl.publish calls (no GetFunction, no UpdateFunctionCode;
    # tests/integration/test_aws_workflow_adapters.py watches the calls).
    assert (
        lambda_actions
        == set(PUBLISH_ACTIONS)
        == {
            "lambda:GetFunctionConfiguration",
            "lambda:ListVersionsByFunction",
            "lambda:UpdateFunctionConfiguration",
            "lambda:PublishVersion",
        }
    )
    functions = sorted(
        f"{arn('lambda', 'function:')}{synth.prefix}-inference-{m.name}"
        for m in load_stage_config(synth.stage).models
    )
    serving = synth.templates[SERVING]["Resources"]
    inference_layers = [
        r["Properties"]["Layers"]
        for r in serving.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["FunctionName"].startswith(f"{synth.prefix}-inference-")
    ]
    for statement in statements:
        if not any(a.startswith("lambda:") for a in actions_of(statement)):
            continue
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        assert sorted(flatten_reference(r) for r in resources) == functions  # unqualified only
        if "lambda:UpdateFunctionConfiguration" in actions_of(statement):
            layers = statement["Condition"]["ForAllValues:StringEquals"]["lambda:Layer"]
            # The serving stack's current layer versions: what the functions run today.
            assert all(sorted(map(json.dumps, f)) == sorted(map(json.dumps, layers))
                       for f in inference_layers)  # fmt: skip
            assert set(statement["Condition"]) == {"ForAllValues:StringEquals"}


# -- the platform record ------------------------------------------------------------------------
def _render(value: Any, resources: dict[str, Any]) -> str:
    """A ``Fn::Join`` (or ``Ref``) with pseudo parameters and API references filled in."""
    pseudo = {
        "AWS::Region": "eu-west-1",
        "AWS::AccountId": "111122223333",
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }

    def part(node: Any) -> str:
        if isinstance(node, str):
            return node
        ref = node["Ref"]
        if ref in pseudo:
            return pseudo[ref]
        resource = resources[ref]
        if resource["Type"] == "AWS::ApiGateway::RestApi":
            return "a1b2c3d4e5"
        assert resource["Type"] == "AWS::ApiGateway::Stage", ref
        return str(resource["Properties"]["StageName"])

    if "Fn::Join" not in value:
        return part(value)
    delimiter, parts = value["Fn::Join"]
    return str(delimiter).join(part(p) for p in parts)


def test_the_platform_record_names_everything_the_functions_are_given(synth: Synth) -> None:
    serving = synth.templates[SERVING]["Resources"]
    [parameter] = synth.resources("AWS::SSM::Parameter", SERVING).values()
    props = parameter["Properties"]
    assert (props["Name"], props["Type"]) == (f"/flywheel/{synth.prefix}/platform", "String")
    text = _render(props["Value"], serving)
    assert len(text.encode()) < 4096
    assert props["Tier"] == "Standard"
    record = json.loads(text)
    assert set(record) == {"stage", "region", "environment", "api_url", "state_machines"}
    assert (record["stage"], record["region"]) == (synth.stage, "eu-west-1")
    assert record["api_url"] == (
        f"https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/{synth.stage}/"
    )
    assert record["state_machines"] == {
        key: f"arn:aws:states:eu-west-1:111122223333:stateMachine:{synth.prefix}-{key}"
        for key in ("training", "promotion")
    }

    def given(function: str) -> dict[str, str]:
        [found] = [
            r["Properties"]["Environment"]["Variables"]
            for r in synth.resources("AWS::Lambda::Function").values()
            if r["Properties"]["FunctionName"] == function
        ]
        return {k: _render(v, serving) if isinstance(v, dict) else v for k, v in found.items()}

    environment = record["environment"]
    # Every resource name the functions get, as they get it ...
    step = given(f"{synth.prefix}-promotion-shift-alias")
    names = {
        k: v
        for k, v in step.items()
        if k.endswith(("_TABLE", "_BUCKET", "_BUS", "_KEY")) or k in {
            "FLYWHEEL_INFERENCE_FUNCTIONS", "FLYWHEEL_CANARY_ALARMS", "FLYWHEEL_LIVE_ALIAS",
            "FLYWHEEL_RECORDS_WRITER",
        }
    }  # fmt: skip
    assert "FLYWHEEL_ANCHORS_BUCKET" in names
    assert environment == names
    # ... which is enough to reach the stage.
    from flywheel.settings import Settings

    settings = Settings.of_deployment(environment, backend="aws")
    assert settings.inference_functions == {
        m.name: f"{synth.prefix}-inference-{m.name}" for m in load_stage_config(synth.stage).models
    }


def test_only_the_personas_are_given_the_platform_record(synth: Synth) -> None:
    for key in PERSONAS:
        assert can(persona(synth, key), "ssm:GetParameter", platform_parameter(synth)), key
    function_roles_reading_ssm = [
        name
        for name, policy in synth.resources("AWS::IAM::Policy").items()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if any(a.startswith("ssm:") for a in actions_of(s))
    ]
    assert function_roles_reading_ssm == []
