"""The evaluator port: one answer in, a score in [0, 1], a verdict and the evidence out.

Evaluators judge what a prompt version answered: toxicity (of the answer, optionally of
the user's input), groundedness (the share of the answer's claim-bearing sentences the
context supports), relevance (to the question), format (the output schema parses) and,
for answers without context, consistency (whether answers sampled again agree with it).
Adapters: embedded evaluators that need no service (the local runtime, tests) and, in
AWS, Amazon Bedrock Guardrails and judge prompts. The promotion gate and the production
monitor read scores through this port only.

Examples
--------
>>> score = EvaluationScore(evaluator="format", score=1.0, threshold=1.0,
...                         direction=Direction.HIGHER_IS_BETTER)
>>> score.verdict, score.passed
(<Verdict.PASS: 'pass'>, True)
>>> EvaluationScore(evaluator="toxicity", score=0.93, threshold=0.5,
...                 direction=Direction.LOWER_IS_BETTER).verdict
<Verdict.FAIL: 'fail'>
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from pydantic import Field, JsonValue, computed_field

from flywheel.llm.prompts import Provider
from flywheel.llm.providers import CompletionRequest
from flywheel.models import Frozen

__all__ = [
    "AnsweredCall",
    "Direction",
    "EvaluationInput",
    "EvaluationScore",
    "Evaluator",
    "Evidence",
    "Verdict",
]


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"


class Direction(StrEnum):
    """Whether a high score is good (groundedness, relevance, format) or bad (toxicity)."""

    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class Evidence(Frozen):
    """Why a score is what it is: the sentence judged, the words that decided, the
    context passage that supports it (or the closest one that does not)."""

    sentence: str | None = None
    words: tuple[str, ...] = ()
    passage: str | None = None
    #: What was found, in a few words ("number 49 not in the context", "negated").
    note: str | None = None
    #: This piece's own score, when the evaluator scores pieces (a sentence's support).
    score: float | None = Field(default=None, ge=0, le=1)


class AnsweredCall(Frozen):
    """The call that produced an answer, for evaluators that ask the model again
    (self-consistency): the prompt version, its provider and the request it made. Their
    calls are charged to this prompt, version and teams."""

    prompt: str = Field(min_length=1, max_length=128)
    version: int = Field(ge=1)
    provider: Provider
    request: CompletionRequest
    teams: tuple[str, ...] = ()


class EvaluationInput(Frozen):
    """One answer to judge, with what it was asked and what it was given."""

    #: The answer's text (JSON answers as their text).
    answer: str
    #: The question or the rendered user message (relevance, input toxicity).
    question: str | None = None
    #: The passages the answer had to be grounded in (retrieval-augmented prompts).
    context: tuple[str, ...] = ()
    #: The prompt version's output schema, if any (format).
    output_schema: dict[str, JsonValue] | None = None
    #: The call that answered, when the caller made it (the evaluation set runner).
    call: AnsweredCall | None = None


class EvaluationScore(Frozen):
    """One evaluator's judgement of one answer."""

    evaluator: str = Field(min_length=1, max_length=64)
    score: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)
    direction: Direction
    evidence: tuple[Evidence, ...] = ()
    #: False when the evaluator could not judge this input (no context for groundedness,
    #: no question for relevance): the score is then not counted.
    applicable: bool = True
    #: What the evaluator's own provider calls for this answer cost (a judge prompt, the
    #: self-consistency samples), in the price table's currency; ``None``: it made none.
    cost: Decimal | None = Field(default=None, ge=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> Verdict:
        """``pass`` when the score is on the good side of the threshold (inclusive)."""
        good = (
            self.score >= self.threshold
            if self.direction is Direction.HIGHER_IS_BETTER
            else self.score < self.threshold
        )
        return Verdict.PASS if good or not self.applicable else Verdict.FAIL

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS


class Evaluator(Protocol):
    """Judges answers one at a time (thread-safe; no state between calls).

    Raises
    ------
    ProviderError, ProviderThrottledError, ProviderTimeoutError
        An evaluator backed by a service could not answer (after its retries): the
        caller fails the evaluation visibly, it never passes a candidate by default.
    """

    @property
    def name(self) -> str:
        """``toxicity``, ``groundedness``, ``relevance``, ``format`` or an adapter's own."""
        ...

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        """Score one answer."""
        ...
