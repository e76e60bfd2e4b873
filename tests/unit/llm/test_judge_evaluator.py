"""A judge prompt behind the evaluator port: its JSON verdict read, every call reserved
and settled on the budgets, and a judge that fails never passes an answer."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from flywheel.adapters.local_llm import LocalProvider
from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.errors import (
    BudgetExceededError,
    ConfigError,
    ProviderError,
    ProviderTimeoutError,
)
from flywheel.llm.budgets import BudgetCall, BudgetLimits, BudgetPolicy, Budgets, Scope
from flywheel.llm.evaluation import Direction, EvaluationInput, Verdict
from flywheel.llm.evaluators.judge import JudgeEvaluator
from flywheel.llm.prompts import load_prompt_file, parse_prompt
from flywheel.llm.providers import Completion, CompletionRequest, StopReason, Usage
from tests.factories import prompt_data

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "judges" / "groundedness-judge.v1.yaml"
DAY = datetime(2026, 12, 7, 12, tzinfo=UTC)
ITEM = EvaluationInput(
    answer="Refunds take 30 days.",
    question="How long do refunds take?",
    context=("Refunds are issued within 14 days.", "Support is open 9 to 5."),
)


def _spec(**overrides: object) -> object:
    data = load_prompt_file(EXAMPLE).model_dump(mode="json", exclude_none=True)
    return parse_prompt({**data, "provider": "local", "model_id": "local.stand-in", **overrides})


class Scripted:
    """A provider that answers each call with the next scripted text (or error)."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[CompletionRequest] = []

    def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Completion(
            text=answer,
            stop_reason=StopReason.END_TURN,
            usage=Usage(input_tokens=200, output_tokens=50),
            latency_ms=5,
            model_id=request.model_id,
        )


def _budgets(day: Decimal | None = None) -> Budgets:
    limits = {"groundedness-judge": BudgetLimits(day=day)} if day is not None else {}
    return Budgets(BudgetPolicy(prompts=limits), InMemoryBudgetLedger(), clock=FixedClock(DAY))


def _judge(provider: object, budgets: Budgets | None = None, **options: object) -> JudgeEvaluator:
    return JudgeEvaluator(
        spec=_spec(),  # type: ignore[arg-type]
        version=3,
        provider=provider,  # type: ignore[arg-type]
        budgets=budgets or _budgets(),
        **options,  # type: ignore[arg-type]
    )


def _usage(budgets: Budgets) -> list[tuple[str, int, int, Decimal]]:
    rows = budgets.ledger.usage_rows(  # type: ignore[attr-defined]
        Scope.PROMPT, "groundedness-judge", date(2026, 12, 7), date(2026, 12, 7)
    )
    return [(r.sk, r.calls, r.output_tokens, r.cost) for r in rows]


def test_the_judges_score_and_reasons_are_the_evaluation() -> None:
    provider = Scripted(json.dumps({"score": 0.25, "reasons": ["'30 days': the passage says 14"]}))
    budgets = _budgets()
    scored = _judge(provider, budgets, name="groundedness", threshold=0.8).evaluate(ITEM)

    assert (scored.evaluator, scored.score, scored.verdict) == ("groundedness", 0.25, Verdict.FAIL)
    assert [e.note for e in scored.evidence] == ["'30 days': the passage says 14"]
    user = provider.requests[0].user
    assert "[1] Refunds are issued within 14 days.\n\n[2] Support is open 9 to 5." in user
    assert "Question: How long do refunds take?" in user
    assert "Answer to check:\nRefunds take 30 days." in user
    assert _usage(budgets) == [("DAY#2026-12-07#V3#judge", 1, 50, Decimal("0.0003"))]


def test_a_judge_answer_that_is_not_the_json_is_a_provider_error_and_still_charged() -> None:
    budgets = _budgets()
    judge = _judge(Scripted('{"score": 1.4}'), budgets)
    with pytest.raises(ProviderError, match="did not answer") as caught:
        judge.evaluate(ITEM)
    assert caught.value.details["problems"] == [
        ["output.score", "must be at most 1"],
        ["output.reasons", "is required"],
    ]
    assert _usage(budgets)[0][1:3] == (1, 50)


def test_a_failed_call_is_raised_and_its_reservation_refunded() -> None:
    budgets = _budgets(day=Decimal("1"))
    judge = _judge(Scripted(ProviderTimeoutError("slow", field="provider")), budgets)
    with pytest.raises(ProviderTimeoutError):
        judge.evaluate(ITEM)
    (day,) = budgets.lines(_call(), DAY)
    assert budgets.ledger.spent(day) == 0
    assert _usage(budgets) == [("DAY#2026-12-07#V3#judge", 1, 0, Decimal(0))]


def _call() -> BudgetCall:
    return BudgetCall(prompt="groundedness-judge", provider="local",
                      model_id="local.stand-in", input_tokens=1, max_tokens=1)  # fmt: skip


def test_a_judge_over_its_budget_is_refused_before_the_provider_is_called() -> None:
    provider = Scripted('{"score": 1, "reasons": []}')
    judge = _judge(provider, _budgets(day=Decimal("0.0001")))
    with pytest.raises(BudgetExceededError, match="prompt:groundedness-judge"):
        judge.evaluate(ITEM)
    assert provider.requests == []


def test_a_judge_that_needs_context_does_not_apply_without_it() -> None:
    provider = Scripted()
    scored = _judge(provider).evaluate(EvaluationInput(answer="Refunds take 30 days."))
    assert (scored.applicable, scored.verdict) == (False, Verdict.PASS)
    assert provider.requests == []


def test_a_toxicity_judge_reads_its_score_as_lower_is_better() -> None:
    judge = _judge(Scripted('{"score": 0.9, "reasons": ["insult"]}'),
                   direction=Direction.LOWER_IS_BETTER)  # fmt: skip
    assert judge.evaluate(ITEM).verdict is Verdict.FAIL


def test_a_prompt_a_judge_cannot_fill_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="does not take the variable answer") as caught:
        JudgeEvaluator(spec=parse_prompt(prompt_data()), version=1, provider=Scripted(),
                       budgets=_budgets())  # fmt: skip
    assert caught.value.field == "variables.answer"
    spec = parse_prompt(
        prompt_data(template="{{ answer }} {{ ticket }}", variables={"answer": {}, "ticket": {}})
    )
    with pytest.raises(ConfigError, match=r"variables\.ticket is required") as caught:
        JudgeEvaluator(spec=spec, version=1, provider=Scripted(), budgets=_budgets())
    assert caught.value.field == "variables.ticket"


def test_the_judge_is_the_registered_champion_of_its_prompt() -> None:
    platform = InMemoryPlatform()
    catalog = platform.prompt_catalog()
    catalog.register(_spec(), actor="ana", environment="0" * 64)  # type: ignore[arg-type]
    platform.registry.request_approval("groundedness-judge", 1, actor="ana")
    platform.registry.approve("groundedness-judge", 1, actor="bo", reason="judge")
    platform.registry.promote("groundedness-judge", 1, actor="bo", reason="judge")

    judge = JudgeEvaluator.from_catalog(
        catalog, "groundedness-judge", provider=LocalProvider(), budgets=_budgets()
    )
    scored = judge.evaluate(ITEM)
    assert (judge.version, scored.evaluator, scored.applicable) == (1, "groundedness-judge", True)
    assert 0 <= scored.score <= 1
