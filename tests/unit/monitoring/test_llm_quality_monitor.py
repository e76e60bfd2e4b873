"""The production LLM quality monitor (ADR 82): a seeded sample of a prompt version's
captured calls scored by the embedded evaluators, its rates judged against the prompt's
monitor policy, the verdict recorded and audited, ``LlmQualityDegraded`` on a breach."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.errors import EvaluationUnavailableError, ProviderThrottledError
from flywheel.gateway.capture import CapturedCall, llm_capture_key
from flywheel.llm.evaluation import EvaluationInput, EvaluationScore
from flywheel.llm.monitor_policy import PromptMonitorPolicy, sampled
from flywheel.llm.policy import CaptureMode, CapturePolicy
from flywheel.llm.quality import QualityVerdictDoc
from flywheel.monitoring.llm_monitor import LLM_QUALITY_DEGRADED, LlmQualityMonitor
from flywheel.monitoring.reports import ReportIndex
from flywheel.monitoring.settings import MonitoringSettings
from flywheel.sdk import Flywheel
from flywheel.serving.capture import encode_rows
from flywheel.workflows.records import quality_key, read
from tests.factories import prompt_spec

NAME = "ticket-summary"
ANA = "arn:aws:iam::123456789012:user/ana.author"
BO = "arn:aws:iam::123456789012:user/bo.approver"
NOW = datetime(2026, 12, 7, 18, 30, tzinfo=UTC)
CLEAN = "Acme was charged twice for November and asks for one payment back."
TOXIC = "Stop whining, you pathetic moron. Nobody cares about your stupid billing problem."


class Stored:
    """The platform's artifact store, keeping what the monitor wrote by URI."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.objects: dict[str, bytes] = {}

    def put_json(self, key: str, obj: Any) -> Any:
        ref = self.store.put_json(key, obj)
        self.objects[ref.uri] = json.dumps(obj).encode()
        return ref

    def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
        ref = self.store.put(key, data, **kwargs)
        self.objects[ref.uri] = data
        return ref


@dataclass
class World:
    platform: InMemoryPlatform
    clock: FixedClock
    bo: Flywheel
    stored: Stored
    calls: int = 0

    def monitor(self, **policy: Any) -> LlmQualityMonitor:
        monitor = self.platform.llm_quality_monitor(MonitoringSettings(backend="local"))
        monitor.policies = {NAME: PromptMonitorPolicy.model_validate(policy)}
        monitor.artifacts = self.stored  # type: ignore[assignment]
        return monitor

    def capture(
        self,
        answers: list[str],
        *,
        version: int = 1,
        variant: str = "champion",
        policy: CapturePolicy | None = None,
        **extra: Any,
    ) -> list[str]:
        """Calls answered with ``answers``, captured as the gateway does, a minute ago."""
        rows, ids = [], []
        for answer in answers:
            self.calls += 1
            call = CapturedCall.example(policy=policy or CapturePolicy())
            call.request_id, call.prompt, call.version, call.variant = (
                f"req-{self.calls}",
                NAME,
                version,
                variant,
            )
            call.timestamp = (self.clock.now() - timedelta(minutes=1)).timestamp()
            call.variables = {"customer": "Acme", "ticket": "We were charged twice."}
            call.answer = answer
            rows.append({**call.row(), **extra})
            ids.append(call.request_id)
        key = llm_capture_key(NAME, version, (self.clock.now() - timedelta(minutes=1)).timestamp())
        self.platform.capture.put(key, encode_rows(rows))
        return ids

    def verdict(self, version: int = 1) -> QualityVerdictDoc:
        found = read(self.platform.records, quality_key(NAME, version), QualityVerdictDoc)
        assert found is not None
        return found[0]

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [e for e in self.platform.published.events if e[0] == LLM_QUALITY_DEGRADED]

    def actions(self) -> list[str]:
        return [str(e.action) for e in self.bo.audit_entries(NAME)]

    def report(self, uri: str | None) -> dict[str, Any]:
        """A report the monitor stored (its ``memory://`` or ``s3://`` URI)."""
        assert uri is not None
        data: dict[str, Any] = json.loads(self.stored.objects[uri])
        return data


@pytest.fixture
def world() -> World:
    clock = FixedClock(NOW)
    platform = InMemoryPlatform(clock=clock)
    ana, bo = Flywheel(platform, actor=ANA), Flywheel(platform, actor=BO)
    version = ana.register_prompt(prompt_spec(NAME), reason="first cut").version.version
    bo.approve_prompt(NAME, version, reason="reviewed")
    bo.promote_prompt(NAME, version, reason="first release")
    return World(platform, clock, bo, Stored(platform.artifacts))


def test_the_same_calls_are_sampled_on_every_run_and_about_the_rate_of_them() -> None:
    ids = [f"req-{i}" for i in range(2000)]

    first = [i for i in ids if sampled(7, i, 0.1)]

    assert first == [i for i in ids if sampled(7, i, 0.1)]
    assert 150 <= len(first) <= 250
    assert first != [i for i in ids if sampled(8, i, 0.1)]  # another seed, another sample


def test_toxic_answers_over_the_limit_degrade_the_version_publish_and_audit(
    world: World,
) -> None:
    world.capture([TOXIC] * 6 + [CLEAN] * 24)

    run = world.monitor(sample_rate=1.0, toxicity_rate_max=0.1, min_scored=20).run(NAME)

    [quality] = run.versions
    assert (quality.outcome, quality.scored, quality.sampled) == ("degraded", 30, 30)
    toxicity = quality.metrics["toxicity_rate"]
    assert (toxicity.value, toxicity.count, toxicity.failed) == (0.2, 30, 6)
    assert quality.breaches == ("toxicity_rate 0.200 > 0.1 (6 of 30 answers)",)
    [(_, detail)] = world.events()
    assert set(detail) == {
        "prompt_name", "version", "variant", "window_start", "window_end", "sampled",
        "scored", "metrics", "breaches", "report_uri",
    }  # fmt: skip
    assert (detail["prompt_name"], detail["version"], detail["variant"]) == (NAME, 1, "champion")
    assert detail["metrics"]["toxicity_rate"] == 0.2
    assert detail["report_uri"] == run.report_html
    verdict = world.verdict()
    assert (verdict.outcome, verdict.scored, verdict.event_id) == ("degraded", 30, quality.event_id)
    entry = world.bo.audit_entries(NAME)[-1]
    assert (str(entry.action), entry.version) == ("llm_quality_degraded", 1)
    assert entry.details["breaches"] == list(quality.breaches)
    assert world.bo.verify(NAME).ok
    report = world.report(run.report_json)
    worst = report["versions"][0]["worst"]
    assert worst[0]["metric"] == "toxicity_rate"
    assert worst[0]["answer"] == TOXIC
    assert "moron" in worst[0]["evidence"][0]["words"]


def test_clean_answers_are_healthy_and_publish_nothing(world: World) -> None:
    world.capture([CLEAN] * 25)

    run = world.monitor(sample_rate=1.0, min_scored=20).run(NAME)

    assert run.versions[0].outcome == "healthy"
    assert world.events() == []
    assert world.verdict().outcome == "healthy"
    assert world.actions()[-1] == "llm_quality_checked"


def test_too_few_scored_calls_give_no_verdict_either_way(world: World) -> None:
    world.capture([TOXIC] * 5)

    run = world.monitor(sample_rate=1.0, min_scored=20).run(NAME)

    assert run.versions[0].outcome == "insufficient"
    assert "5 of 5 sampled calls scored" in run.versions[0].reason
    assert world.events() == []


def test_a_breach_within_the_cooldown_is_recorded_but_not_published_again(
    world: World,
) -> None:
    monitor = world.monitor(
        sample_rate=1.0, toxicity_rate_max=0.1, min_scored=5, cooldown_minutes=60
    )
    world.capture([TOXIC] * 10)
    first = monitor.run(NAME)
    world.clock.advance(timedelta(minutes=30))
    world.capture([TOXIC] * 10)

    second = monitor.run(NAME)

    assert second.versions[0].outcome == "degraded"
    assert second.versions[0].event_id is None
    assert len(world.events()) == 1
    assert world.verdict().event_id == first.versions[0].event_id
    assert world.actions()[-2:] == ["llm_quality_degraded", "llm_quality_degraded"]
    world.clock.advance(timedelta(minutes=31))
    world.capture([TOXIC] * 10)
    assert monitor.run(NAME).versions[0].event_id is not None
    assert len(world.events()) == 2


def test_calls_without_text_are_unscorable_and_blocked_calls_are_counted_apart(
    world: World,
) -> None:
    world.capture([CLEAN] * 4, policy=CapturePolicy(mode=CaptureMode.HASH))
    world.capture([CLEAN] * 3, policy=CapturePolicy(mode=CaptureMode.NONE))
    blocked = {"stage": "output", "action": "blocked", "evaluator": "toxicity", "score": 0.9}
    world.capture([TOXIC] * 2, guardrail=blocked)
    world.capture([CLEAN] * 2)

    run = world.monitor(sample_rate=1.0, min_scored=2).run(NAME)

    [quality] = run.versions
    assert (quality.calls, quality.blocked, quality.sampled) == (11, 2, 9)
    assert (quality.unscorable, quality.scored, quality.outcome) == (7, 2, "healthy")
    assert "2 blocked by a guardrail, 7 without text" in quality.reason


def test_an_evaluator_outage_fails_the_run_visibly_after_retries(world: World) -> None:
    waits: list[float] = []

    class Throttled:
        name = "toxicity"

        def evaluate(self, item: EvaluationInput) -> EvaluationScore:
            raise ProviderThrottledError("throttled", field="provider")

    world.capture([CLEAN] * 25)
    monitor = world.monitor(sample_rate=1.0)
    monitor.evaluators = lambda _policy: {"toxicity": Throttled()}
    monitor.sleep = waits.append

    with pytest.raises(EvaluationUnavailableError, match="after 3 attempts"):
        monitor.run(NAME)

    assert waits == [0.5, 1.0]
    assert world.verdict().outcome == "failed"
    assert world.actions()[-1] == "llm_quality_failed"
    assert world.events() == []


def test_report_texts_follow_the_prompt_s_current_capture_policy(world: World) -> None:
    leaked = f"{TOXIC} Write to ana@example.com."
    world.capture([leaked] * 3, policy=CapturePolicy(mode=CaptureMode.FULL))
    monitor = world.monitor(sample_rate=1.0, min_scored=1)

    run = monitor.run(NAME)

    report = world.report(run.report_json)
    [worst, *_] = report["versions"][0]["worst"]
    assert "ana@example.com" not in json.dumps(report)
    assert "[REDACTED:email]" in worst["answer"]
    assert run.report_html is not None
    html = world.stored.objects[run.report_html]
    assert b"ana@example.com" not in html
    assert b"[REDACTED:email]" in html


def test_the_daily_budget_caps_scored_calls_across_runs(world: World) -> None:
    monitor = world.monitor(sample_rate=1.0, min_scored=1, budget={"max_calls": 10})
    world.capture([CLEAN] * 15)

    first = monitor.run(NAME).versions[0]
    world.clock.advance(timedelta(minutes=5))
    second = monitor.run(NAME).versions[0]

    assert (first.scored, first.over_budget) == (10, 5)
    assert (second.scored, second.over_budget, second.outcome) == (0, 15, "insufficient")
    world.clock.advance(timedelta(hours=6))  # the next UTC day
    world.capture([CLEAN] * 3)
    assert monitor.run(NAME).versions[0].scored == 3


def test_paid_evaluators_stop_at_the_money_budget(world: World) -> None:
    monitor = world.monitor(sample_rate=1.0, min_scored=1, budget={"max_usd": "0.001"})
    monitor.cost = lambda _policy, _item: Decimal("0.0003")
    world.capture([CLEAN] * 5)

    quality = monitor.run(NAME).versions[0]

    assert (quality.scored, quality.over_budget) == (3, 2)


def test_a_prompt_without_calls_in_the_window_is_skipped(world: World) -> None:
    world.capture([TOXIC] * 30)
    world.clock.advance(timedelta(hours=3))

    run = world.monitor(sample_rate=1.0).run(NAME)

    assert (run.status, run.reason) == ("skipped", "no captured calls from 2026-12-07T20:30Z on")
    assert world.events() == []


def test_the_reports_are_listed_with_the_monitors_reports(world: World) -> None:
    world.capture([CLEAN] * 3)
    run = world.monitor(sample_rate=1.0, min_scored=1).run(NAME)
    bucket = InMemoryCaptureSink()  # the artifacts bucket, as `flywheel monitor` lists it
    for uri, data in world.stored.objects.items():
        bucket.put(uri.removeprefix("memory://"), data)

    [entry] = ReportIndex(bucket).list(NAME)

    assert (entry.kind, entry.run_id) == ("quality", "2026-12-07T183000")
    assert run.report_html == f"memory://{entry.html_key}"
    assert b"Version 1 (champion): healthy" in ReportIndex(bucket).html(entry)


def test_the_function_emits_the_figures_per_prompt_and_version(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Flywheel/test")
    from functions.llm_monitor import handler

    world.capture([TOXIC] * 2 + [CLEAN] * 8)
    run = world.monitor(sample_rate=1.0, min_scored=1).run(NAME)
    capsys.readouterr()
    # powertools' Metrics instances share one metric set: start from an empty one
    handler.metrics.clear_metrics()

    handler._emit(run)
    handler.metrics.flush_metrics()

    [document] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert {"Prompt", "Version"} <= set(directive["Dimensions"][0])
    assert (document["Prompt"], document["Version"]) == (NAME, "1")
    assert document["ScoredCalls"] == [10.0]
    assert document["ToxicityRate"] == [0.2]
    assert {m["Name"] for m in directive["Metrics"]} >= {"ScoredCalls", "ToxicityRate"}


def test_in_aws_a_prompt_s_guardrail_judges_and_its_text_units_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flywheel.adapters.bedrock_guardrails import BedrockGuardrail
    from flywheel.composition import AwsPlatform
    from flywheel.llm.evaluators import FormatEvaluator, ToxicityEvaluator

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    platform = AwsPlatform(MonitoringSettings(backend="local"))
    guarded = PromptMonitorPolicy.model_validate({"guardrail": {"id": "gr1abc", "version": "3"}})
    item = EvaluationInput(answer="a" * 2500, question="q" * 100, context=("c" * 1400,))
    # the local runtime: the embedded evaluators, free
    assert isinstance(platform.quality_evaluators(guarded)["toxicity"], ToxicityEvaluator)
    assert platform.quality_cost(guarded, item) == 0

    platform.settings = platform.settings.model_copy(update={"backend": "aws"})
    evaluators = platform.quality_evaluators(guarded)

    assert {type(e).__module__ for n, e in evaluators.items() if n != "format"} == {
        BedrockGuardrail.__module__
    }
    assert isinstance(evaluators["format"], FormatEvaluator)
    # content filters on 3 units of answer, grounding on 4 units of answer+question+context
    assert platform.quality_cost(guarded, item) == Decimal("0.00015") * 3 + Decimal("0.0001") * 4
    assert platform.quality_cost(PromptMonitorPolicy(), item) == 0  # no guardrail: embedded
