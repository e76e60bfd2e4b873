"""The project file's ``llm:`` section: each stage's LLM policy and prompt canaries, with
the file, line and field of the first problem."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from flywheel.llm.policy import CaptureMode, LlmPolicy
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
  - name: prod
    account: "222222222222"
models:
  - name: churn
llm:
  monthly_budget: 50
  teams:
    support: {day: 5, month: 100}
  prompts:
    ticket-summary:
      teams: [support]
      budget: {day: 2, month: 40}
      capture: {mode: redact, redact: [email, phone]}
      alarms: {error_rate_percent: 5, latency_p99_ms: 15000, cost_per_call: 0.002}
      canary:
        steps:
          - {weight: 0.1, bake_minutes: 5}
          - {weight: 0.5, bake_minutes: 5}
  overrides:
    prod:
      monthly_budget: 500
      prompts:
        ticket-summary:
          budget: {day: 20, month: 400}
"""


def _write(folder: Path, project: str = PROJECT) -> Path:
    (folder / "flywheel.yaml").write_text(project)
    (folder / "models" / "churn").mkdir(parents=True)
    (folder / "models" / "churn" / "model.yaml").write_text(MODEL)
    return folder / "flywheel.yaml"


def test_each_stage_gets_the_section_with_its_own_override(tmp_path: Path) -> None:
    project = load_project(_write(tmp_path)).project
    dev, prod = project.llm_settings("dev"), project.llm_settings("prod")

    # dev: the section as written
    assert dev.monthly_budget == Decimal(50)
    prompt = dev.prompts["ticket-summary"]
    assert prompt.teams == ("support",)
    assert (prompt.budget.day, prompt.budget.month) == (Decimal(2), Decimal(40))
    assert (prompt.capture.mode, prompt.capture.redact) == (CaptureMode.REDACT, ("email", "phone"))
    assert prompt.alarms.cost_per_call == Decimal("0.002")
    assert [(s.weight, s.bake_minutes) for s in prompt.canary.steps] == [(0.1, 5), (0.5, 5)]
    # prod: the override replaces the prompt's budget and the project budget, and keeps
    # every field it does not name (teams, capture, alarms, canary, team budgets)
    prod_prompt = prod.prompts["ticket-summary"]
    assert prod.monthly_budget == Decimal(500)
    assert (prod_prompt.budget.day, prod_prompt.budget.month) == (Decimal(20), Decimal(400))
    assert prod_prompt.teams == ("support",)
    assert prod_prompt.capture == prompt.capture
    assert prod_prompt.canary == prompt.canary
    assert prod.teams == dev.teams


def test_the_gateways_policy_is_the_section_without_the_canaries(tmp_path: Path) -> None:
    project = load_project(_write(tmp_path)).project
    settings = project.llm_settings("dev")
    text = settings.policy_json()
    assert "canary" not in text
    assert len(text) < 400  # defaults are left out: it travels in an environment variable
    policy = LlmPolicy.model_validate(json.loads(text))
    assert policy == settings.policy()
    assert policy.prompt("ticket-summary").budget.month == Decimal(40)
    assert policy.budget_policy().teams["support"].day == Decimal(5)
    # what the CDK app's StageConfig is built from carries it
    data = project.stage_config_data("prod")
    assert data["llm"]["monthly_budget"] == Decimal(500)


def test_a_project_without_the_section_gives_every_stage_the_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, PROJECT.split("llm:", maxsplit=1)[0])
    project = load_project(path).project
    assert project.llm is None
    settings = project.llm_settings("prod")
    assert (settings.prompts, settings.monthly_budget) == ({}, None)
    assert settings.policy_json() == "{}"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # an unknown field of a prompt
        (
            ("      teams: [support]", "      team: [support]"),
            ":15: llm.prompts.ticket-summary.team: unknown field",
        ),
        # a capture mode that does not exist
        (
            ("mode: redact", "mode: mask"),
            ":17: llm.prompts.ticket-summary.capture.mode: Input should be",
        ),
        # a pattern that is neither built in nor defined
        (
            ("redact: [email, phone]", "redact: [email, iban]"),
            ":17: llm.prompts.ticket-summary.capture: redact names unknown patterns ['iban']",
        ),
        # a day limit above its month's
        (
            ("budget: {day: 2, month: 40}", "budget: {day: 50, month: 40}"),
            ":16: llm.prompts.ticket-summary.budget: day limit 50 is above month limit 40",
        ),
        # a team tag that is not one
        (
            ("      teams: [support]", "      teams: [Support]"),
            ":15: llm.prompts.ticket-summary.teams: team 'Support'",
        ),
        # canary weights that do not increase
        (
            ("weight: 0.5", "weight: 0.05"),
            ":20: llm.prompts.ticket-summary.canary.steps: weights must increase",
        ),
        # a negative cost alarm
        (
            ("cost_per_call: 0.002", "cost_per_call: -1"),
            ":18: llm.prompts.ticket-summary.alarms.cost_per_call: Input should be greater than 0",
        ),
        # a monthly budget of nothing
        (
            ("monthly_budget: 50", "monthly_budget: 0"),
            ":10: llm.monthly_budget: Input should be greater than 0",
        ),
        # an override of a stage the project does not have
        (
            ("    prod:\n      monthly_budget: 500", "    test:\n      monthly_budget: 500"),
            ":9: llm: overrides name unknown stage(s) ['test']",
        ),
        # an override's own bad field
        (
            ("monthly_budget: 500", "monthly_budget: lots"),
            ":25: llm.overrides.prod.monthly_budget: Input should be",
        ),
        (
            ("budget: {day: 20, month: 400}", "budget: {day: 20, month: 4}"),
            ":28: llm.overrides.prod.prompts.ticket-summary.budget: day limit 20 is above",
        ),
        # a prompt with a model's name (one registry name holds one kind), in an override too
        (
            ("    ticket-summary:\n      teams", "    churn:\n      teams"),
            ":9: llm: prompt(s) ['churn'] have the name of a model",
        ),
        (
            ("        ticket-summary:\n          budget", "        churn:\n          budget"),
            ":9: llm: prompt(s) ['churn'] have the name of a model",
        ),
    ],
)
def test_bad_llm_sections_are_refused_with_one_line_naming_field_and_line(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert edit[0] in PROJECT
    path = _write(tmp_path, PROJECT.replace(*edit))
    with pytest.raises(ProjectError) as raised:
        load_project(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}{expected}"), message


def _prompts(first: int, count: int, indent: str = "    ") -> str:
    """``count`` prompts with a redaction pattern of their own each (about 80 bytes of
    policy JSON apiece)."""
    return "".join(
        f"{indent}prompt-{i:02d}:\n"
        f"{indent}  capture: {{patterns: {{order_{i}: 'ORD-[0-9]{{8}}-{i:02d}'}}, "
        f"redact: [order_{i}]}}\n"
        for i in range(first, first + count)
    )


def test_a_policy_too_large_for_the_gateways_environment_is_refused(tmp_path: Path) -> None:
    # Sixty prompts with their own patterns: more than Lambda's environment can carry.
    project = PROJECT.split("llm:", maxsplit=1)[0] + "llm:\n  prompts:\n" + _prompts(0, 60)
    path = _write(tmp_path, project)
    with pytest.raises(ProjectError) as raised:
        load_project(path)
    assert ":9: llm: the gateway's policy is " in str(raised.value)
    assert "bytes as JSON, at most 2560" in str(raised.value)


def test_an_override_that_only_grows_too_large_once_merged_is_refused(tmp_path: Path) -> None:
    # The base and the override fit alone; prod, which has both, does not.
    project = (
        PROJECT.split("llm:", maxsplit=1)[0]
        + "llm:\n  prompts:\n"
        + _prompts(0, 25)
        + "  overrides:\n    prod:\n      prompts:\n"
        + _prompts(25, 25, indent="        ")
    )
    path = _write(tmp_path, project)
    with pytest.raises(ProjectError) as raised:
        load_project(path)
    assert ":62: llm.overrides.prod: the gateway's policy is " in str(raised.value)


def test_project_check_names_the_bad_llm_field_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flywheel.cli.app import app

    path = _write(tmp_path, PROJECT.replace("mode: redact", "mode: mask"))
    result = CliRunner().invoke(app, ["project", "check", str(path)])
    assert result.exit_code == 1
    assert "flywheel.yaml:17: llm.prompts.ticket-summary.capture.mode: Input should be" in (
        result.output
    )


GATE = """          - {weight: 0.5, bake_minutes: 5}
      gate:
        groundedness_min: 0.7
        toxicity_rate_max: 0
        max_drop_vs_champion: 0.02
"""


def test_a_prompts_gate_reaches_the_evaluation_step_not_the_gateway(tmp_path: Path) -> None:
    project = load_project(
        _write(tmp_path, PROJECT.replace("          - {weight: 0.5, bake_minutes: 5}\n", GATE))
    ).project

    settings = project.llm_settings("prod")

    assert json.loads(settings.gates_json()) == {
        "ticket-summary": {
            "groundedness_min": 0.7, "toxicity_rate_max": 0.0, "max_drop_vs_champion": 0.02,
        }
    }  # fmt: skip
    assert "gate" not in settings.policy_json()
    assert "groundedness" not in settings.policy_json()


def test_a_bad_gate_is_refused_naming_its_line_and_field(tmp_path: Path) -> None:
    bad = GATE.replace("toxicity_rate_max: 0", "toxicity_rate_max: 5")
    path = _write(tmp_path, PROJECT.replace("          - {weight: 0.5, bake_minutes: 5}\n", bad))

    with pytest.raises(ProjectError) as raised:
        load_project(path)

    assert str(raised.value).startswith(
        f"{path}:25: llm.prompts.ticket-summary.gate.toxicity_rate_max: Input should be less"
    ), raised.value


# -- a prompt's production monitor (ADR 82) --------------------------------------------------
MONITORED = PROJECT.replace(
    "      canary:\n        steps:",
    "      monitor:\n"
    "        sample_rate: 0.2\n"
    "        seed: 7\n"
    "        budget: {max_calls: 300, max_usd: 1.5}\n"
    "        toxicity_rate_max: 0.02\n"
    "        groundedness_min: 0.7\n"
    "        min_scored: 40\n"
    "        rollback_canary: false\n"
    "      canary:\n        steps:",
    1,
)


def test_a_prompt_s_monitor_reaches_the_monitor_and_not_the_gateway(tmp_path: Path) -> None:
    settings = load_project(_write(tmp_path, MONITORED)).project.llm_settings("dev")

    monitor = settings.prompts["ticket-summary"].monitor
    assert monitor is not None
    assert (monitor.sample_rate, monitor.seed, monitor.min_scored) == (0.2, 7, 40)
    assert (monitor.budget.max_calls, monitor.budget.max_usd) == (300, Decimal("1.5"))
    assert monitor.rollback_canary is False
    assert "monitor" not in settings.policy_json()
    assert "sample_rate" not in settings.policy_json()
    handed = json.loads(settings.monitors_json())
    assert handed["ticket-summary"]["toxicity_rate_max"] == 0.02
    assert json.loads(settings.prompts_json()) == ["ticket-summary"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("sample_rate: 0.2", "sample_rate: 0"),
            ":20: llm.prompts.ticket-summary.monitor.sample_rate: Input should be greater than 0",
        ),
        (
            ("toxicity_rate_max: 0.02", "toxicity_rate_max: 2"),
            ":23: llm.prompts.ticket-summary.monitor.toxicity_rate_max: Input should be less",
        ),
        (
            ("budget: {max_calls: 300, max_usd: 1.5}", "budget: {max_calls: 0}"),
            ":22: llm.prompts.ticket-summary.monitor.budget.max_calls: Input should be greater",
        ),
        (
            ("min_scored: 40", "min_score: 40"),
            ":25: llm.prompts.ticket-summary.monitor.min_score: unknown field",
        ),
    ],
)
def test_a_bad_monitor_is_refused_with_its_line_and_field(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert edit[0] in MONITORED
    path = _write(tmp_path, MONITORED.replace(*edit))

    with pytest.raises(ProjectError) as raised:
        load_project(path)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}{expected}"), message
