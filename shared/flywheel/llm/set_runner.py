"""Answer an evaluation set with a prompt version and score every answer (ADR 81).

Each item is rendered with :func:`~flywheel.llm.prompts.render` (its passages in the
candidate's context variable), sent through the provider port as the gateway sends a call
(reserved and settled on the prompt's budgets as variant ``evaluation``), and the answer
is scored by every evaluator with the rendered user message, the passages, the output
schema and the call it made (what evaluators' own calls cost is its ``evaluation_cost``).
Items with ``must_include`` or ``expected`` also get the ``reference`` score.

Throttled, timed-out or unavailable providers and evaluators end the run with
:class:`~flywheel.errors.EvaluationUnavailableError` (the workflow retries the step); no
answer is ever passed without its scores.

Examples
--------
>>> from flywheel.adapters.local_llm import LocalProvider
>>> from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
>>> from flywheel.llm.budgets import BudgetPolicy, Budgets
>>> from flywheel.llm.evaluation_sets import parse_evaluation_set
>>> from flywheel.llm.policy import LlmPolicy
>>> from flywheel.llm.prompts import parse_prompt
>>> spec = parse_prompt({"name": "echo", "description": "d", "owner": "o",
...     "provider": "local", "model_id": "local.stand-in", "template": "{{ text }}",
...     "variables": {"text": {}}, "parameters": {"max_tokens": 20}})
>>> items = parse_evaluation_set(
...     b'{"variables": {"text": "Refunds take 5 days"}, "must_include": ["5 days"]}', spec)
>>> runner = SetRunner(budgets=Budgets(BudgetPolicy(), InMemoryBudgetLedger()),
...                    providers=lambda _kind: LocalProvider(), evaluators={},
...                    policy=LlmPolicy(), concurrency=1)
>>> [answer] = runner.answer("echo", 1, spec, items.items, context_of=spec).answers
>>> answer.answer, answer.scores["reference"].score
('Refunds take 5 days', 1.0)
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING

from flywheel.errors import (
    ConfigError,
    EvaluationUnavailableError,
    PromptVariablesError,
    ProviderError,
    ProviderThrottledError,
    ProviderTimeoutError,
)
from flywheel.llm.budgets import BudgetCall, estimate_input_tokens
from flywheel.llm.evaluation import (
    AnsweredCall,
    Direction,
    EvaluationInput,
    EvaluationScore,
    Evidence,
)
from flywheel.llm.gate import EXCERPT_CHARS, ScoredAnswer, SideAnswers, Unanswered
from flywheel.llm.prompts import render
from flywheel.llm.providers import request_for

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from flywheel.llm.budgets import Budgets
    from flywheel.llm.evaluation import Evaluator
    from flywheel.llm.evaluation_sets import EvaluationItem
    from flywheel.llm.policy import LlmPolicy
    from flywheel.llm.prompts import PromptSpec, Provider, RenderedPrompt
    from flywheel.llm.providers import Completion, CompletionProvider, CompletionRequest

__all__ = ["EVALUATION_VARIANT", "REFERENCE", "SetRunner", "reference_score"]

#: The variant evaluation calls are counted as in the usage counters and cost report.
EVALUATION_VARIANT = "evaluation"
#: The name of the score :func:`reference_score` gives.
REFERENCE = "reference"
#: An answer passes its reference at this score unless the gate's thresholds say otherwise.
REFERENCE_THRESHOLD = 0.5
_WORDS = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")


def _normal(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def reference_score(
    answer: str, item: EvaluationItem, *, threshold: float = REFERENCE_THRESHOLD
) -> EvaluationScore | None:
    """How well ``answer`` matches the item's reference: the share of its
    ``must_include`` facts the answer states (case and spacing ignored), else the token
    F1 with its ``expected`` answer; ``None`` when the item has neither.

    Examples
    --------
    >>> from flywheel.llm.evaluation_sets import EvaluationItem
    >>> item = EvaluationItem(variables={}, must_include=("5 days", "card"))
    >>> score = reference_score("Refunds take 5  Days.", item)
    >>> score.score, score.evidence[0].note
    (0.5, 'missing: card')
    >>> reference_score("the cat sat", EvaluationItem(variables={}, expected="a cat sat")).score
    0.666667
    """
    if item.must_include:
        said = _normal(answer)
        missing = tuple(f for f in item.must_include if _normal(f) not in said)
        value = 1 - len(missing) / len(item.must_include)
        note = f"missing: {', '.join(missing)}" if missing else "every fact stated"
        evidence = (Evidence(note=note),)
    elif item.expected is not None:
        value = _f1(_WORDS.findall(answer.lower()), _WORDS.findall(item.expected.lower()))
        evidence = (Evidence(passage=item.expected[:EXCERPT_CHARS], note="token F1"),)
    else:
        return None
    return EvaluationScore(
        evaluator=REFERENCE,
        score=round(value, 6),
        threshold=threshold,
        direction=Direction.HIGHER_IS_BETTER,
        evidence=evidence,
    )


def _f1(answer: list[str], expected: list[str]) -> float:
    if not answer or not expected:
        return 0.0
    remaining = list(expected)
    common = 0
    for word in answer:
        if word in remaining:
            remaining.remove(word)
            common += 1
    if common == 0:
        return 0.0
    precision, recall = common / len(answer), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _unavailable(what: str, error: ProviderError) -> EvaluationUnavailableError:
    return EvaluationUnavailableError(
        f"{what} could not answer: {error.message}",
        field=error.field,
        details={"cause": error.code, "attempts": error.details.get("attempts")},
    )


def _retryable(error: ProviderError) -> bool:
    return isinstance(error, ProviderThrottledError | ProviderTimeoutError) or bool(
        error.details.get("retryable")
    )


class SetRunner:
    """Answer an evaluation set with one prompt version (see the module docstring).

    Parameters
    ----------
    budgets
        Reservations and settlements against the stage's budgets (as the gateway's).
    providers
        The provider port of each provider kind.
    evaluators
        The evaluators, by name; every answer is scored by each.
    policy
        The stage's LLM policy (the teams a prompt's calls are charged to).
    concurrency
        Items answered at once.
    reference_threshold
        The score at which an answer passes its ``reference``.
    """

    def __init__(
        self,
        *,
        budgets: Budgets,
        providers: Callable[[Provider], CompletionProvider],
        evaluators: Mapping[str, Evaluator],
        policy: LlmPolicy,
        concurrency: int = 4,
        reference_threshold: float = REFERENCE_THRESHOLD,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._budgets = budgets
        self._providers = providers
        self._evaluators = dict(evaluators)
        self._policy = policy
        self._concurrency = max(1, concurrency)
        self._reference_threshold = reference_threshold
        self._timer = timer

    @property
    def evaluators(self) -> list[str]:
        """The names of the evaluators every answer is scored by (and ``reference``)."""
        return sorted([*self._evaluators, REFERENCE])

    def answer(
        self,
        name: str,
        version: int,
        spec: PromptSpec,
        items: Sequence[EvaluationItem],
        *,
        context_of: PromptSpec,
    ) -> SideAnswers:
        """Version ``version`` of prompt ``name`` (``spec``) answers ``items``.

        ``context_of`` is the spec whose context variable and set the items belong to
        (the candidate's, also when the champion answers). An item ``spec`` cannot
        render (the champion takes other variables) is :class:`Unanswered`.

        Raises
        ------
        EvaluationUnavailableError
            The provider or an evaluator was throttled, timed out or unavailable.
        ProviderError
            The provider refused a call for another reason (a bad request, say).
        BudgetExceededError
            A budget has no room for a call.
        """
        try:
            provider = self._providers(spec.provider)
        except ConfigError as err:
            raise ProviderError(
                f"provider {spec.provider} is not configured in this stage",
                details={"cause": err.code, "field": err.field},
            ) from err

        def one(index: int) -> ScoredAnswer | Unanswered:
            return self._one(name, version, spec, provider, items[index], index, context_of)

        if self._concurrency == 1 or len(items) == 1:
            answers = [one(i) for i in range(len(items))]
        else:
            pool = ThreadPoolExecutor(
                max_workers=min(self._concurrency, len(items)), thread_name_prefix="evaluation"
            )
            try:
                answers = list(pool.map(one, range(len(items))))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        return SideAnswers(version=version, answers=tuple(answers))

    def _one(
        self,
        name: str,
        version: int,
        spec: PromptSpec,
        provider: CompletionProvider,
        item: EvaluationItem,
        index: int,
        context_of: PromptSpec,
    ) -> ScoredAnswer | Unanswered:
        label = item.label(index)
        try:
            rendered = render(spec, item.variables_for(context_of))
        except PromptVariablesError as err:
            if spec is context_of:
                raise ConfigError(
                    f"evaluation.set {label}: {err.message}", field="evaluation.set"
                ) from err
            return Unanswered(item=index, label=label, reason=err.message)
        request = request_for(spec, rendered)
        completion, cost, latency_ms = self._call(name, version, spec, provider, rendered, request)
        question = rendered.user
        passages = item.passages(context_of)
        scores: dict[str, EvaluationScore] = {}
        judged = EvaluationInput(
            answer=completion.text,
            question=question,
            context=passages,
            output_schema=spec.output_schema,
            call=AnsweredCall(
                prompt=name,
                version=version,
                provider=spec.provider,
                request=request,
                teams=self._policy.prompt(name).teams,
            ),
        )
        for evaluator_name, evaluator in sorted(self._evaluators.items()):
            try:
                scores[evaluator_name] = evaluator.evaluate(judged)
            except ProviderError as err:
                if _retryable(err):
                    raise _unavailable(f"evaluator {evaluator_name}", err) from err
                raise
        reference = reference_score(completion.text, item, threshold=self._reference_threshold)
        if reference is not None:
            scores[REFERENCE] = reference
        text = completion.text
        return ScoredAnswer(
            item=index,
            label=label,
            answer=text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…",
            scores=scores,
            cost=cost,
            evaluation_cost=sum((s.cost for s in scores.values() if s.cost), Decimal(0)),
            latency_ms=round(latency_ms, 3),
        )

    def _call(
        self,
        name: str,
        version: int,
        spec: PromptSpec,
        provider: CompletionProvider,
        rendered: RenderedPrompt,
        request: CompletionRequest,
    ) -> tuple[Completion, Decimal, float]:
        """One provider call between its reservation and its settlement, as the gateway
        makes it: the completion, its exact cost and its latency (ms, retries included).

        A settlement that fails leaves the reservation charged (spend is over-, never
        under-counted), as in the gateway; the cost is then the price table's."""
        try:
            done = self._budgets.complete(
                BudgetCall.model_construct(
                    prompt=name,
                    teams=self._policy.prompt(name).teams,
                    provider=spec.provider,
                    model_id=spec.model_id,
                    input_tokens=estimate_input_tokens(rendered),
                    max_tokens=spec.parameters.max_tokens,
                ),
                provider,
                request,
                version=version,
                variant=EVALUATION_VARIANT,
                timer=self._timer,
            )
        except ProviderError as err:
            if _retryable(err):
                raise _unavailable(f"the provider of version {version}", err) from err
            raise
        return done.completion, done.cost, done.latency_ms
