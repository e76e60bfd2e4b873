"""Who may do what: the promotion's publish step (synthesized templates, both stages)."""

from __future__ import annotations

import json

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
