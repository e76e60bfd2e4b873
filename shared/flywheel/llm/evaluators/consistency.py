"""Self-consistency: for answers given no context, do several sampled answers agree?

The evaluator sends the call that produced the answer
(:class:`~flywheel.llm.evaluation.AnsweredCall`) ``samples`` more times at a sampling
``temperature`` and reads each claim-bearing sentence of the answer against every sample
with the groundedness machinery (the sample as the only passage). A sentence is agreed on
when a strict majority of the samples support it; the score is the agreed share; the
evidence is the sentences the samples disagree with. Not applicable with a context, without
a call, or for a model the price table marks ``sampling: false``. Samples are budgeted and
charged as the variant ``consistency``. Agreement is not truth: a consistently wrong model
passes (ADR 81).

Examples
--------
>>> from flywheel.adapters.local_llm import LocalProvider
>>> from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
>>> from flywheel.llm.budgets import BudgetPolicy, Budgets
>>> from flywheel.llm.evaluation import AnsweredCall, EvaluationInput
>>> from flywheel.llm.prompts import InferenceParameters, Provider
>>> from flywheel.llm.providers import CompletionRequest
>>> request = CompletionRequest(model_id="local.stand-in", user="Refunds take 5 days.",
...                             parameters=InferenceParameters(max_tokens=50))
>>> call = AnsweredCall(prompt="faq", version=1, provider=Provider.LOCAL, request=request)
>>> check = SelfConsistencyEvaluator(providers=lambda _kind: LocalProvider(),
...                                  budgets=Budgets(BudgetPolicy(), InMemoryBudgetLedger()))
>>> scored = check.evaluate(EvaluationInput(answer="Refunds take 5 days.", call=call))
>>> scored.score, scored.cost > 0
(1.0, True)
>>> check.evaluate(EvaluationInput(answer="Refunds take 5 days.", call=call,
...                                context=("Refunds take 5 days.",))).applicable
False
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING

from flywheel.errors import ConfigError
from flywheel.llm.budgets import FRAMING_TOKENS, BudgetCall
from flywheel.llm.evaluation import Direction, EvaluationInput, EvaluationScore, Evidence
from flywheel.llm.evaluators.groundedness import (
    DEFAULT_MIN_CONTENT_WORDS,
    DEFAULT_SUPPORT,
    GroundednessEvaluator,
    SentenceSupport,
    claim_sentences,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from flywheel.llm.budgets import Budgets
    from flywheel.llm.evaluation import AnsweredCall
    from flywheel.llm.prompts import Provider
    from flywheel.llm.providers import CompletionProvider, CompletionRequest

__all__ = [
    "CONSISTENCY",
    "CONSISTENCY_VARIANT",
    "DEFAULT_SAMPLES",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_THRESHOLD",
    "SelfConsistencyEvaluator",
    "agreement",
]

#: The evaluator's name (and the gate's ``consistency_min``).
CONSISTENCY = "consistency"
#: The usage counters' variant of the sampled calls.
CONSISTENCY_VARIANT = "consistency"
#: The share of agreed sentences an answer needs to pass, unless told otherwise.
DEFAULT_THRESHOLD = 0.8
#: Extra answers drawn per answer, and the temperature they are drawn at.
DEFAULT_SAMPLES = 3
DEFAULT_TEMPERATURE = 0.8
#: The most samples one answer may cost.
MAX_SAMPLES = 10
#: Disagreed sentences listed as evidence at most.
_MAX_EVIDENCE = 20


def _input_tokens(request: CompletionRequest) -> int:
    """The request's input tokens estimated as the gateway estimates a rendered prompt's
    (:func:`~flywheel.llm.budgets.estimate_input_tokens`), earlier turns included."""
    texts = (request.system, request.user, *(turn.text for turn in request.history))
    return math.ceil(sum(len(t.encode()) for t in texts) / 3) + FRAMING_TOKENS


def agreement(
    answer: str,
    samples: Sequence[str],
    *,
    question: str | None = None,
    support: float = DEFAULT_SUPPORT,
    min_content_words: int = DEFAULT_MIN_CONTENT_WORDS,
) -> tuple[float, tuple[Evidence, ...]]:
    """The share of ``answer``'s claim-bearing sentences a strict majority of ``samples``
    support, and the evidence of the others (the sentence, the share of samples that
    support it, the first disagreeing sample and why). No claim: ``1.0``.

    Examples
    --------
    >>> agreement("Refunds take 5 days.", ["A refund takes 5 days.", "Refunds take 5 days."])
    (1.0, ())
    >>> score, [why] = agreement("Refunds take 5 days.",
    ...                          ["Refunds take 9 days.", "Refunds take 7 days.",
    ...                           "Refunds take 5 days."])
    >>> score, why.score, why.note
    (0.0, 0.333333, '2 of 3 samples disagree: number 5 is not in the passage')
    """
    judge = GroundednessEvaluator(support=support, min_content_words=min_content_words)
    claims = claim_sentences(answer, min_content_words)
    if not claims:
        return 1.0, ()
    if not samples:
        raise ValueError("no samples to compare the answer with")
    per_sample: list[list[SentenceSupport]] = []
    for sample in samples:
        if not sample.strip():
            per_sample.append([SentenceSupport(c, None, 0.0, False, "the sample is empty")
                               for c in claims])  # fmt: skip
            continue
        item = EvaluationInput(answer=answer, question=question, context=(sample,))
        per_sample.append(judge.sentences(item))
    agreed = 0
    evidence: list[Evidence] = []
    for i, claim in enumerate(claims):
        found = [judged[i] for judged in per_sample]
        supporting = sum(1 for s in found if s.supported)
        if 2 * supporting > len(samples):
            agreed += 1
            continue
        first = next(s for s in found if not s.supported)
        evidence.append(
            Evidence(
                sentence=claim,
                passage=first.passage,
                words=first.missing,
                note=f"{len(samples) - supporting} of {len(samples)} samples disagree: "
                f"{first.note}",
                score=round(supporting / len(samples), 6),
            )
        )
    return agreed / len(claims), tuple(evidence[:_MAX_EVIDENCE])


class SelfConsistencyEvaluator:
    """:class:`~flywheel.llm.evaluation.Evaluator` ``consistency`` (see the module
    docstring): higher is better.

    Parameters
    ----------
    providers
        The provider port of each provider kind (retrying, as the gateway's).
    budgets
        Where each sampled call is reserved and settled; its price table says which
        models sample.
    threshold
        The share of agreed sentences an answer needs to pass.
    samples
        Extra answers drawn per answer (2 to :data:`MAX_SAMPLES`).
    temperature
        The temperature they are drawn at (above 0, at most 1); the call's ``top_p``,
        stop sequences and ``max_tokens`` are kept.
    support, min_content_words
        As :class:`~flywheel.llm.evaluators.groundedness.GroundednessEvaluator`'s.

    Raises
    ------
    ConfigError
        ``samples`` or ``temperature`` is out of range (``field`` names it).
    """

    name = CONSISTENCY

    def __init__(
        self,
        *,
        providers: Callable[[Provider], CompletionProvider],
        budgets: Budgets,
        threshold: float = DEFAULT_THRESHOLD,
        samples: int = DEFAULT_SAMPLES,
        temperature: float = DEFAULT_TEMPERATURE,
        support: float = DEFAULT_SUPPORT,
        min_content_words: int = DEFAULT_MIN_CONTENT_WORDS,
    ) -> None:
        if isinstance(samples, bool) or not 2 <= samples <= MAX_SAMPLES:
            raise ConfigError(
                f"consistency_samples: from 2 to {MAX_SAMPLES} samples, not {samples!r}",
                field="consistency_samples",
            )
        if not 0 < temperature <= 1:
            raise ConfigError(
                f"consistency_temperature: above 0 and at most 1, not {temperature!r}",
                field="consistency_temperature",
            )
        self.threshold = threshold
        self.samples = samples
        self.temperature = temperature
        self.support = support
        self.min_content_words = min_content_words
        self._providers = providers
        self._budgets = budgets

    def sampled_request(self, request: CompletionRequest) -> CompletionRequest:
        """``request`` at the sampling temperature (everything else kept)."""
        parameters = request.parameters.model_copy(update={"temperature": self.temperature})
        return request.model_copy(update={"parameters": parameters})

    def samples_allowed(self, call: AnsweredCall) -> bool:
        """Whether the call's model samples: not when its price says ``sampling: false``."""
        price = self._budgets.prices.find(call.request.model_id, call.provider)
        return price is None or price.sampling

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        if any(c.strip() for c in item.context):
            note = "the answer has a context: groundedness judges it"
            return self._score(0.0, (Evidence(note=note),), applicable=False)
        call = item.call
        if call is None:
            note = "no call to ask again (only the evaluation set runner gives one)"
            return self._score(0.0, (Evidence(note=note),), applicable=False)
        if not self.samples_allowed(call):
            note = f"model {call.request.model_id} does not sample (sampling: false)"
            return self._score(0.0, (Evidence(note=note),), applicable=False)
        if not claim_sentences(item.answer, self.min_content_words):
            return self._score(1.0, (Evidence(note="no claim-bearing sentence"),))
        provider = self._providers(call.provider)
        request = self.sampled_request(call.request)
        texts: list[str] = []
        cost = Decimal(0)
        for _ in range(self.samples):
            text, spent = self._sample(call, provider, request)
            texts.append(text)
            cost += spent
        score, evidence = agreement(
            item.answer,
            texts,
            question=item.question,
            support=self.support,
            min_content_words=self.min_content_words,
        )
        return self._score(score, evidence, cost=cost)

    def _sample(
        self, call: AnsweredCall, provider: CompletionProvider, request: CompletionRequest
    ) -> tuple[str, Decimal]:
        """One sampled answer between its reservation and its settlement, and its cost."""
        done = self._budgets.complete(
            BudgetCall.model_construct(
                prompt=call.prompt,
                teams=call.teams,
                provider=call.provider,
                model_id=request.model_id,
                input_tokens=_input_tokens(request),
                max_tokens=request.parameters.max_tokens,
            ),
            provider,
            request,
            version=call.version,
            variant=CONSISTENCY_VARIANT,
        )
        return done.completion.text, done.cost

    def _score(
        self,
        score: float,
        evidence: tuple[Evidence, ...],
        *,
        applicable: bool = True,
        cost: Decimal | None = None,
    ) -> EvaluationScore:
        return EvaluationScore(
            evaluator=self.name,
            score=min(1.0, max(0.0, score)),
            threshold=self.threshold,
            direction=Direction.HIGHER_IS_BETTER,
            evidence=evidence,
            applicable=applicable,
            cost=cost,
        )
