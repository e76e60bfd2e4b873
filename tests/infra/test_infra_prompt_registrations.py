"""Registering prompt versions in a stage: the registration function and its role, its
route, who may call it, and the same route on the local runtime (synthesized templates)."""

from __future__ import annotations

import json
from typing import Any

from flywheel.local.deployment import LocalDeployment
from flywheel.local.rest_api import RestApiDefinition
from infra.nag import statement_findings
from tests.infra.synth import (
    Synth,
    actions_of,
    can,
    function_by_name,
    role_named,
    role_statements,
    statements_of_role,
)

SERVING = "FlywheelServing"
PROMPT = "ticket-summary"
ROUTE = f"/v1/prompts/{PROMPT}/versions"


def arn(service: str, rest: str) -> str:
    return f"arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{rest}"


def obj(synth: Synth, bucket: str, key: str) -> str:
    return f"arn:<AWS::Partition>:s3:::{synth.prefix}-{bucket}-<AWS::AccountId>-<AWS::Region>/{key}"


def writer(synth: Synth, capability: str) -> str:
    return arn("lambda", f"function:{synth.prefix}-records-writer:{capability}")


def function(synth: Synth) -> dict[str, Any]:
    _, found = function_by_name(synth, f"{synth.prefix}-prompt-api")
    return dict(found["Properties"])


def statements(synth: Synth) -> list[dict[str, Any]]:
    return role_statements(synth, f"{synth.prefix}-prompt-api")


# -- the function -----------------------------------------------------------------------------
def test_the_function_writes_through_the_prompts_capability_and_announces_as_the_workflows(
    synth: Synth,
) -> None:
    props = function(synth)
    assert props["Handler"] == "prompt_api.handler.handler"
    layers = [
        synth.templates[SERVING]["Resources"][ref["Ref"]]["Properties"]["LayerName"]
        for ref in props["Layers"]
    ]
    assert sorted(layers) == [f"{synth.prefix}-serving-base", f"{synth.prefix}-serving-domain"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    variables = props["Environment"]["Variables"]
    assert variables["FLYWHEEL_RECORDS_WRITER"] == f"{synth.prefix}-records-writer"
    assert variables["FLYWHEEL_RECORDS_CAPABILITY"] == "prompts"
    assert variables["FLYWHEEL_EVENT_SOURCE"] == "flywheel.workflows"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "prompt-api"


# -- its permissions ----------------------------------------------------------------------------
def test_the_function_stores_specs_under_prompts_and_nothing_else_in_the_buckets(
    synth: Synth,
) -> None:
    found = statements(synth)
    spec = obj(synth, "artifactsbucket", f"prompts/{PROMPT}/r-1/prompt.json")
    assert can(found, "s3:PutObject", spec)
    # Nothing read back, no other object action, nowhere else.
    for action in ("s3:GetObject", "s3:DeleteObject", "s3:PutObjectRetention",
                   "s3:PutObjectLegalHold", "s3:PutObjectTagging", "s3:ListBucket"):  # fmt: skip
        assert not can(found, action, spec), action
    for key in ("models/m/1/model.onnx", "reports/drift/r.json", "training-sets/t.parquet"):
        assert not can(found, "s3:PutObject", obj(synth, "artifactsbucket", key)), key
    assert not can(found, "s3:PutObject", obj(synth, "featuresbucket", f"prompts/{PROMPT}/x"))
    # The stage key for the put (SSE-KMS) and the reads; no signing of audit heads.
    assert can(found, "kms:GenerateDataKey", arn("kms", "key/data"))
    assert can(found, "kms:Decrypt", arn("kms", "key/data"))
    assert not can(found, "kms:GenerateMac", arn("kms", "key/audit"))


def test_the_function_changes_the_registry_only_through_the_prompts_alias(synth: Synth) -> None:
    found = statements(synth)
    assert can(found, "lambda:InvokeFunction", writer(synth, "prompts"))
    for capability in ("training", "operations", "configs", "approvals", "workflows",
                       "promotions", "training-runs", "promotion-runs", "features"):  # fmt: skip
        assert not can(found, "lambda:InvokeFunction", writer(synth, capability)), capability
    assert not can(
        found, "lambda:InvokeFunction", arn("lambda", f"function:{synth.prefix}-records-writer")
    )
    registry = arn("dynamodb", f"table/{synth.prefix}-RegistryTable")
    assert can(found, "dynamodb:GetItem", registry)
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert not can(found, action, registry), action
        assert not can(found, action, arn("dynamodb", f"table/{synth.prefix}-AuditTable")), action


def test_the_function_puts_only_approval_requests_with_the_workflows_source(
    synth: Synth,
) -> None:
    puts = [s for s in statements(synth) if "events:PutEvents" in actions_of(s)]
    assert [s["Condition"] for s in puts] == [
        {
            "StringEquals": {
                "events:source": "flywheel.workflows",
                "events:detail-type": "ApprovalRequested",
            }
        }
    ]
    assert can(puts, "events:PutEvents", arn("events", f"event-bus/{synth.prefix}-bus"))
    assert not can(puts, "events:PutEvents", arn("events", "event-bus/default"))
    # Nothing else of the stage: no workflows, no functions.
    found = statements(synth)
    assert not can(
        found, "states:StartExecution", arn("states", f"stateMachine:{synth.prefix}-promotion")
    )
    assert not can(
        found, "lambda:UpdateAlias", arn("lambda", f"function:{synth.prefix}-inference-x:live")
    )


def test_the_functions_wildcards_are_the_reviewed_ones(synth: Synth) -> None:
    found = {
        finding.replace(synth.prefix, "{prefix}")
        for statement in statements(synth)
        for finding in statement_findings(statement)
    }
    partition = "arn:<AWS::Partition>"
    tables = f"{partition}:dynamodb:<AWS::Region>:<AWS::AccountId>:table/{{prefix}}"
    assert found == {
        "Resource::*",  # X-Ray only
        f"Resource::{partition}:kms:<AWS::Region>:<AWS::AccountId>:key/*",  # by alias
        f"Resource::{partition}:s3:::{{prefix}}-artifactsbucket-<AWS::AccountId>-<AWS::Region>/prompts/*",
        # reading the registry and the trail, as every writer capability's caller does
        f"Resource::{tables}-RegistryTable/index/*",
        f"Resource::{tables}-AuditTable/index/*",
    }  # fmt: skip
    [xray] = [s for s in statements(synth) if s["Resource"] == "*"]
    assert {a.split(":")[0] for a in actions_of(xray)} == {"xray"}


# -- the route --------------------------------------------------------------------------------
def test_the_route_is_iam_authenticated_and_its_body_validated(synth: Synth) -> None:
    resources = synth.templates[SERVING]["Resources"]

    def path_of(resource_id: str) -> str:
        props = resources[resource_id]["Properties"]
        parent = props["ParentId"]
        above = path_of(parent["Ref"]) if "Ref" in parent else ""
        return f"{above}/{props['PathPart']}"

    [method] = [
        m["Properties"]
        for m in synth.resources("AWS::ApiGateway::Method", SERVING).values()
        if path_of(m["Properties"]["ResourceId"]["Ref"]) == "/v1/prompts/{name}/versions"
    ]
    assert (method["HttpMethod"], method["AuthorizationType"]) == ("POST", "AWS_IAM")
    validator = resources[method["RequestValidatorId"]["Ref"]]["Properties"]
    assert validator["ValidateRequestBody"] is True
    models = {
        content_type: resources[ref["Ref"]]["Properties"]["Name"]
        for content_type, ref in method["RequestModels"].items()
    }
    assert models == {
        "application/json": "PromptVersionRequest",
        "$default": "PromptVersionRequest",
    }
    integration = method["Integration"]
    assert integration["Type"] == "AWS_PROXY"
    assert "PromptVersionsHandlerFunction" in json.dumps(integration["Uri"])


def test_the_local_runtime_routes_it_to_the_registration_function(synth: Synth) -> None:
    deployment = LocalDeployment(synth.templates)
    api = RestApiDefinition.from_deployment(deployment)
    assert api is not None
    found = api.route("POST", ROUTE)
    assert found is not None
    method, params = found
    assert (method.authorization, params) == ("AWS_IAM", {"name": PROMPT})
    assert method.integration.function_arn == (
        f"arn:aws:lambda:us-east-1:123456789012:function:{synth.prefix}-prompt-api"
    )
    assert api.route("GET", ROUTE) is None
    # The gateway still answers the prompt's calls.
    invoke = api.route("POST", f"/v1/prompts/{PROMPT}/invoke")
    assert invoke is not None
    assert invoke[0].integration.function_arn.endswith(f"function:{synth.prefix}-llm-gateway")


# -- who may call it --------------------------------------------------------------------------
def route(synth: Synth, method: str, path: str) -> str:
    return arn("execute-api", f"<Api>/{synth.stage}/{method}{path}")


def test_data_scientists_and_ml_engineers_may_register_approvers_and_applications_may_not(
    synth: Synth,
) -> None:
    def persona(key: str) -> list[dict[str, Any]]:
        return statements_of_role(synth, *role_named(synth, f"{synth.prefix}-{key}"))

    for key in ("data-scientist", "ml-engineer"):
        assert can(persona(key), "execute-api:Invoke", route(synth, "POST", ROUTE)), key
        assert not can(persona(key), "execute-api:Invoke", route(synth, "GET", ROUTE)), key
        # ... and still may not store specs nor announce approvals themselves.
        spec = obj(synth, "artifactsbucket", f"prompts/{PROMPT}/r-1/prompt.json")
        assert not can(persona(key), "s3:PutObject", spec), key
        assert not can(persona(key), "lambda:InvokeFunction", writer(synth, "prompts")), key
    for key in ("approver", "application"):
        assert not can(persona(key), "execute-api:Invoke", route(synth, "POST", ROUTE)), key
