"""Who may do what: the promotion's publish step, the platform record (synthesized
templates, both stages)."""

from __future__ import annotations

import json
from typing import Any

from infra.config import load_stage_config
from infra.constructs.promotion_workflow import PUBLISH_ACTIONS
from infra.nag import flatten_reference
from tests.infra.synth import Synth, actions_of, role_statements

SERVING = "FlywheelServing"


def arn(service: str, rest: str) -> str:
    return f"arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{rest}"


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
