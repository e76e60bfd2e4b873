"""The prompt part of ``flywheel demo``: a prompt's versions under the model lifecycle.

Two versions of ``ticket-summary`` are registered by one person and approved by another;
version 1 becomes the champion. The evaluation gate rejects an ungrounded candidate of
``support-answer`` and promotes a grounded one (:func:`_gate_stage`). Version 2 goes on
canary and real calls reach ``POST /v1/prompts/{name}/invoke``; its model then fails, the
cost report is printed, the daily budget runs out (429), and the error-rate alarm rolls it
back. Then a toxic canary is rolled back by the quality monitor
(:func:`run_quality_monitor_demo`). moto does not evaluate alarms: the demo measures the
canary's error rate from the captured calls and sets the alarm's state with that figure as
the reason; everything else is the deployed code path.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flywheel.local.lifecycle import APPROVER, OPERATOR, PROMOTION
from flywheel.local.runtime import readable
from flywheel.local.synth import repo_root

if TYPE_CHECKING:
    from collections.abc import Callable
    from decimal import Decimal

    from flywheel.local.lifecycle import Lifecycle, LifecycleRun

PROMPT = "ticket-summary"
#: The retrieval-augmented prompt whose evaluation gate the demo shows (the default
#: project declares its gate: groundedness at least 0.6, no toxic answer).
GATED_PROMPT = "support-answer"
#: Its candidates: answers that repeat a promise the passages never make, then answers
#: from the passages (``examples/prompts/``).
UNGROUNDED_SPEC = "support-answer.promise.yaml"
GROUNDED_SPEC = "support-answer.v1.yaml"
#: The application that calls the prompt (an ``<prefix>-application`` principal).
APPLICATION = "arn:aws:sts::123456789012:assumed-role/flywheel-dev-application/helpdesk"
#: The canary's provider model (version 2's ``model_id``), whose calls the demo fails.
CANARY_MODEL = "amazon.nova-lite-v1:0"
#: The third version's provider model (``ticket-summary.v3-tone.yaml``), made abusive.
TONE_MODEL = "amazon.nova-micro-v1:0"
#: Batches of calls at most before the demo gives up on reaching the canary.
MAX_BATCHES = 30
TICKETS: tuple[dict[str, Any], ...] = (
    {
        "customer": "Acme GmbH",
        "area": "billing",
        "ticket": "We were charged twice for November. Card 4111 1111 1111 1111 shows two "
        "payments of 49 EUR. Please refund one and mail billing@acme.example.",
    },
    {
        "customer": "Northwind",
        "area": "login",
        "ticket": "Nobody on the team can sign in since this morning; the page says the "
        "session expired right after the password. Call +44 20 7946 0958.",
    },
    {
        "customer": "Globex",
        "area": "performance",
        "ticket": "Reports take four minutes to load since the last release, they took "
        "ten seconds before. It happens for every user in the EU workspace.",
        "max_sentences": 1,
    },
    {
        "customer": "Initech",
        "area": "other",
        "ticket": "Could you tell us how to export all tickets of 2026 as CSV for our "
        "auditors? Order 1234 5678 9012 3456 is the support plan we bought.",
    },
)


def run_prompt_demo(life: Lifecycle, run: LifecycleRun, progress: Callable[[str], None]) -> None:
    """The prompt stages of the demo (after the model's promotion)."""
    examples = repo_root() / "examples" / "prompts"
    author, approver = life.sdk(OPERATOR), life.sdk(APPROVER)
    facts: dict[str, Any] = {}
    run.facts["prompt"] = facts
    _first_version(life, run, progress, facts)
    _gate_stage(life, run, progress, facts)
    canary_stage = "prompt v2 on canary, calls through POST /v1/prompts/{name}/invoke"
    with run.stage(canary_stage, progress) as n:
        second = author.register_prompt(examples / "ticket-summary.v2.yaml", reason="JSON answers")
        known = len(life.executions(PROMOTION))
        life.driver.hold_waits(True)
        try:
            approver.approve_prompt(PROMPT, second.version.version, reason="schema reviewed")
            promotion = life.wait_for_new_execution(PROMOTION, known)["executionArn"]
            life.wait(promotion, until="Bake")
            answers = _calls_until(life, lambda found: len(_count(found, "variant")) == 2)
            variants = _count(answers, "variant")
            facts["variants"] = variants
            n.append(f"{len(answers)} calls → {variants}")
            # The canary's model starts failing: calls until the canary answered 3 of them.
            life.driver.inject_llm(*[f"ModelErrorException@{CANARY_MODEL}"] * 3)
            failing = _calls_until(life, lambda _: _canary_errors(life) >= 3)
            facts["while_failing"] = _count(failing, "status")
            n.append(f"canary's model fails: {len(failing)} calls → {facts['while_failing']}")
            rate = _canary_error_rate(life)
            facts["canary_error_rate"] = rate
            n.append(f"canary error rate {rate:.0f}% (from the captured calls)")
            with run.stage("flywheel cost report --prompt ticket-summary", progress) as lines:
                lines.extend(_cost_lines(life))
            with run.stage("the prompt's daily budget runs out", progress) as lines:
                lines.append(_exhaust_budget(life, facts))
            _judge(life, rate)
        finally:
            life.driver.clear_llm_faults()
            life.driver.hold_waits(False)
        status, states = life.wait(promotion)
        model = approver.get_model(PROMPT)
        facts["v2_promotion"] = {"status": status, "states": states, "champion": model.champion}
        n.append(f"canary judged: {' → '.join(states[-3:])}; champion v{model.champion}")
    run_quality_monitor_demo(life, run, progress, facts)
    with run.stage("prompt audit chain", progress) as n:
        report = approver.verify(PROMPT)
        facts["verified"] = report.ok
        actions = [str(e.action) for e in approver.audit_entries(PROMPT)]
        n.append(f"{'OK' if report.ok else 'BROKEN'}: {len(actions)} entries, {', '.join(actions)}")


def _first_version(
    life: Lifecycle, run: LifecycleRun, progress: Callable[[str], None], facts: dict[str, Any]
) -> None:
    """Version 1: registered by one person, approved by another, rolled out by the workflow."""
    examples = repo_root() / "examples" / "prompts"
    author, approver = life.sdk(OPERATOR), life.sdk(APPROVER)
    with run.stage("prompt v1: registered, approved by someone else, rolled out", progress) as n:
        known = len(life.executions(PROMOTION))
        first = author.register_prompt(examples / "ticket-summary.v1.yaml", reason="first cut")
        approver.approve_prompt(PROMPT, first.version.version, reason="template reviewed")
        execution = life.wait_for_new_execution(PROMOTION, known)
        status, states = life.wait(execution["executionArn"])
        champion = approver.get_model(PROMPT).champion
        facts["v1_promotion"] = {"status": status, "champion": champion}
        n.append(f"{status}: {states.count('ShiftAlias')} canary steps; champion v{champion}")


def _gate_stage(
    life: Lifecycle, run: LifecycleRun, progress: Callable[[str], None], facts: dict[str, Any]
) -> None:
    """Two candidates of :data:`GATED_PROMPT` through the promotion workflow's evaluation
    gate: the ungrounded one rejected before its canary, the grounded one promoted."""
    examples = repo_root() / "examples" / "prompts"
    author, approver = life.sdk(OPERATOR), life.sdk(APPROVER)
    gate: dict[str, Any] = {}
    facts["gate"] = gate
    with run.stage("prompt evaluation gate: ungrounded candidate rejected", progress) as n:
        registered = author.register_prompt(examples / UNGROUNDED_SPEC, reason="warmer tone")
        version = registered.version.version
        status, states = _approved_and_run(life, approver, version, "tone reviewed")
        evaluation = approver.prompt_evaluation(GATED_PROMPT, version)
        entry = approver.audit_entries(GATED_PROMPT)[-1]
        found = _gate_figures(evaluation)
        gate["rejected"] = {
            "version": version,
            "status": status,
            "states": states,
            "version_status": str(approver.get_version(GATED_PROMPT, version).status),
            "audited": {"action": str(entry.action), "version": entry.version,
                        "reasons": list(entry.details.get("reasons", []))},
            **found,
        }  # fmt: skip
        n.append(
            f"v{version} ({UNGROUNDED_SPEC}), {found['items']} items: workflow {status} at "
            f"{states[-1]}, v{version} {gate['rejected']['version_status']}; audited "
            f"{entry.action}: {'; '.join(found['reasons'])}"
        )
        n.extend(
            f"unsupported ({u['item']}): {u['sentence']!r} ({u['note']})"
            for u in found["unsupported"][:1]
        )
    with run.stage("prompt evaluation gate: grounded candidate promoted", progress) as n:
        registered = author.register_prompt(examples / GROUNDED_SPEC, reason="from the passages")
        version = registered.version.version
        status, states = _approved_and_run(life, approver, version, "passages reviewed")
        found = _gate_figures(approver.prompt_evaluation(GATED_PROMPT, version))
        model = approver.get_model(GATED_PROMPT)
        report = approver.verify(GATED_PROMPT)
        gate["promoted"] = {
            "version": version,
            "status": status,
            "states": states,
            "champion": model.champion,
            "verified": report.ok,
            **found,
        }
        n.append(
            f"v{version} ({GROUNDED_SPEC}): gate {found['outcome']} (groundedness "
            f"{found['groundedness']:.2f} ≥ {found['groundedness_min']:g}, toxicity rate "
            f"{found['toxicity_rate']:.2f} ≤ {found['toxicity_rate_max']:g}); "
            f"{_steps(states.count('ShiftAlias'))} → {states[-1]}, champion v{model.champion}; "
            f"audit chain {'OK' if report.ok else 'BROKEN'}"
        )


def _steps(count: int) -> str:
    return f"{count} canary step{'' if count == 1 else 's'}"


def _approved_and_run(
    life: Lifecycle, approver: Any, version: int, reason: str
) -> tuple[str, list[str]]:
    """Approve ``version`` of the gated prompt; its promotion workflow's end."""
    known = len(life.executions(PROMOTION))
    approver.approve_prompt(GATED_PROMPT, version, reason=reason)
    execution = life.wait_for_new_execution(PROMOTION, known)
    return life.wait(execution["executionArn"])


def _gate_figures(evaluation: Any) -> dict[str, Any]:
    """What a version's evaluation gate found: its outcome, the figures it judged against
    the gate's limits, and the unsupported sentences of its least grounded answers."""
    if evaluation is None or evaluation.report is None:
        raise RuntimeError(f"the evaluation gate recorded no report: {evaluation}")
    report = evaluation.report
    summaries = {s.evaluator: s for s in report.evaluators}
    grounded, toxic = summaries["groundedness"], summaries["toxicity"]
    unsupported = [
        {"item": worst.item, "sentence": e.sentence, "note": e.note}
        for worst in grounded.worst
        for e in worst.evidence
        if e.sentence
    ]
    return {
        "outcome": evaluation.outcome,
        "items": report.items,
        "groundedness": grounded.candidate.mean,
        "groundedness_min": report.policy.groundedness_min,
        "toxicity_rate": toxic.candidate.fail_rate,
        "toxicity_rate_max": report.policy.toxicity_rate_max,
        "reasons": list(report.reasons),
        "unsupported": unsupported,
    }


def invoke(life: Lifecycle, variables: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One call of the prompt through the gateway function, as API Gateway sends it."""
    return life.invoke_api(
        life.function_name("llm-gateway"),
        "POST",
        f"/v1/prompts/{PROMPT}/invoke",
        {"variables": variables},
        path_parameters={"name": PROMPT},
        caller=APPLICATION,
    )


def _calls_until(
    life: Lifecycle, done: Callable[[list[dict[str, Any]]], bool], *, batch: int = 10
) -> list[dict[str, Any]]:
    """Calls in batches of ``batch`` until ``done`` (the canary is drawn at random per call)."""
    found: list[dict[str, Any]] = []
    for _ in range(MAX_BATCHES):
        for _ in range(batch):
            status, body = invoke(life, TICKETS[len(found) % len(TICKETS)])
            found.append({"status": status, **body})
        if done(found):
            return found
    raise RuntimeError(
        f"{len(found)} calls did not get there: {_count(found, 'status')}, "
        f"{_count(found, 'variant')}, versions {_count(found, 'version')}"
    )


def _count(answers: list[dict[str, Any]], key: str) -> dict[str, int]:
    counted: dict[str, int] = {}
    for answer in answers:
        value = str(answer.get(key))
        counted[value] = counted.get(value, 0) + 1
    return dict(sorted(counted.items()))


def _canary_rows(life: Lifecycle, version: int = 2) -> list[dict[str, Any]]:
    """The canary's (version 2's, or ``version``'s) calls, as the gateway captured them."""
    from flywheel.composition import AwsPlatform
    from flywheel.serving.capture import decode_capture

    capture = AwsPlatform(life.settings).capture
    prefix = f"{life.settings.llm_capture_prefix}prompt={PROMPT}/version={version}/"
    rows = [r for key in capture.keys(prefix) for r in decode_capture(capture.get(key))]
    return [r for r in rows if r.get("variant") == "canary"]


def _canary_errors(life: Lifecycle) -> int:
    return sum(int(r.get("status") or 0) >= 500 for r in _canary_rows(life))


def _canary_error_rate(life: Lifecycle) -> float:
    """Share of the canary's captured calls answered 5xx, percent."""
    canary = _canary_rows(life)
    return 100.0 * _canary_errors(life) / len(canary) if canary else 0.0


def _cost_lines(life: Lifecycle) -> list[str]:
    from flywheel.clock import FixedClock
    from flywheel.composition import AwsPlatform
    from flywheel.sdk import Flywheel

    # The report's "today" is the runtime's (simulated) day, the day the calls were counted.
    platform = AwsPlatform(life.settings, clock=FixedClock(life.driver.now()))
    report = Flywheel(platform, actor=OPERATOR).cost_report(prompt=PROMPT)
    currency = report.llm.currency
    lines: list[str] = []
    for cost in report.llm.prompts:
        for v in cost.variants:
            per_1k = v.cost_per_1k_calls
            lines.append(
                f"{v.label}: {v.calls} calls, {v.input_tokens}+{v.output_tokens} tokens, "
                f"{_money(v.cost)} {currency}"
                + (f" ({_money(per_1k)} per 1k calls)" if per_1k is not None else "")
            )
    return lines or ["no calls counted"]


def _money(amount: Decimal) -> str:
    return f"{amount:.6f}"


def _exhaust_budget(life: Lifecycle, facts: dict[str, Any]) -> str:
    """Call with long tickets until the budget refuses; what the refusal said."""
    ticket = {"customer": "Umbrella", "area": "other", "ticket": " ".join(["Slow export."] * 600)}
    for calls in range(1, 2001):
        status, body = invoke(life, ticket)
        if status == 429:
            error = body.get("error", {})
            facts["budget_refusal"] = {"calls": calls, "error": error}
            return f"call {calls} → HTTP 429 {error.get('code')}: {error.get('message')}"
    return "no budget refused 2,000 calls"


def _judge(life: Lifecycle, rate: float) -> None:
    """Set the canary's error-rate alarm as CloudWatch would from the measured rate."""
    from flywheel.llm.policy import LlmPolicy

    policy = _environment(life, "llm-gateway")["FLYWHEEL_LLM_POLICY"]
    threshold = LlmPolicy.model_validate_json(policy).prompt(PROMPT).alarms
    alarm = _alarm_name(life, "errorrate")
    state = "ALARM" if rate > threshold.error_rate_percent else "OK"
    life.driver.client("cloudwatch").set_alarm_state(
        AlarmName=alarm,
        StateValue=state,
        StateReason=json.dumps(
            {"canary_error_rate_percent": round(rate, 1),
             "threshold": threshold.error_rate_percent}
        ),
    )  # fmt: skip


def _environment(life: Lifecycle, function: str) -> dict[str, str]:
    """A deployed function's environment (what the stage gave it)."""
    configuration = life.driver.client("lambda").get_function_configuration(
        FunctionName=life.function_name(function)
    )
    return dict(configuration["Environment"]["Variables"])


def _alarm_name(life: Lifecycle, key: str) -> str:
    """The prompt's canary alarm, as the promotion workflow's check reads it."""
    alarms: dict[str, list[str]] = json.loads(
        _environment(life, "promotion-check-canary")["FLYWHEEL_CANARY_ALARMS"]
    )
    for name in alarms.get(PROMPT, []):
        if name.endswith(f"-{key}"):
            return name
    raise KeyError(f"no {key} alarm for {PROMPT} in FLYWHEEL_CANARY_ALARMS")


def run_quality_monitor_demo(
    life: Lifecycle, run: LifecycleRun, progress: Callable[[str], None], facts: dict[str, Any]
) -> None:
    """The production quality monitor (ADR 82): a canary whose answers turn abusive is
    scored, reported, announced (``LlmQualityDegraded``) and rolled back by its check.

    The day's prompt budget ran out above, so the stage starts on the next (UTC) day, the
    schedules paused while the clock moves there; the error-rate alarm, whose window no
    longer holds the failed calls, is back to OK.
    """
    examples = repo_root() / "examples" / "prompts"
    author, approver = life.sdk(OPERATOR), life.sdk(APPROVER)
    stage = "the next day: prompt canary with abusive answers, LLM quality monitor"
    with run.stage(stage, progress) as n:
        _next_day(life)
        _set_alarm(life, "errorrate", "OK", {"canary_error_rate_percent": 0.0})
        third = author.register_prompt(
            examples / "ticket-summary.v3-tone.yaml", reason="warmer tone"
        )
        version = third.version.version
        known = len(life.executions(PROMOTION))
        life.driver.hold_waits(True)
        try:
            approver.approve_prompt(PROMPT, version, reason="tone reviewed")
            promotion = life.wait_for_new_execution(PROMOTION, known)["executionArn"]
            life.wait(promotion, until="Bake")
            life.driver.inject_llm(*[f"toxic@{TONE_MODEL}"] * 200)
            policy = json.loads(_environment(life, "llm-monitor")["FLYWHEEL_PROMPT_MONITORS"])
            needed = int(policy.get(PROMPT, {}).get("min_scored", 20))
            calls = _calls_until(life, lambda _: len(_canary_rows(life, version)) >= needed)
            n.append(f"v{version} on canary: {len(calls)} calls, {_count(calls, 'variant')}")
            quality = _run_quality_monitor(life, version)
            facts["quality"] = quality
            n.append(
                f"monitor: toxicity rate {quality['toxicity_rate']:.0%} on "
                f"{quality['scored']} scored calls → {quality['outcome']}; report "
                f"{quality['report']}"
            )
            notice = life.notification("LlmQualityDegraded", f"version {version}")
            facts["quality"]["notification"] = readable(notice["message"]).splitlines()[0]
            n.append(f"notified: {facts['quality']['notification']}")
        finally:
            life.driver.clear_llm_faults()
            life.driver.hold_waits(False)
        status, states = life.wait(promotion)
        model = approver.get_model(PROMPT)
        facts["quality_promotion"] = {
            "version": version,
            "status": status,
            "states": states,
            "champion": model.champion,
        }
        n.append(f"canary judged: {' → '.join(states[-3:])}; champion v{model.champion}")


def _next_day(life: Lifecycle) -> None:
    """Move the simulated clock to just after the next UTC midnight, no schedule firing;
    the gateway, idle that long, starts in a new execution environment (as Lambda's would)
    and reads the prompt's routing afresh."""
    from datetime import timedelta

    now = life.driver.now()
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
    events = life.driver.client("events")
    scheduled = [r["Name"] for r in events.list_rules()["Rules"] if r.get("ScheduleExpression")]
    for name in scheduled:
        events.disable_rule(Name=name)
    try:
        life.driver.advance((midnight - now).total_seconds())
    finally:
        for name in scheduled:
            events.enable_rule(Name=name)
    life.driver.recycle("llm-gateway")


def _run_quality_monitor(life: Lifecycle, version: int) -> dict[str, Any]:
    """One run of the monitor function, invoked as its hourly schedule invokes it."""
    event = {"trigger": "schedule", "time": life.driver.now().isoformat()}
    response = life.driver.client("lambda").invoke(
        FunctionName=life.function_name("llm-monitor"), Payload=json.dumps(event).encode()
    )
    payload = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise RuntimeError(f"the LLM quality monitor failed: {payload}")
    [run] = [r for r in payload["runs"] if r["prompt"] == PROMPT]
    [canary] = [v for v in run["versions"] if v["version"] == version]
    toxicity = canary["metrics"].get("toxicity_rate") or {}
    return {
        "outcome": canary["outcome"],
        "scored": canary["scored"],
        "sampled": canary["sampled"],
        "toxicity_rate": toxicity.get("value", 0.0),
        "toxic": toxicity.get("failed", 0),
        "breaches": canary["breaches"],
        "event_id": canary["event_id"],
        "report": run["report_html"],
    }


def _set_alarm(life: Lifecycle, key: str, state: str, reason: dict[str, Any]) -> None:
    life.driver.client("cloudwatch").set_alarm_state(
        AlarmName=_alarm_name(life, key), StateValue=state, StateReason=json.dumps(reason)
    )
