"""The gateway of a stage whose prompts have request-path guardrails: the policy reaches the
function, the Bedrock guardrail they name is granted by its ARN (``ApplyGuardrail`` only),
and the role's findings stay the reviewed ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flywheel.llm.guardrails import GuardrailPolicy
from flywheel.llm.policy import LlmPolicy
from infra.config import StageConfig, load_stage_config
from infra.nag import flatten_reference, statement_findings
from tests.infra.synth import Synth, actions_of, function_by_name, role_statements, synthesize

GUARDRAILS = {
    "input": {"toxicity": 0.6},
    "output": {"toxicity": 0.5, "groundedness": 0.6, "context_variable": "passages"},
    "bedrock": {"id": "gr7support", "version": "4"},
}
OTHER_ACCOUNT = "arn:aws:bedrock:eu-west-1:123456789012:guardrail/grshared"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Dev with two guarded prompts: one names its guardrail by id, one by full ARN."""
    data = load_stage_config("dev").model_dump()
    prompts = data["llm"]["prompts"]
    prompts["support-answer"]["guardrails"] = GUARDRAILS
    prompts["ticket-summary"]["guardrails"] = {
        "output": {"toxicity": 0.5},
        "bedrock": {"id": OTHER_ACCOUNT, "version": "1"},
    }
    config = StageConfig.model_validate(data)
    return synthesize("dev", tmp_path_factory.mktemp("cdk-guarded"), config)


def _gateway_statements(synth: Synth) -> list[dict[str, Any]]:
    return role_statements(synth, f"{synth.prefix}-llm-gateway")


def test_the_guardrails_travel_in_the_gateways_policy(guarded: Synth) -> None:
    assert guarded.error is None, guarded.error
    _, function = function_by_name(guarded, f"{guarded.prefix}-llm-gateway")
    policy = LlmPolicy.model_validate(
        json.loads(function["Properties"]["Environment"]["Variables"]["FLYWHEEL_LLM_POLICY"])
    )
    found = policy.prompt("support-answer").guardrails
    assert found == GuardrailPolicy.model_validate(GUARDRAILS)


def test_each_named_guardrail_is_granted_apply_guardrail_by_its_arn(guarded: Synth) -> None:
    granted = {
        flatten_reference(resource)
        for statement in _gateway_statements(guarded)
        if statement["Effect"] == "Allow" and actions_of(statement) == ["bedrock:ApplyGuardrail"]
        for resource in (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
    }
    partition = "arn:<AWS::Partition>"
    assert f"{partition}:bedrock:<AWS::Region>:<AWS::AccountId>:guardrail/gr7support" in granted
    assert OTHER_ACCOUNT in granted  # an ARN is granted as written
    # nothing else of Bedrock on these ARNs: no managing, no invoking
    for statement in _gateway_statements(guarded):
        text = json.dumps(statement["Resource"])
        if "gr7support" in text or "grshared" in text:
            assert actions_of(statement) == ["bedrock:ApplyGuardrail"]


def test_the_grant_adds_no_wildcard_to_review(guarded: Synth) -> None:
    found = {
        finding.replace(guarded.prefix, "{prefix}")
        for statement in _gateway_statements(guarded)
        for finding in statement_findings(statement)
    }
    assert not any("gr7support" in f or "grshared" in f for f in found)
    bedrock = {f for f in found if ":bedrock:" in f}
    assert bedrock == {
        "Resource::arn:<AWS::Partition>:bedrock:<AWS::Region>:<AWS::AccountId>:guardrail/*"
    }


def test_the_guarded_stages_templates_are_cfn_lint_clean(guarded: Synth) -> None:
    from infra import template_lint

    assert template_lint.main([str(guarded.outdir), "--regions", "eu-west-1"]) == 0
