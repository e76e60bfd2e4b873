"""Guardrails in the gateway's request path (ADR 83): a prompt's input and answer judged
on every call, a blocked one answered (200) with the policy's message.

A prompt's policy may carry a :class:`GuardrailPolicy` (``guardrails:`` under
``llm.prompts.<name>``). The input guardrail judges the caller's variables (the context
variable left out) before the provider is called; the output guardrail judges the
answer after the output-schema check, with the context's passages for groundedness.
The composition root chooses the judges (:data:`GuardrailJudgesFactory`): the embedded
evaluators (:func:`embedded_judges`) or the stage's Bedrock guardrail. A judge that
fails blocks by default (503 ``guardrail_unavailable``); ``on_error: allow`` lets the
call through unjudged.

Examples
--------
>>> policy = GuardrailPolicy.model_validate(
...     {"input": {"toxicity": 0.6}, "output": {"groundedness": 0.5}})
>>> policy.output.toxicity, policy.on_error, policy.blocked_input
(0.5, 'block', "I can't help with that request.")
>>> judges = embedded_judges(policy)
>>> judge("input", judges.input, input_item({"question": "Shut up, you stupid idiot."}))
GuardrailOutcome(stage='input', action='blocked', evaluator='toxicity', score=1.0)
>>> judge("input", judges.input, input_item({"question": "How do I export?"})) is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from flywheel.errors import FlywheelError, GuardrailUnavailableError
from flywheel.llm.evaluation import EvaluationInput
from flywheel.llm.prompts import VARIABLE_NAME, Guardrail, Variable
from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from flywheel.llm.evaluation import Evaluator

__all__ = [
    "GuardrailJudges",
    "GuardrailJudgesFactory",
    "GuardrailOutcome",
    "GuardrailPolicy",
    "InputGuardrail",
    "OutputGuardrail",
    "context_passages",
    "embedded_judges",
    "input_item",
    "judge",
    "output_item",
]

Stage = Literal["input", "output"]
_PARAGRAPHS = re.compile(r"\n\s*\n")


class GuardrailOutcome(Frozen):
    """What a guardrail did to a call (in the answer and in the captured row)."""

    stage: Stage
    action: Literal["blocked"] = "blocked"
    #: The evaluator that blocked (``toxicity``, ``groundedness``).
    evaluator: str
    #: Its score, rounded to 4 places (toxicity: higher is worse; groundedness: lower).
    score: float = Field(ge=0, le=1)


class InputGuardrail(Frozen):
    """The caller's input, judged before the provider is called."""

    #: Blocked when the input's toxicity is at or above this.
    toxicity: float = Field(default=0.5, ge=0, le=1)


class OutputGuardrail(Frozen):
    """The answer, judged after the output-schema check."""

    #: Blocked when the answer's toxicity is at or above this (``None``: not judged).
    toxicity: float | None = Field(default=0.5, ge=0, le=1)
    #: Blocked when the answer's groundedness in the context is below this (``None``:
    #: not judged). Only calls that give the context variable are judged.
    groundedness: float | None = Field(default=None, ge=0, le=1)
    #: The variable holding the context (default: the answering version's
    #: ``evaluation.context_variable``).
    context_variable: str | None = Field(default=None, pattern=f"^{VARIABLE_NAME.pattern}$")

    @model_validator(mode="after")
    def _judges_something(self) -> OutputGuardrail:
        if self.toxicity is None and self.groundedness is None:
            raise ValueError("name at least one check: toxicity or groundedness")
        if self.context_variable is not None and self.groundedness is None:
            raise ValueError("context_variable is read by the groundedness check only")
        return self


class GuardrailPolicy(Frozen):
    """A prompt's guardrails (``guardrails:`` in ``llm.prompts.<name>``).

    Examples
    --------
    >>> GuardrailPolicy.model_validate({})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for GuardrailPolicy
    ...
    """

    input: InputGuardrail | None = None
    output: OutputGuardrail | None = None
    #: The stage's Amazon Bedrock guardrail that judges in AWS (its content filters for
    #: toxicity, its contextual grounding check for groundedness); ``None``, and on the
    #: local runtime: the embedded evaluators.
    bedrock: Guardrail | None = None
    #: The answer to a blocked input.
    blocked_input: str = Field(
        default="I can't help with that request.", min_length=1, max_length=500
    )
    #: What replaces a blocked answer.
    blocked_output: str = Field(default="I can't share that answer.", min_length=1, max_length=500)
    #: When a judge fails: ``block`` (503 ``guardrail_unavailable``) or ``allow`` (the
    #: call goes on unjudged; counted as ``GuardrailFailures``).
    on_error: Literal["block", "allow"] = "block"

    @model_validator(mode="after")
    def _guards_something(self) -> GuardrailPolicy:
        if self.input is None and self.output is None:
            raise ValueError("name the input guardrail, the output guardrail or both")
        return self


@dataclass(frozen=True, slots=True)
class GuardrailJudges:
    """The evaluators of a prompt's guardrails, in the order they judge."""

    input: tuple[Evaluator, ...]
    output: tuple[Evaluator, ...]


#: Builds the judges of a policy (the composition root's choice of evaluators).
GuardrailJudgesFactory = Callable[[GuardrailPolicy], GuardrailJudges]


def embedded_judges(policy: GuardrailPolicy) -> GuardrailJudges:
    """The embedded evaluators (no service) that ``policy`` names, with its thresholds.

    Raises
    ------
    ConfigError
        The embedded evaluators are not installed with this Flywheel.
    """
    from flywheel.llm.evaluators import GroundednessEvaluator, ToxicityEvaluator

    inputs: list[Evaluator] = []
    outputs: list[Evaluator] = []
    if policy.input is not None:
        inputs.append(ToxicityEvaluator(policy.input.toxicity))
    if policy.output is not None:
        if policy.output.toxicity is not None:
            outputs.append(ToxicityEvaluator(policy.output.toxicity))
        if policy.output.groundedness is not None:
            outputs.append(GroundednessEvaluator(policy.output.groundedness))
    return GuardrailJudges(input=tuple(inputs), output=tuple(outputs))


def input_item(variables: Mapping[str, object], *, skip: str | None = None) -> EvaluationInput:
    """The caller's input as one text to judge: each variable's text but ``skip`` (the
    context), one a line, as ``answer`` and ``question`` (evaluators read one or the other).

    Examples
    --------
    >>> input_item({"q": "Hi", "n": 3, "passages": "long"}, skip="passages").answer
    'Hi\\n3'
    """
    text = "\n".join(Variable.text(v) for k, v in variables.items() if k != skip)
    return EvaluationInput(answer=text, question=text)


def judge(
    stage: Stage, evaluators: Sequence[Evaluator], item: EvaluationInput
) -> GuardrailOutcome | None:
    """The first of ``evaluators`` that fails ``item``, as an outcome; ``None``: all pass.

    Raises
    ------
    GuardrailUnavailableError
        An evaluator could not judge (a service's outage, throttling, a bad answer, or
        any other failure): ``field`` is ``guardrail.<stage>.<evaluator>``.
    """
    for evaluator in evaluators:
        try:
            scored = evaluator.evaluate(item)
        except Exception as err:
            name = getattr(evaluator, "name", "evaluator")
            cause = err.code if isinstance(err, FlywheelError) else type(err).__name__
            raise GuardrailUnavailableError(
                f"the {stage} guardrail could not judge the call: {name} failed ({cause})",
                field=f"guardrail.{stage}.{name}",
                details={"cause": cause},
            ) from err
        if not scored.passed:
            return GuardrailOutcome(
                stage=stage, evaluator=scored.evaluator, score=round(scored.score, 4)
            )
    return None


def context_passages(value: object) -> tuple[str, ...]:
    """A context variable's value as passages: a list's items, or a text's paragraphs.

    Examples
    --------
    >>> context_passages("One.\\n\\nTwo."), context_passages(["a", " "]), context_passages(None)
    (('One.', 'Two.'), ('a',), ())
    """
    if isinstance(value, list | tuple):
        return tuple(t for t in (Variable.text(v).strip() for v in value) if t)
    if not isinstance(value, str):
        return ()
    return tuple(p.strip() for p in _PARAGRAPHS.split(value) if p.strip())


def output_item(
    answer: str,
    variables: Mapping[str, object],
    *,
    context_variable: str | None,
) -> EvaluationInput:
    """The answer to judge, with the caller's input as the question and the context
    variable's passages (none when the call did not give it)."""
    question = input_item(variables, skip=context_variable).answer
    context = context_passages(variables.get(context_variable)) if context_variable else ()
    return EvaluationInput(answer=answer, question=question or None, context=context)
