"""``flywheel cost report``: spend, calls and tokens per prompt (by version and variant)
and per team from the usage counters; requests, GB-seconds and an estimate per model
version from the inference functions' metrics, "no serving metrics" where there are
none; bad input is one error line and a non-zero exit."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.adapters.memory_serving_usage import InMemoryServingUsage
from flywheel.cli import app as cli
from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.llm.budgets import BudgetCall
from flywheel.llm.policy import LlmPolicy
from flywheel.llm.providers import Usage
from flywheel.sdk import Flywheel
from flywheel.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "prompts"
PROMPT = "ticket-summary"
NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
POLICY = LlmPolicy.model_validate(
    {
        "teams": {"support": {"month": "100"}},
        "prompts": {PROMPT: {"teams": ["support", "billing"], "budget": {"day": "5"}}},
    }
)


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> InMemoryPlatform:
    """Calls of ticket-summary v1 (champion) and v2 (canary) this month and one in
    November; model churn served by two pinned Lambda versions, model iris not at all."""
    settings = Settings(
        backend="local", inference_functions={"churn": "fn-churn", "iris": "fn-iris"}
    )
    clock = FixedClock(datetime(2026, 11, 30, 12, tzinfo=UTC))
    shared = InMemoryPlatform(settings, clock=clock)
    fw = Flywheel(shared, actor="ana")
    fw.register_prompt(EXAMPLES / "ticket-summary.v1.yaml", reason="first")
    budgets = shared.budgets(POLICY)

    def call(version: int, variant: str, tokens_in: int, tokens_out: int) -> None:
        reservation = budgets.reserve(
            BudgetCall(prompt=PROMPT, teams=POLICY.prompt(PROMPT).teams, provider="local",
                       model_id="local.stand-in", input_tokens=1000, max_tokens=1000)
        )  # fmt: skip
        budgets.settle(reservation, Usage(input_tokens=tokens_in, output_tokens=tokens_out),
                       version=version, variant=variant)  # fmt: skip

    call(1, "champion", 5000, 5000)  # 30 November: outside December
    clock.advance(timedelta(days=5))  # 5 December
    for _ in range(3):
        call(1, "champion", 1000, 500)  # 0.002 each at 0.001/0.002 per 1k
    call(2, "canary", 2000, 0)  # 0.002

    usage = shared.serving_usage
    assert isinstance(usage, InMemoryServingUsage)
    usage.add_version("fn-churn", "1", memory_mb=1024, model_version=None)  # bootstrap
    usage.add_version("fn-churn", "2", memory_mb=1024, model_version=3)
    usage.add_version("fn-churn", "3", memory_mb=2048, model_version=4)
    usage.add_version("fn-iris", "1", memory_mb=1024, model_version=1)
    day = date(2026, 12, 5)
    usage.add_usage("fn-churn", "2", day, invocations=1000, duration_ms=50_000)
    usage.add_usage("fn-churn", "3", day, invocations=500, duration_ms=25_000)
    usage.add_usage("fn-churn", "3", date(2026, 11, 30), invocations=7, duration_ms=7_000)

    clock.advance(timedelta(days=2))  # today: 7 December
    monkeypatch.setattr(cli, "_sdk", lambda: Flywheel(shared, actor="ana"))
    return shared


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.app, ["cost", "report", *args])
    return result.exit_code, result.stdout, result.stderr


def _row(out: str, *cells: str) -> bool:
    """Whether a line of ``out`` holds ``cells`` in order (columns padded with spaces)."""
    return any(line.split() == list(cells) for line in out.splitlines())


def test_this_months_report_by_prompt_team_and_model(platform: InMemoryPlatform) -> None:
    code, out, err = _run()

    assert (code, err) == (0, "")
    assert "LLM calls by prompt, 2026-12-01 to 2026-12-07" in out
    # prompt | version | calls | input tokens | output tokens | spend | per 1k calls
    assert _row(out, PROMPT, "all", "4", "5,000", "1,500", "0.008000", "2.000000")
    assert _row(out, "v1", "champion", "3", "3,000", "1,500", "0.006000", "2.000000")
    assert _row(out, "v2", "canary", "1", "2,000", "0", "0.002000", "2.000000")
    assert "spend USD" in out
    # each team sees the same calls, by prompt
    assert _row(out, "billing", "all", "4", "5,000", "1,500", "0.008000", "2.000000")
    assert _row(out, "support", "all", "4", "5,000", "1,500", "0.008000", "2.000000")
    assert _row(out, PROMPT, "4", "5,000", "1,500", "0.008000", "2.000000")
    # churn: v3 on Lambda version 2 (1 GB), v4 on version 3 (2 GB); November left out
    assert _row(out, "churn", "all", "1,500", "100.0", "0.001967", "0.001311")
    assert _row(out, "v3", "(lambda", "2)", "1,000", "50.0", "0.001033", "0.001033")
    assert _row(out, "v4", "(lambda", "3)", "500", "50.0", "0.000933", "0.001867")
    assert "https://aws.amazon.com/lambda/pricing/" in out
    assert "no serving metrics for iris in this period" in out
    assert "no serving metrics for churn" not in out


def test_json_has_exact_amounts(platform: InMemoryPlatform) -> None:
    code, out, _ = _run("--json", "--since", "2026-11-30")

    body = json.loads(out)
    assert code == 0
    (prompt,) = body["llm"]["prompts"]
    assert (prompt["calls"], prompt["cost"]) == (5, "0.023")  # November's call included
    assert [(v["version"], v["variant"], v["calls"]) for v in prompt["variants"]] == [
        (1, "champion", 4), (2, "canary", 1),
    ]  # fmt: skip
    assert [t["team"] for t in body["llm"]["teams"]] == ["billing", "support"]
    churn, iris = body["models"]["models"]
    assert [v["model_version"] for v in churn["versions"]] == [3, 4]
    v4 = churn["versions"][1]
    assert (v4["requests"], v4["gb_seconds"]) == (507, "64")
    assert Decimal(v4["cost"]) == Decimal(64) * Decimal("0.0000166667") + 507 * Decimal("0.0000002")
    assert (iris["metrics"], iris["requests"], iris["cost"]) == (False, None, None)
    assert iris["note"] == "no serving metrics for iris in this period"


def test_a_prompt_or_a_team_narrows_the_report(platform: InMemoryPlatform) -> None:
    code, out, _ = _run("--prompt", PROMPT, "--until", "2026-12-05")
    assert code == 0
    assert _row(out, PROMPT, "all", "4", "5,000", "1,500", "0.008000", "2.000000")
    assert "by team" not in out
    assert "Model serving" not in out

    code, out, _ = _run("--team", "support", "--since", "2026-12-06")
    assert code == 0
    assert out.strip() == "no calls charged to team support in this period"

    code, out, _ = _run("--team", "nobody")
    assert (code, out.strip()) == (0, "no calls charged to team nobody in this period")


def test_a_period_without_calls_or_metrics_says_so(platform: InMemoryPlatform) -> None:
    code, out, _ = _run("--since", "2026-12-06", "--until", "2026-12-07")

    assert code == 0
    assert "no LLM calls in this period" in out
    assert "no LLM calls charged to a team in this period" in out
    assert "no serving metrics for churn in this period" in out
    assert "no serving metrics for iris in this period" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "2026-13-01"), "error: since: '2026-13-01' is not a day (YYYY-MM-DD)"),
        (("--until", "7/12/2026"), "error: until: '7/12/2026' is not a day (YYYY-MM-DD)"),
        (("--since", "2026-12-07", "--until", "2026-12-01"), "error: since: 2026-12-07 is after"),
        (("--since", "2026-12-08", "--until", "2026-12-09"), "error: since: 2026-12-08 is in the"),
        (("--since", "2024-01-01"), "error: since: a report covers at most 455 days"),
        (("--prompt", "nope"), "error: prompt 'nope' does not exist"),
        (("--team", "Support!"), "error: team: 'Support!' is not a team tag"),
    ],
)
def test_bad_input_is_one_error_line(
    platform: InMemoryPlatform, args: tuple[str, ...], message: str
) -> None:
    code, out, err = _run(*args)

    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(message)


def test_a_deployment_without_models_or_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = InMemoryPlatform(clock=FixedClock(NOW))
    monkeypatch.setattr(cli, "_sdk", lambda: Flywheel(shared, actor="ana"))

    code, out, _ = _run()

    assert code == 0
    assert out.splitlines() == [
        "no LLM calls in this period",
        "",
        "no LLM calls charged to a team in this period",
        "",
        "Model serving (AWS Lambda), 2026-12-01 to 2026-12-07",
        "no inference functions in this deployment",
    ]
