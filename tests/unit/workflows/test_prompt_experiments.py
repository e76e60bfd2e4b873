"""Shadow and A/B experiments between prompt versions: the same record, rules and audit as a
model's, and a report of the gateway's captured calls per variant (calls, errors, latency,
tokens, cost, the A/B split)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from flywheel.cli import app as cli
from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.errors import ExperimentRefusedError, PromotionInProgressError
from flywheel.llm.comparison import NOT_COMPARED, PromptComparison
from flywheel.sdk import Flywheel
from flywheel.serving.capture import encode_rows
from flywheel.settings import Settings
from flywheel.workflows.experiments import ExperimentService
from tests.factories import prompt_spec

NAME = "ticket-summary"
ANA, BO = "ana", "bo"
START = datetime(2026, 3, 10, 9, 40, tzinfo=UTC)


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> InMemoryPlatform:
    """Version 1 is the champion; version 2 is approved (its workflow not run here)."""
    shared = InMemoryPlatform(Settings(backend="local"), clock=FixedClock(START))
    ana, bo = Flywheel(shared, actor=ANA), Flywheel(shared, actor=BO)
    ana.register_prompt(prompt_spec(NAME))
    ana.register_prompt(prompt_spec(NAME, template="Hi {{ customer }}: {{ ticket }}"))
    bo.approve_prompt(NAME, 1, reason="ok")
    bo.approve_prompt(NAME, 2, reason="ok")
    bo.promote_prompt(NAME, 1, reason="first champion")
    monkeypatch.setattr(cli, "_sdk", lambda: Flywheel(shared, actor=cli.STATE.actor or BO))
    return shared


def capture(platform: InMemoryPlatform, version: int, rows: list[dict[str, Any]]) -> None:
    """What the gateway writes: one object of call rows under the prompt's partition."""
    hour = datetime.fromisoformat(rows[0]["timestamp"].replace("Z", "+00:00"))
    key = (
        f"llm-capture/prompt={NAME}/version={version}/dt={hour:%Y-%m-%d}/hour={hour:%H}/"
        f"{uuid.uuid4().hex}.jsonl.gz"
    )
    platform.capture.put(key, encode_rows(rows))


def call(
    variant: str, version: int, *, minutes: float, status: int = 200, **extra: Any
) -> dict[str, Any]:
    moment = START + timedelta(minutes=minutes)
    return {
        "request_id": uuid.uuid4().hex,
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "prompt": NAME,
        "version": version,
        "variant": variant,
        "status": status,
        "latency_ms": extra.pop("latency_ms", 800.0),
        "usage": {"input_tokens": 100, "output_tokens": 20 if status == 200 else 0},
        "cost": extra.pop("cost", "0.00004"),
        "output_valid": status == 200,
        "repaired": False,
        **extra,
    }


def shell(*args: str, actor: str = BO) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.app, ["--actor", actor, "experiment", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_shadow_experiment_of_a_prompt_is_started_compared_and_stopped_audited(
    platform: InMemoryPlatform,
) -> None:
    code, out, err = shell("start", NAME, "--shadow", "2", "-r", "try the short wording")
    assert code == 0, err
    assert "shadow of v2 against champion v1, running" in out

    # The gateway answered with the champion and a copy with version 2 in the background
    capture(platform, 1, [call("champion", 1, minutes=-5)])  # before the start: left out
    capture(platform, 1, [call("champion", 1, minutes=m, latency_ms=700.0 + m) for m in (1, 2, 3)])
    capture(platform, 2, [
        call("shadow", 2, minutes=1, latency_ms=1500.0, cost="0.00010"),
        call("shadow", 2, minutes=2, status=504, latency_ms=30000.0, cost="0.00003"),
    ])  # fmt: skip

    code, out, err = shell("status", NAME, "--json")
    assert code == 0, err
    report = json.loads(out)
    comparison = report["comparison"]
    assert (comparison["kind"], comparison["rows"]) == ("prompt", 5)
    champion, shadow = comparison["variants"]
    assert (champion["variant"], champion["version"], champion["calls"], champion["errors"]) == (
        "champion", 1, 3, 0,
    )  # fmt: skip
    assert (champion["latency_p50_ms"], champion["cost"]) == (702.0, "0.00012")
    assert (shadow["variant"], shadow["calls"], shadow["errors"], shadow["error_rate"]) == (
        "shadow", 2, 1, 0.5,
    )  # fmt: skip
    assert (shadow["input_tokens"], shadow["output_tokens"]) == (200, 20)
    assert (shadow["cost"], shadow["cost_per_call"]) == ("0.00013", "0.000065")
    assert comparison["split"] is None
    assert comparison["not_compared"] == NOT_COMPARED

    code, out, _ = shell("status", NAME)
    assert code == 0
    assert "ticket-summary: 5 captured calls by variant" in out
    assert "not compared: answers are not compared" in out

    code, out, _ = shell("stop", NAME, "-r", "seen enough")
    assert code == 0
    assert "stopped by bo: seen enough" in out
    entries = Flywheel(platform, actor=BO).audit_entries(NAME)
    started, stopped = [e for e in entries if str(e.action).startswith("experiment_")]
    assert (str(started.action), started.actor, started.version) == ("experiment_started", BO, 2)
    assert (started.reason, started.details["kind"], started.details["control"]) == (
        "try the short wording", "shadow", 1,
    )  # fmt: skip
    assert (str(stopped.action), stopped.reason) == ("experiment_stopped", "seen enough")
    assert Flywheel(platform, actor=BO).verify(NAME).ok


def test_an_ab_test_of_a_prompt_reports_the_split_and_needs_a_named_winner(
    platform: InMemoryPlatform,
) -> None:
    fw = Flywheel(platform, actor=BO)
    fw.start_experiment(NAME, ab=2, weight=0.2, reason="compare wordings")
    capture(platform, 1, [call("a", 1, minutes=m / 10) for m in range(1, 81)])
    capture(platform, 2, [call("b", 2, minutes=m / 10) for m in range(1, 21)])

    report = fw.experiment_report(NAME)

    comparison = report.comparison
    assert isinstance(comparison, PromptComparison)
    assert comparison.split is not None
    assert (comparison.split.calls_a, comparison.split.calls_b) == (80, 20)
    assert (comparison.split.observed_share_b, comparison.split.expected_share_b) == (0.2, 0.2)
    assert comparison.split.sample_ratio_mismatch is False
    assert [v.cost for v in comparison.variants] == [Decimal("0.00320"), Decimal("0.00080")]
    with pytest.raises(ExperimentRefusedError, match="name the winner with --version"):
        ExperimentService.winner(report)
    assert ExperimentService.winner(report, 2) == 2


def test_a_broken_split_is_called_a_sample_ratio_mismatch(platform: InMemoryPlatform) -> None:
    fw = Flywheel(platform, actor=BO)
    fw.start_experiment(NAME, ab=2, weight=0.5, reason="compare wordings")
    capture(platform, 1, [call("a", 1, minutes=m / 10) for m in range(1, 91)])
    capture(platform, 2, [call("b", 2, minutes=m / 10) for m in range(1, 11)])

    comparison = fw.experiment_report(NAME).comparison

    assert isinstance(comparison, PromptComparison)
    assert comparison.split is not None
    assert comparison.split.sample_ratio_mismatch is True
    code, out, _ = shell("status", NAME)
    assert code == 0
    assert "sample ratio mismatch" in out


def test_a_prompt_experiment_waits_for_a_canary_and_a_canary_for_an_experiment(
    platform: InMemoryPlatform,
) -> None:
    fw = Flywheel(platform, actor=BO)
    fw.registry.start_canary(NAME, 2, actor="workflow:test", reason="canary at 10%")

    code, _, err = shell("start", NAME, "--ab", "2")

    assert code == 1
    assert "version 2 of 'ticket-summary' is on canary" in err
    with pytest.raises(PromotionInProgressError):
        fw.start_experiment(NAME, shadow=2)


def test_status_before_any_call_says_so(platform: InMemoryPlatform) -> None:
    Flywheel(platform, actor=BO).start_experiment(NAME, shadow=2)

    code, out, _ = shell("status", NAME)

    assert code == 0
    assert "no captured calls since it started" in out
