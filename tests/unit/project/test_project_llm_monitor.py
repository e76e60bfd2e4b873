"""A prompt's ``monitor:`` in the project file (ADR 82): validated with file, line and
field, left out of the gateway's policy, handed to the quality monitor by prompt."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from flywheel.project import ProjectError, load_project
from tests.unit.project.test_project_llm import PROJECT, _write

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
