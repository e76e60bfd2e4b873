"""Embedded evaluators benchmark: answers judged per second on one core, the time to score
a 10k-call capture window, and their precision and recall on the labelled sets, one run.

Run: ``.venv/bin/python bench/llm_eval.py [--quick]``

Synthetic captured rows (the gateway's capture rows, JSON Lines, gzipped) of three kinds
of prompt, in equal shares: a ticket summary (the ticket is the question, no context), a
retrieval-augmented answer (a question, three context passages, a two- to four-sentence
answer, some sentences with a changed number) and a JSON answer with an output schema.
Printed:

- per evaluator, answers per second on one thread (numpy held to one thread), over the
  rows it applies to, with a baseline in the same run: reading the row (``json.loads``)
  and splitting the answer into words, which any evaluator must do;
- the 10k-call window: the gzipped window decompressed and parsed, then every row
  scored by all four embedded evaluators, in seconds;
- the production quality monitor (ADR 82) over a 10k-call window of one prompt version
  as the gateway captures it (100 objects of 100 calls, redacted), in memory: capture
  read, sampled, scored, judged, reported and recorded, at sample rates 1 and 0.1;
- the self-consistency check (``consistency``) on the ticket summaries (no context):
  answers per second with the local stand-in drawing its 3 samples in process, each
  reserved and settled on in-memory budgets; each sample is a call, so with a real
  provider its throughput is the provider's latency times 3, not this figure;
- precision and recall of toxicity (finding ``toxic``) and groundedness (finding
  ``unsupported`` sentences) on ``tests/data``, of the self-consistency agreement
  (finding ``inconsistent`` samples) on ``tests/consistency_set.py``, and their
  accuracy per kind of example.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

WINDOW = 10_000
SCHEMA = {
    "type": "object",
    "required": ["summary", "urgency"],
    "properties": {
        "summary": {"type": "string", "maxLength": 600},
        "urgency": {"type": "string", "enum": ["low", "normal", "high"]},
    },
}
_TICKETS = [
    "The export to CSV fails with a timeout for accounts over 10k rows since Monday.",
    "I was charged twice for the same seat on the March invoice, please refund one.",
    "Login loops back to the sign-in page on Safari after the last update.",
    "Your stupid app deleted my notes again, this is the third time this week.",
    "The API returns 429 after 100 requests a minute although our plan allows 600.",
]


def _rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` synthetic capture rows (deterministic)."""
    from tests.labelled_sets import FACTS

    rng = random.Random(seed)
    passages = [f.passage.format(**{k: v[0] for k, v in f.slots.items()}) for f in FACTS]
    rows = []
    for i in range(count):
        kind = i % 3
        row: dict[str, Any] = {"request_id": f"r{i:05d}", "version": 1, "variant": "champion",
                               "status": 200, "timestamp": "2026-12-07T12:00:00Z"}  # fmt: skip
        ticket = rng.choice(_TICKETS) + " " + rng.choice(_TICKETS)
        if kind == 0:
            row |= {"prompt": "ticket-summary", "variables": {"ticket": ticket},
                    "answer": "The customer reports: " + ticket.split(". ")[0] + "."}  # fmt: skip
        elif kind == 1:
            chosen = rng.sample(passages, 3)
            sentences = rng.sample(chosen, rng.randint(2, 3))
            if rng.random() < 0.3:
                sentences[0] = sentences[0].replace("1", "7", 1)
            row |= {"prompt": "kb-answer",
                    "variables": {"question": "Can you tell me about " + chosen[0][:40] + "?",
                                  "context": chosen},
                    "answer": "Thanks for asking! " + " ".join(sentences)}  # fmt: skip
        else:
            answer = {"summary": ticket[:120], "urgency": rng.choice(["low", "high", "urgent"])}
            row |= {"prompt": "ticket-json", "variables": {"ticket": ticket},
                    "answer": json.dumps(answer), "output_schema": SCHEMA}  # fmt: skip
        rows.append(row)
    return rows


def _item(row: dict[str, Any]) -> Any:
    """The evaluator input of one captured row."""
    from flywheel.llm.evaluation import EvaluationInput

    variables = row["variables"]
    return EvaluationInput(
        answer=row["answer"],
        question=variables.get("question") or variables.get("ticket"),
        context=tuple(variables.get("context", ())),
        output_schema=row.get("output_schema"),
    )


def _consistency_items(rows: list[dict[str, Any]]) -> tuple[Any, list[Any]]:
    """The self-consistency check on the stand-in, and the context-free rows as its
    inputs: each row's call asks the stand-in for its own answer (the stand-in echoes)."""
    from flywheel.adapters.local_llm import LocalProvider
    from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
    from flywheel.llm.budgets import BudgetPolicy, Budgets
    from flywheel.llm.evaluation import AnsweredCall
    from flywheel.llm.evaluators.consistency import SelfConsistencyEvaluator
    from flywheel.llm.prompts import InferenceParameters, Provider
    from flywheel.llm.providers import CompletionRequest

    provider = LocalProvider()
    check = SelfConsistencyEvaluator(
        providers=lambda _kind: provider, budgets=Budgets(BudgetPolicy(), InMemoryBudgetLedger())
    )
    items = []
    for row in rows:
        item = _item(row)
        if item.context or item.output_schema:
            continue
        request = CompletionRequest(model_id="local.stand-in", system="Be brief.",
                                    user=f"Summarize:\n\n{row['answer']}",
                                    parameters=InferenceParameters(max_tokens=200))  # fmt: skip
        call = AnsweredCall(prompt="ticket-summary", version=1, provider=Provider.LOCAL,
                            request=request)  # fmt: skip
        items.append(item.model_copy(update={"call": call}))
    return check, items


def _monitor_window(rows: list[dict[str, Any]], sample_rate: float) -> tuple[float, Any]:
    """Seconds of one quality monitor run over ``rows`` captured for ``ticket-summary`` v1
    in the last hour, and what it found."""
    from datetime import UTC, datetime, timedelta

    from flywheel.clock import FixedClock
    from flywheel.composition import InMemoryPlatform
    from flywheel.gateway.capture import CapturedCall, llm_capture_key
    from flywheel.llm.monitor_policy import MonitorBudget, PromptMonitorPolicy
    from flywheel.llm.prompts import parse_prompt
    from flywheel.monitoring.settings import MonitoringSettings
    from flywheel.sdk import Flywheel
    from flywheel.serving.capture import encode_rows

    now = datetime(2026, 12, 7, 12, 50, tzinfo=UTC)
    platform = InMemoryPlatform(MonitoringSettings(backend="local"), clock=FixedClock(now))
    author, approver = Flywheel(platform, actor="ana"), Flywheel(platform, actor="bo")
    spec = parse_prompt({
        "name": "ticket-summary", "description": "Summarize a ticket.", "owner": "a@b.example",
        "provider": "local", "model_id": "local.stand-in", "system": "Be brief.",
        "template": "Summarize:\n\n{{ ticket }}", "variables": {"ticket": {"max_length": 4000}},
        "parameters": {"max_tokens": 200},
    })  # fmt: skip
    author.register_prompt(spec, reason="bench")
    approver.approve_prompt("ticket-summary", 1, reason="bench")
    approver.promote_prompt("ticket-summary", 1, reason="bench")
    when = (now - timedelta(minutes=30)).timestamp()
    for start in range(0, len(rows), 100):
        captured = []
        for row in rows[start : start + 100]:
            call = CapturedCall.example()
            call.request_id, call.prompt, call.version, call.variant = (
                row["request_id"], "ticket-summary", 1, "champion",
            )  # fmt: skip
            call.timestamp, call.answer = when, row["answer"]
            call.variables = {"ticket": str(row["variables"].get("ticket") or "")}
            captured.append(call.row())
        platform.capture.put(llm_capture_key("ticket-summary", 1, when), encode_rows(captured))
    monitor = platform.llm_quality_monitor()
    budget = MonitorBudget(max_calls=len(rows))
    monitor.policies = {
        "ticket-summary": PromptMonitorPolicy(sample_rate=sample_rate, budget=budget)
    }
    started = time.perf_counter()
    run = monitor.run("ticket-summary")
    return time.perf_counter() - started, run.versions[0]


def _per_second(call: Any, items: list[Any]) -> float:
    started = time.perf_counter()
    for item in items:
        call(item)
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows per evaluator")
    quick = parser.parse_args().quick
    from threadpoolctl import threadpool_limits

    from flywheel.llm.evaluators import embedded_evaluators
    from flywheel.llm.evaluators.text import words
    from tests.consistency_set import consistency_quality
    from tests.labelled_sets import quality

    threadpool_limits(1)
    evaluators = embedded_evaluators()
    rows = _rows(WINDOW)
    lines = [json.dumps(row) for row in rows]
    sample = 600 if quick else 3000
    items = [_item(row) for row in rows[:sample]]
    # warm: the toxicity data is read once per process
    for evaluator in evaluators.values():
        evaluator.evaluate(items[0])

    print(f"{'what':40} {'rows':>6} {'answers/s':>12}")
    print(f"{'baseline: json.loads of the row':40} {sample:>6} "
          f"{_per_second(json.loads, lines[:sample]):>12,.0f}")  # fmt: skip
    print(f"{'baseline: words of the answer':40} {sample:>6} "
          f"{_per_second(lambda i: words(i.answer), items):>12,.0f}")  # fmt: skip
    for name, evaluator in evaluators.items():
        applies = [i for i in items if evaluator.evaluate(i).applicable]
        rate = _per_second(evaluator.evaluate, applies)
        print(f"{name:40} {len(applies):>6} {rate:>12,.0f}")
    check, sampled = _consistency_items(rows[:sample])
    rate = _per_second(check.evaluate, sampled)
    print(f"{'consistency (3 stand-in samples)':40} {len(sampled):>6} {rate:>12,.0f}")

    window = gzip.compress("\n".join(lines).encode())
    started = time.perf_counter()
    failed = 0
    for line in gzip.decompress(window).decode().splitlines():
        item = _item(json.loads(line))
        failed += any(not e.evaluate(item).passed for e in evaluators.values())
    seconds = time.perf_counter() - started
    print(f"\n10k-call window ({len(window) / 1e6:.1f} MB gzipped), all four embedded "
          f"evaluators: {seconds:.2f} s ({WINDOW / seconds:,.0f} rows/s), "
          f"{failed} rows failed at least one")  # fmt: skip

    for rate in (1.0, 0.1):
        seconds, found = _monitor_window(rows, rate)
        print(f"quality monitor, 10k-call window, sample rate {rate:g}: {seconds:.2f} s "
              f"({found.scored} calls scored, verdict {found.outcome})")  # fmt: skip

    print(f"\n{'evaluator':14} {'finds':12} {'precision':>9} {'recall':>7} {'rows':>5}  per kind")
    for q in [*quality(evaluators), consistency_quality()]:
        kinds = ", ".join(f"{k} {q.accuracy(k):.2f}" for k in q.by_kind)
        print(f"{q.evaluator:14} {q.positive:12} {q.precision:9.3f} {q.recall:7.3f} "
              f"{q.rows:>5}  {kinds}")  # fmt: skip


if __name__ == "__main__":
    main()
