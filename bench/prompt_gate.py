"""Prompt gate benchmark: what the evaluation gate's own work costs, one run.

Run: ``.venv/bin/python bench/prompt_gate.py [--quick]``

p50 and p99 (ms) of :func:`flywheel.llm.gate.judge` (a paired bootstrap of 2,000
resamples per evaluator, the floors, the worst items) for sets of 10, 100 and 500 items
scored by four evaluators, against a champion; and, for the example retrieval-augmented
prompt ``support-answer`` with its 8-item set, the whole step on the in-memory platform
(both versions answered by the local stand-in through the provider port, budgets reserved
and settled, four test evaluators, the decision recorded and audited). The stand-in is not
a model: a real provider adds its own latency per call, two calls per item.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

from _timing import p50_p99_ms as _p50_p99_ms  # noqa: E402

EVALUATORS = ("format", "groundedness", "relevance", "toxicity")


def _side(version: int, items: int, seed: int) -> Any:
    from flywheel.llm.evaluation import Direction, EvaluationScore, Evidence
    from flywheel.llm.gate import ScoredAnswer, SideAnswers

    draw = random.Random(seed)
    return SideAnswers(
        version=version,
        answers=tuple(
            ScoredAnswer(
                item=i,
                label=f"item-{i}",
                answer="An answer of a few words. " * 4,
                scores={
                    name: EvaluationScore(
                        evaluator=name,
                        score=round(draw.random(), 3),
                        threshold=0.5,
                        direction=Direction.LOWER_IS_BETTER
                        if name == "toxicity"
                        else Direction.HIGHER_IS_BETTER,
                        evidence=(Evidence(sentence="A sentence.", note="why"),),
                    )
                    for name in EVALUATORS
                },
            )
            for i in range(items)
        ),
    )


def _judge_rows(repeats: int) -> list[tuple[str, float, float]]:
    from flywheel.llm.gate import PromptGatePolicy, judge

    policy = PromptGatePolicy(groundedness_min=0.5, toxicity_rate_max=0.6)
    rows = []
    for items in (10, 100, 500):
        candidate, champion = _side(2, items, 1), _side(1, items, 2)
        p50, p99 = _p50_p99_ms(
            lambda c=candidate, h=champion: judge(policy, candidate=c, champion=h),
            max(5, repeats // (1 + items // 50)),
        )
        rows.append((f"judge, {items} items x {len(EVALUATORS)} evaluators", p50, p99))
    return rows


def _step_rows(repeats: int) -> list[tuple[str, float, float]]:
    from flywheel.composition import InMemoryPlatform
    from flywheel.sdk import Flywheel
    from flywheel.workflows.prompt_gate import EvaluationGate
    from flywheel.workflows.state import PromotionState
    from tests.evaluator_support import fake_evaluators

    platform = InMemoryPlatform()
    platform.prompt_evaluators = lambda thresholds=None: fake_evaluators(thresholds)  # type: ignore[method-assign]
    ana, bo = Flywheel(platform, actor="ana"), Flywheel(platform, actor="bo")
    examples = ROOT / "examples" / "prompts"
    ana.register_prompt(examples / "support-answer.v1.yaml")
    bo.approve_prompt("support-answer", 1, reason="bench")
    bo.promote_prompt("support-answer", 1, reason="bench")
    ana.register_prompt(examples / "support-answer.v2.yaml")
    bo.approve_prompt("support-answer", 2, reason="bench")
    gate: EvaluationGate = platform.evaluation_gate()
    runs = iter(range(10**9))

    def once() -> None:
        n = next(runs)
        state = PromotionState.model_validate({
            "model_name": "support-answer", "version": 2,
            "run": {"execution_id": f"arn:aws:states:us-east-1:1:execution:p:{n}",
                    "execution_name": f"p-{n}", "started_at": "2026-01-01T00:00:00Z",
                    "state_machine": "promotion"},
        })  # fmt: skip
        gate.evaluate_candidate(state)
        # Put the version back as it was, so the next run judges it again.
        platform.records.apply(_undo(), actor="bench", audit=_note())

    p50, p99 = _p50_p99_ms(once, max(5, repeats // 20))
    return [("EvaluateCandidate, 8 items (stand-in)", p50, p99)]


def _undo() -> Any:
    from flywheel.registry.models import RegistryChange, StatusChange, VersionStatus

    return RegistryChange(
        model="support-answer",
        statuses=(
            StatusChange(version=2, expected=VersionStatus.REJECTED, target=VersionStatus.APPROVED),
        ),
    )


def _note() -> Any:
    from flywheel.audit.models import AuditAction, AuditDraft

    return AuditDraft(
        model="support-answer", action=AuditAction.APPROVED, actor="bench", version=2, reason="b"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    repeats = 40 if parser.parse_args().quick else 400
    print(f"{'what':52} {'p50 ms':>8} {'p99 ms':>8}")
    for label, p50, p99 in [*_judge_rows(repeats), *_step_rows(repeats)]:
        print(f"{label:52} {p50:8.2f} {p99:8.2f}")


if __name__ == "__main__":
    main()
