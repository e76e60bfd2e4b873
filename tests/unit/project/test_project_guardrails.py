"""A prompt's ``guardrails:`` in the project file: validated with the file, line and field of
the first problem, and carried (small) in the gateway's policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.llm.guardrails import GuardrailPolicy
from flywheel.llm.policy import LlmPolicy
from flywheel.project import ProjectError, load_project

MODEL = """name: churn
training:
  task: classification
  dataset: {source: "sklearn:breast_cancer"}
  estimator: logistic_regression
gate: {metric: roc_auc}
"""
PROJECT = """project: acme
stages:
  - name: dev
    account: "111111111111"
models:
  - name: churn
llm:
  prompts:
    support-answer:
      guardrails:
        input: {toxicity: 0.6}
        output: {toxicity: 0.5, groundedness: 0.6, context_variable: passages}
        bedrock: {id: abc123xyz, version: "2"}
        blocked_input: "Please rephrase your question."
        blocked_output: "Sorry, I cannot answer that from our help center."
        on_error: block
      canary:
        steps:
          - {weight: 0.1, bake_minutes: 5}
"""


def _write(folder: Path, project: str = PROJECT) -> Path:
    (folder / "flywheel.yaml").write_text(project)
    (folder / "models" / "churn").mkdir(parents=True)
    (folder / "models" / "churn" / "model.yaml").write_text(MODEL)
    return folder / "flywheel.yaml"


def test_the_guardrails_reach_the_gateways_policy_in_a_few_hundred_bytes(tmp_path: Path) -> None:
    settings = load_project(_write(tmp_path)).project.llm_settings("dev")

    text = settings.policy_json()
    policy = LlmPolicy.model_validate(json.loads(text))
    guardrails = policy.prompt("support-answer").guardrails
    assert guardrails is not None
    assert guardrails.input is not None
    assert guardrails.input.toxicity == 0.6
    assert guardrails.output is not None
    assert (guardrails.output.groundedness, guardrails.output.context_variable) == (
        0.6,
        "passages",
    )
    assert guardrails.bedrock is not None
    assert guardrails.bedrock.id == "abc123xyz"
    assert guardrails.blocked_input == "Please rephrase your question."
    # it counts against the 2,560-byte cap of FLYWHEEL_LLM_POLICY: keep it small
    assert len(text.encode()) < 400, text
    assert "canary" not in text


def test_defaults_are_left_out_of_the_policy_json(tmp_path: Path) -> None:
    lean = PROJECT.split("      guardrails:", maxsplit=1)[0] + "      guardrails: {input: {}}\n"
    text = load_project(_write(tmp_path, lean)).project.llm_settings("dev").policy_json()

    assert text == '{"prompts":{"support-answer":{"guardrails":{"input":{}}}}}'
    parsed = LlmPolicy.model_validate(json.loads(text)).prompt("support-answer").guardrails
    assert parsed == GuardrailPolicy.model_validate({"input": {"toxicity": 0.5}})
    assert parsed.on_error == "block"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("input: {toxicity: 0.6}", "input: {toxicity: 1.6}"),
            ":11: llm.prompts.support-answer.guardrails.input.toxicity: Input should be less",
        ),
        (
            ("toxicity: 0.5, groundedness: 0.6, context_variable: passages", "toxicity: null"),
            ":12: llm.prompts.support-answer.guardrails.output: name at least one",
        ),
        (
            (
                "toxicity: 0.5, groundedness: 0.6, context_variable: passages",
                "context_variable: passages",
            ),
            ":12: llm.prompts.support-answer.guardrails.output: context_variable "
            "is read by the groundedness check only",
        ),
        (
            ("context_variable: passages", "context_variable: 'pass ages'"),
            ":12: llm.prompts.support-answer.guardrails.output.context_variable: String should",
        ),
        (
            ('bedrock: {id: abc123xyz, version: "2"}', 'bedrock: {id: "ABC 1", version: "2"}'),
            ":13: llm.prompts.support-answer.guardrails.bedrock.id: String should match",
        ),
        (
            ("on_error: block", "on_error: ignore"),
            ":16: llm.prompts.support-answer.guardrails.on_error: Input should be 'block' or",
        ),
        (
            ('blocked_input: "Please rephrase your question."', 'blocked_input: ""'),
            ":14: llm.prompts.support-answer.guardrails.blocked_input: String should have at",
        ),
        (
            ("        on_error: block\n", "        on_eror: block\n"),
            ":16: llm.prompts.support-answer.guardrails.on_eror: unknown field",
        ),
        (
            (
                "        input: {toxicity: 0.6}\n"
                "        output: {toxicity: 0.5, groundedness: 0.6, context_variable: passages}\n",
                "",
            ),
            ":10: llm.prompts.support-answer.guardrails: name the input guardrail",
        ),
    ],
)
def test_bad_guardrails_are_refused_with_one_line_naming_field_and_line(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert edit[0] in PROJECT
    path = _write(tmp_path, PROJECT.replace(*edit))
    with pytest.raises(ProjectError) as raised:
        load_project(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}{expected}"), message
