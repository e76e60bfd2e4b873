"""The evaluation step of the promotion workflow (ADR 81) in a stage: its function, what it
is told (the LLM policy and the prompts' gates), what it may do, and where it sits in the
state machine (synthesized templates)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flywheel.llm.gate import PromptGatePolicy
from flywheel.llm.policy import LlmPolicy
from flywheel.project import ProjectError
from flywheel.settings import Settings
from infra.config import StageConfig, load_stage_config
from infra.constructs.llm_gateway import bedrock_model_ids
from infra.workflows.template import state_machine_definition
from tests.infra.synth import Synth, can, function_by_name, role_statements, synthesize
from tests.infra.test_infra_llm import _resolve, arn, obj

PROMPT = "support-answer"


def step(synth: Synth, name: str = "evaluate-candidate") -> dict[str, Any]:
    _, function = function_by_name(synth, f"{synth.prefix}-promotion-{name}")
    return dict(function["Properties"])


def machine(synth: Synth) -> dict[str, Any]:
    """The promotion definition as deployed (function ARN = its name here)."""
    return state_machine_definition(
        synth.templates["FlywheelWorkflows"], f"{synth.prefix}-promotion", lambda n: f"fn:{n}"
    )


def test_the_step_is_told_the_llm_policy_and_the_prompts_gates_only(synth: Synth) -> None:
    props = step(synth)
    variables = props["Environment"]["Variables"]
    config = load_stage_config(synth.stage)

    assert props["Handler"] == "promotion_steps.handler.evaluate_candidate"
    assert (props["Timeout"], props["MemorySize"]) == (900, 1024)
    assert LlmPolicy.model_validate(json.loads(variables["FLYWHEEL_LLM_POLICY"])) == (
        config.llm.policy()
    )
    gates = json.loads(variables["FLYWHEEL_PROMPT_GATES"])
    assert PromptGatePolicy.model_validate(gates[PROMPT]) == PromptGatePolicy(
        groundedness_min=0.6, toxicity_rate_max=0
    )
    assert "ticket-summary" not in gates  # declares no gate: the defaults
    # Nothing of the canary's: the other steps' variables are not its business
    assert "FLYWHEEL_CANARY_ALARMS" not in variables
    assert variables["FLYWHEEL_RECORDS_CAPABILITY"] == "promotion-runs"
    resolved = {k: v if isinstance(v, str) else _resolve(v) for k, v in variables.items()}
    settings = Settings.of_deployment(resolved, backend="aws")
    assert settings.prompt_gates == gates
    assert sum(len(k) + len(v) for k, v in resolved.items()) < 4096


def test_the_step_reads_prompts_calls_the_priced_models_and_writes_through_the_writer(
    synth: Synth,
) -> None:
    statements = role_statements(synth, f"{synth.prefix}-promotion-evaluate-candidate")
    usage = arn("dynamodb", f"table/{synth.prefix}-LlmUsageTable")
    registry = arn("dynamodb", f"table/{synth.prefix}-RegistryTable")

    # The specs and their evaluation sets; no model artifacts, nothing written there
    stored = obj(synth, "artifactsbucket", f"prompts/{PROMPT}/r-1/evaluation.jsonl")
    assert can(statements, "s3:GetObject", stored)
    assert not can(statements, "s3:PutObject", stored)
    assert not can(statements, "s3:GetObject", obj(synth, "artifactsbucket", "models/m/1/x"))
    # Its calls are budgeted like the gateway's
    for action in ("dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"):
        assert can(statements, action, usage), action
    assert not can(statements, "dynamodb:DeleteItem", usage)
    for model_id in bedrock_model_ids():
        model = f"arn:<AWS::Partition>:bedrock:<AWS::Region>::foundation-model/{model_id}"
        assert can(statements, "bedrock:InvokeModel", model), model_id
    # The registry is changed through the promotion steps' capability only
    assert not can(statements, "dynamodb:PutItem", registry)
    writer = arn("lambda", f"function:{synth.prefix}-records-writer")
    assert can(statements, "lambda:InvokeFunction", f"{writer}:promotion-runs")
    assert not can(statements, "lambda:InvokeFunction", f"{writer}:operations")
    # ... and it routes no traffic
    assert not any("lambda:UpdateAlias" in json.dumps(s) for s in statements)


def test_the_other_promotion_steps_call_no_model(synth: Synth) -> None:
    model = f"arn:<AWS::Partition>:bedrock:<AWS::Region>::foundation-model/{bedrock_model_ids()[0]}"
    for name in ("publish-version", "shift-alias", "check-canary", "record-failure"):
        statements = role_statements(synth, f"{synth.prefix}-promotion-{name}")
        assert not can(statements, "bedrock:InvokeModel", model), name
        usage = arn("dynamodb", f"table/{synth.prefix}-LlmUsageTable")
        assert not can(statements, "dynamodb:UpdateItem", usage), name


def test_the_gate_comes_first_and_retries_an_unavailable_evaluation(synth: Synth) -> None:
    states = machine(synth)["States"]

    assert states["Initialize"]["Next"] == "EvaluateCandidate"
    evaluate = states["EvaluateCandidate"]
    assert evaluate["Next"] == "CandidatePassed"
    assert evaluate["TimeoutSeconds"] == 900 + 30
    [unavailable] = [
        r for r in evaluate["Retry"] if "EvaluationUnavailableError" in r["ErrorEquals"]
    ]
    assert unavailable["MaxAttempts"] == 2
    assert evaluate["Catch"][0]["Next"] == "RecordFailure"
    choice = states["CandidatePassed"]
    assert choice["Choices"] == [
        {"Variable": "$.evaluation.Payload.passed", "BooleanEquals": True, "Next": "PublishVersion"}
    ]
    assert choice["Default"] == "CandidateRejected"
    assert states["CandidateRejected"]["Type"] == "Fail"


def test_a_gate_with_a_bad_limit_is_refused_naming_the_prompt_and_field(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data = load_stage_config("dev").model_dump()
    data["llm"]["prompts"][PROMPT]["gate"] = {"groundedness_min": 2}

    with pytest.raises(ValueError, match=r"llm\.prompts\.support-answer\.gate\.groundedness_min"):
        StageConfig.model_validate(data)


def test_a_stage_whose_evaluation_environment_would_not_fit_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data = load_stage_config("dev").model_dump(mode="json")
    gate = {"groundedness_min": 0.5, "thresholds": {f"e{i}": 0.5 for i in range(20)}}
    data["llm"]["prompts"].update({f"prompt-{i}": {"gate": gate} for i in range(12)})

    with pytest.raises(ProjectError, match="the evaluation step's environment would be about"):
        synthesize("dev", tmp_path_factory.mktemp("cdk-big"), StageConfig.model_validate(data))
