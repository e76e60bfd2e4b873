"""The LLM budget meter construct on its own stack: the function with the stage's policy,
a five-minute schedule, and a role that touches only the budget items of the usage table
and puts only ``flywheel.llm`` events; the rule packs find nothing unacknowledged."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.nag import flatten_reference

POLICY = {
    "teams": {"support": {"month": "300"}},
    "prompts": {"ticket-summary": {"teams": ["support"], "budget": {"day": "5"}}},
    "alert_percent": 75,
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from aws_cdk import App, Stack

    from infra.app import feature_flags
    from infra.assets import Assets
    from infra.catalog import CONTROL_LAYERS
    from infra.config import load_stage_config
    from infra.constructs.data_refs import DataRefs
    from infra.constructs.event_routing import dead_letter_queue
    from infra.constructs.function import SharedLayers
    from infra.constructs.llm_budget_meter import LlmBudgetMeter
    from infra.context import StageContext
    from infra.nag import acknowledge_iam_wildcards, register_rule_packs
    from infra.naming import Naming

    config = load_stage_config("dev")
    ctx = StageContext(config=config, naming=Naming(config.prefix), assets=Assets("stub"))
    out = tmp_path_factory.mktemp("cdk-meter")
    app = App(outdir=str(out), context=feature_flags())
    stack = Stack(app, "Meter")
    data = DataRefs(stack, "Data", ctx=ctx)
    layers = SharedLayers(stack, "Layers", ctx=ctx, keys=CONTROL_LAYERS, stack_key="meter").layers
    dlq = dead_letter_queue(stack, "Dlq", ctx=ctx, key=data.key, name="llm-budgets-dlq")
    LlmBudgetMeter(stack, "Meter", ctx=ctx, layers=layers, data=data, policy=POLICY,
                   dead_letter_queue=dlq)  # fmt: skip
    acknowledge_iam_wildcards(stack)
    register_rule_packs(app)
    found = dict(app.synth().get_stack_by_name("Meter").template)
    report = json.loads((out / "validation-report.json").read_text())
    found["__nag__"] = [v for p in report["pluginReports"] for v in p["violations"]]
    return found


def _of_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


def test_the_function_runs_the_meter_with_the_stages_policy(template: dict[str, Any]) -> None:
    (function,) = _of_type(template, "AWS::Lambda::Function")
    env = function["Environment"]["Variables"]

    assert function["FunctionName"] == "flywheel-dev-llm-budgets"
    assert function["Handler"] == "llm_budgets.handler.handler"
    assert function["ReservedConcurrentExecutions"] == 1
    assert json.loads(env["FLYWHEEL_LLM_POLICY"]) == {
        "alert_percent": 75.0,
        "prompts": {"ticket-summary": {"budget": {"day": "5"}, "teams": ["support"]}},
        "teams": {"support": {"month": "300"}},
    }
    assert env["FLYWHEEL_EVENT_SOURCE"] == "flywheel.llm"
    assert env["FLYWHEEL_LLM_USAGE_TABLE"] == "flywheel-dev-LlmUsageTable"
    assert "Arn" in function["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][1]


def test_a_schedule_runs_it_every_five_minutes(template: dict[str, Any]) -> None:
    (rule,) = _of_type(template, "AWS::Events::Rule")
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    assert "DeadLetterConfig" in target


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for policy in _of_type(template, "AWS::IAM::Policy")
        for s in policy["PolicyDocument"]["Statement"]
    ]


def test_its_role_touches_only_budget_items_and_puts_only_llm_events(
    template: dict[str, Any],
) -> None:
    statements = _statements(template)
    table = [s for s in statements if any(str(a).startswith("dynamodb:") for a in _actions(s))]
    (usage,) = table
    assert sorted(_actions(usage)) == ["dynamodb:DeleteItem", "dynamodb:GetItem",
                                       "dynamodb:UpdateItem"]  # fmt: skip
    assert flatten_reference(usage["Resource"]).endswith(":table/flywheel-dev-LlmUsageTable")
    assert usage["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["BUDGET#*"]}}
    (puts,) = [s for s in statements if "events:PutEvents" in _actions(s)]
    assert puts["Condition"] == {"StringEquals": {"events:source": "flywheel.llm"}}
    assert flatten_reference(puts["Resource"]).endswith(":event-bus/flywheel-dev-bus")
    everything = {a for s in statements for a in _actions(s)}
    assert not {a for a in everything if a.startswith(("s3:", "lambda:", "states:"))}


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_the_rule_packs_find_nothing_unacknowledged(template: dict[str, Any]) -> None:
    assert template["__nag__"] == []
