"""Self-consistency: an answer given no context is judged by whether sampled answers to
the same call agree with it; every sample is a budgeted, costed call, a provider that
fails never passes an answer, and the local stand-in can be made to contradict itself."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from flywheel.adapters.local_llm import LocalConverse, LocalProvider, contradict
from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
from flywheel.cli.prompts import evaluation_lines
from flywheel.clock import FixedClock
from flywheel.errors import (
    ConfigError,
    EvaluationUnavailableError,
    ProviderError,
    ProviderThrottledError,
)
from flywheel.llm.budgets import BudgetLimits, BudgetPolicy, Budgets, Scope
from flywheel.llm.evaluation import AnsweredCall, EvaluationInput, Verdict
from flywheel.llm.evaluation_sets import parse_evaluation_set
from flywheel.llm.evaluators.consistency import SelfConsistencyEvaluator, agreement
from flywheel.llm.gate import PromptGatePolicy, judge
from flywheel.llm.policy import LlmPolicy
from flywheel.llm.prices import default_prices, parse_prices
from flywheel.llm.prompts import InferenceParameters, Provider, parse_prompt
from flywheel.llm.providers import (
    Completion,
    CompletionRequest,
    RetryingProvider,
    RetryPolicy,
    StopReason,
    Usage,
)
from flywheel.llm.set_runner import SetRunner
from flywheel.workflows.records import PromptEvaluationDoc

DAY = datetime(2026, 12, 7, 12, tzinfo=UTC)
ANSWER = "Refunds are issued within 5 days of a cancellation. The Pro plan costs $49 a month."
REQUEST = CompletionRequest(
    model_id="local.stand-in",
    system="Answer briefly.",
    user="How long do refunds take, and what does Pro cost?",
    parameters=InferenceParameters(max_tokens=120, temperature=0.0, top_p=0.9),
)
#: What one scripted sample (100 tokens in, 20 out) costs on the stand-in's price.
PER_SAMPLE = default_prices().cost(Usage(input_tokens=100, output_tokens=20), "local.stand-in")
CALL = AnsweredCall(prompt="faq", version=4, provider=Provider.LOCAL, request=REQUEST,
                    teams=("support",))  # fmt: skip


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
            usage=Usage(input_tokens=100, output_tokens=20),
            latency_ms=5,
            model_id=request.model_id,
        )


def _budgets(*, day: Decimal | None = None, prices: object = None) -> Budgets:
    limits = {"faq": BudgetLimits(day=day)} if day is not None else {}
    return Budgets(
        BudgetPolicy(prompts=limits),
        InMemoryBudgetLedger(),
        clock=FixedClock(DAY),
        **({"prices": prices} if prices is not None else {}),  # type: ignore[arg-type]
    )


def _check(
    provider: object, budgets: Budgets | None = None, **options: object
) -> SelfConsistencyEvaluator:
    return SelfConsistencyEvaluator(
        providers=lambda _kind: provider,  # type: ignore[arg-type,return-value]
        budgets=budgets or _budgets(),
        **options,  # type: ignore[arg-type]
    )


def _item(answer: str = ANSWER, **fields: object) -> EvaluationInput:
    return EvaluationInput(answer=answer, question=REQUEST.user, call=CALL, **fields)


def _usage(budgets: Budgets, name: str = "faq") -> list[tuple[str, int, Decimal]]:
    rows = budgets.ledger.usage_rows(Scope.PROMPT, name, date(2026, 12, 7), date(2026, 12, 7))
    return [(r.sk, r.calls, r.cost) for r in rows]


def test_samples_that_say_the_same_in_other_order_and_words_agree() -> None:
    provider = Scripted(
        "The Pro plan costs $49 per month. Refunds are issued within 5 days of cancellation.",
        "A refund is issued within 5 days of a cancellation; Pro costs $49 a month.",
        "Refunds are issued within 5 days of a cancellation. Pro is $49 monthly.",
    )
    budgets = _budgets()

    scored = _check(provider, budgets).evaluate(_item())

    assert (scored.evaluator, scored.score, scored.verdict) == ("consistency", 1.0, Verdict.PASS)
    assert scored.evidence == ()
    # Three calls at the sampling temperature, everything else as the answer's call
    assert [r.parameters.temperature for r in provider.requests] == [0.8, 0.8, 0.8]
    assert {r.model_copy(update={"parameters": REQUEST.parameters}) for r in provider.requests} == {
        REQUEST
    }
    assert provider.requests[0].parameters.top_p == 0.9
    # Charged to the answering prompt's version as variant consistency, and costed
    assert _usage(budgets) == [("DAY#2026-12-07#V4#consistency", 3, 3 * PER_SAMPLE)]
    assert scored.cost == 3 * PER_SAMPLE


def test_samples_that_disagree_on_a_number_fail_the_sentence_with_evidence() -> None:
    provider = Scripted(
        "Refunds are issued within 14 days of a cancellation. The Pro plan costs $49 a month.",
        "Refunds are issued within 10 days of a cancellation. Pro costs $49 a month.",
        "Refunds are issued within 5 days of a cancellation. The Pro plan is $49 a month.",
    )

    scored = _check(provider, threshold=0.8).evaluate(_item())

    assert (scored.score, scored.verdict) == (0.5, Verdict.FAIL)
    [why] = scored.evidence
    assert why.sentence == "Refunds are issued within 5 days of a cancellation."
    assert why.note == "2 of 3 samples disagree: number 5 is not in the passage"
    assert why.passage is not None
    assert "14 days" in why.passage
    assert why.score == pytest.approx(1 / 3, abs=1e-6)


def test_one_sample_out_of_three_disagreeing_is_not_a_disagreement() -> None:
    provider = Scripted(
        "Refunds are never issued after a cancellation. Pro costs $49 a month.",
        ANSWER,
        ANSWER,
    )
    assert _check(provider).evaluate(_item()).score == 1.0


def test_a_negated_majority_fails_and_an_even_split_is_no_majority() -> None:
    negated = "Refunds are not issued within 5 days of a cancellation. Pro costs $49 a month."
    score, evidence = agreement(ANSWER, [negated, negated, ANSWER])
    assert score == 0.5
    assert evidence[0].note == "2 of 3 samples disagree: negated on one side only"
    # Two samples, one each way: no strict majority agrees
    assert agreement(ANSWER, [negated, ANSWER])[0] == 0.5


def test_with_a_context_it_is_not_applicable_and_samples_nothing() -> None:
    provider = Scripted()
    scored = _check(provider).evaluate(_item(context=("Refunds take 5 days.",)))
    assert (scored.applicable, scored.verdict, scored.cost) == (False, Verdict.PASS, None)
    assert scored.evidence[0].note == "the answer has a context: groundedness judges it"
    assert provider.requests == []


def test_without_the_call_it_is_not_applicable() -> None:
    scored = _check(Scripted()).evaluate(EvaluationInput(answer=ANSWER))
    assert not scored.applicable


def test_a_model_the_price_table_says_does_not_sample_is_not_applicable() -> None:
    table = default_prices().model_dump(mode="json")
    for price in table["prices"]:
        price["sampling"] = price["model_id"] != "local.stand-in"
    provider = Scripted()

    scored = _check(provider, _budgets(prices=parse_prices(table))).evaluate(_item())

    assert not scored.applicable
    assert scored.evidence[0].note == "model local.stand-in does not sample (sampling: false)"
    assert provider.requests == []


def test_an_answer_without_a_claim_passes_without_sampling() -> None:
    provider = Scripted()
    scored = _check(provider).evaluate(_item("Thanks for asking! Is it urgent?"))
    assert (scored.score, scored.applicable, provider.requests) == (1.0, True, [])


def test_a_provider_that_stays_throttled_raises_after_its_retries_and_is_refunded() -> None:
    throttled = [ProviderThrottledError("slow down", field="provider") for _ in range(3)]
    provider = Scripted(ANSWER, *throttled)
    retrying = RetryingProvider(provider, RetryPolicy(max_attempts=3), sleep=lambda _s: None)
    budgets = _budgets(day=Decimal("1"))

    with pytest.raises(ProviderThrottledError) as caught:
        _check(retrying, budgets).evaluate(_item())

    assert caught.value.details["attempts"] == 3
    # The sample that answered is charged; the one that never did is refunded
    assert _usage(budgets) == [("DAY#2026-12-07#V4#consistency", 2, PER_SAMPLE)]


def test_sampling_settings_out_of_range_are_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError) as few:
        _check(Scripted(), samples=1)
    assert few.value.field == "consistency_samples"
    with pytest.raises(ConfigError) as cold:
        _check(Scripted(), temperature=0.0)
    assert cold.value.field == "consistency_temperature"


# -- the local stand-in ---------------------------------------------------------------------------
def _converse(temperature: float | None) -> dict[str, object]:
    config: dict[str, object] = {"maxTokens": 60}
    if temperature is not None:
        config["temperature"] = temperature
    return {
        "modelId": "local.stand-in",
        "inferenceConfig": config,
        "messages": [{"role": "user", "content": [{"text": "Refunds take 5 days, 10 by card."}]}],
    }


def _text(engine: LocalConverse, request: dict[str, object]) -> str:
    return str(engine.converse(request)["output"]["message"]["content"][0]["text"])


def test_the_stand_in_contradicts_itself_only_on_sampled_calls_with_the_fault() -> None:
    engine = LocalConverse()
    plain = _text(engine, _converse(0.8))
    engine.inject("inconsistent", "inconsistent")

    # A call that does not sample leaves the faults for one that does
    assert _text(engine, _converse(None)) == plain
    assert engine.pending() == ["inconsistent", "inconsistent"]
    first, second = _text(engine, _converse(0.8)), _text(engine, _converse(0.8))

    assert plain == "Refunds take 5 days, 10 by card."
    assert len({plain, first, second}) == 3
    assert "5 days" not in first
    assert "5 days" not in second
    # The same request and sample index give the same answer
    again = LocalConverse()
    again.inject("inconsistent", "inconsistent")
    assert [_text(again, _converse(0.8)), _text(again, _converse(0.8))] == [first, second]


def test_without_a_number_the_stand_in_negates() -> None:
    assert contradict("Exports time out on Safari.", 3, 0) == (
        "It is not true that exports time out on Safari."
    )
    samples = [contradict("Exports time out on Safari.", 3, i) for i in range(3)]
    score, [why] = agreement("Exports time out on Safari.", samples)
    assert score == 0.0
    assert why.note == "3 of 3 samples disagree: negated on one side only"


def test_with_the_stand_in_the_check_passes_and_with_the_fault_it_fails() -> None:
    engine = LocalConverse()
    check = _check(LocalProvider(engine))
    answer = LocalProvider(engine).complete(REQUEST.model_copy(update={"user": ANSWER}))
    item = EvaluationInput(
        answer=answer.text,
        call=CALL.model_copy(update={"request": REQUEST.model_copy(update={"user": ANSWER})}),
    )

    assert check.evaluate(item).score == 1.0
    engine.inject(*["inconsistent"] * 3)
    failed = check.evaluate(item)
    assert (failed.score, failed.verdict) == (0.0, Verdict.FAIL)
    assert [e.note for e in failed.evidence] == [
        "3 of 3 samples disagree: number 5 is not in the passage",
        "3 of 3 samples disagree: number 49 is not in the passage",
    ]


# -- through the set runner and the gate ----------------------------------------------------------
SPEC = parse_prompt({
    "name": "faq", "description": "d", "owner": "o", "provider": "local",
    "model_id": "local.stand-in", "template": "Confirm to the customer:\n\n{{ fact }}",
    "variables": {"fact": {}}, "parameters": {"max_tokens": 60},
})  # fmt: skip
SET = b"\n".join(
    b'{"variables": {"fact": "%s"}}' % fact
    for fact in (
        b"Refunds are issued within 5 days of a cancellation.",
        b"The Pro plan costs $49 per month and includes 5 seats.",
        b"Password reset links expire after 15 minutes.",
        b"Exports of more than 10000 rows are sent by email.",
    )
)


def _side(engine: LocalConverse, budgets: Budgets, version: int) -> object:
    check = SelfConsistencyEvaluator(providers=lambda _k: LocalProvider(engine), budgets=budgets)
    runner = SetRunner(
        budgets=budgets,
        providers=lambda _k: LocalProvider(engine),
        evaluators={"consistency": check},
        policy=LlmPolicy(),
        concurrency=1,
    )
    items = parse_evaluation_set(SET, SPEC).items
    return runner.answer("faq", version, SPEC, items, context_of=SPEC)


def test_the_gate_refuses_a_candidate_whose_answers_are_inconsistent() -> None:
    budgets = _budgets()
    engine = LocalConverse()
    champion = _side(engine, budgets, 1)
    engine.inject(*["inconsistent"] * 12)
    candidate = _side(engine, budgets, 2)
    policy = PromptGatePolicy(consistency_min=0.8)

    report = judge(policy, candidate=candidate, champion=champion)  # type: ignore[arg-type]
    alone = judge(policy, candidate=champion, champion=None)  # type: ignore[arg-type]

    assert alone.passed, alone.reasons
    assert not report.passed
    assert report.reasons == (
        "consistency: worse than champion v1 by more than 0.05 (difference -1.000, 90% "
        "interval [-1.000, -1.000] on 4 items)",
        "consistency: mean 0.000 < consistency_min 0.8",
    )
    [summary] = report.evaluators
    assert summary.worst[0].evidence[0].note is not None
    assert "samples disagree" in summary.worst[0].evidence[0].note
    # The samples are part of what the evaluation cost, not of the cost per call
    calls = report.candidate_calls
    assert calls.calls == 4
    assert calls.evaluation_cost > 0
    assert calls.cost == calls.cost_per_call * 4 + calls.evaluation_cost  # type: ignore[operator]
    counted = {sk: calls for sk, calls, _cost in _usage(budgets)}
    assert counted["DAY#2026-12-07#V2#consistency"] == 12
    # `flywheel prompts show` says what the samples cost next to the cost per call
    shown = evaluation_lines(
        PromptEvaluationDoc(
            version=2, outcome="rejected", reason="; ".join(report.reasons),
            execution_id="arn:aws:states:::execution:promotion:e1",
            evaluated_at=datetime(2026, 12, 7, tzinfo=UTC), report=report,
        )
    )  # fmt: skip
    assert (
        f"  the evaluators' own calls cost {calls.evaluation_cost} (the set's run in all: "
        f"{calls.cost})"
    ) in shown
    assert counted["DAY#2026-12-07#V2#evaluation"] == 4


def test_a_provider_outage_while_sampling_is_evaluation_unavailable_never_a_pass() -> None:
    budgets = _budgets()

    class Flaky:
        def __init__(self) -> None:
            self.inner = LocalProvider()

        def complete(self, request: CompletionRequest) -> Completion:
            if request.parameters.temperature:
                raise ProviderError("down", field="provider", details={"retryable": True})
            return self.inner.complete(request)

    flaky = Flaky()
    check = SelfConsistencyEvaluator(providers=lambda _k: flaky, budgets=budgets)
    runner = SetRunner(
        budgets=budgets,
        providers=lambda _k: flaky,
        evaluators={"consistency": check},
        policy=LlmPolicy(),
        concurrency=1,
    )

    with pytest.raises(EvaluationUnavailableError, match="evaluator consistency could not answer"):
        runner.answer("faq", 1, SPEC, parse_evaluation_set(SET, SPEC).items, context_of=SPEC)


def test_the_gate_policy_validates_the_consistency_settings_like_its_neighbours() -> None:
    policy = PromptGatePolicy.model_validate({"consistency_min": 0.7})
    assert (policy.evaluators(), policy.consistency_samples, policy.consistency_temperature) == (
        ["consistency"], 3, 0.8,
    )  # fmt: skip
    assert PromptGatePolicy().evaluators() == []
    for field, value in (("consistency_min", 1.5), ("consistency_samples", 1),
                         ("consistency_temperature", 0)):  # fmt: skip
        with pytest.raises(ValueError, match=field):
            PromptGatePolicy.model_validate({field: value})
