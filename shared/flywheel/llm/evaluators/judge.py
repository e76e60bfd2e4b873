"""A judge prompt behind the evaluator port: a registered prompt version scores answers.

The judge is a prompt in the registry like any other (versioned, approved, audited;
``examples/judges/groundedness-judge.v1.yaml``). It takes the variable ``answer`` and,
if it wants them, ``question`` and ``context`` (the passages numbered ``[1]``, ``[2]``
...), and answers one JSON object ``{"score": <0 to 1>, "reasons": [<text>, ...]}``.
Each judgement is one call through the provider port, reserved and settled on the
cost budgets like a gateway call (counted for the judge prompt, its version and the
variant ``judge``). An answer that is not that JSON is a provider error: an evaluation
never passes because its judge failed.

Examples
--------
>>> from flywheel.adapters.local_llm import LocalProvider
>>> from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
>>> from flywheel.llm.budgets import BudgetPolicy, Budgets
>>> from flywheel.llm.prompts import load_prompt_file, parse_prompt
>>> spec = load_prompt_file("examples/judges/groundedness-judge.v1.yaml")
>>> spec = parse_prompt({**spec.model_dump(mode="json", exclude_none=True),
...                      "provider": "local", "model_id": "local.stand-in"})
>>> judge = JudgeEvaluator(spec=spec, version=1, provider=LocalProvider(),
...                        budgets=Budgets(BudgetPolicy(), InMemoryBudgetLedger()))
>>> judge.evaluate(EvaluationInput(answer="Refunds take 14 days.",
...                                context=("Refunds take 14 days.",))).evaluator
'groundedness-judge'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel.errors import ConfigError, ProviderError
from flywheel.llm.budgets import BudgetCall, estimate_input_tokens
from flywheel.llm.evaluation import Direction, EvaluationInput, EvaluationScore, Evidence
from flywheel.llm.output import read_output
from flywheel.llm.prompts import render
from flywheel.llm.providers import request_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flywheel.llm.budgets import Budgets
    from flywheel.llm.catalog import PromptCatalog
    from flywheel.llm.prompts import PromptSpec
    from flywheel.llm.providers import CompletionProvider

__all__ = ["JUDGE_SCHEMA", "JUDGE_VARIABLES", "JudgeEvaluator", "format_context"]

#: The variables a judge prompt may take (``answer`` is required).
JUDGE_VARIABLES = ("answer", "question", "context")
#: What a judge answers.
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["score", "reasons"],
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reasons": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
    },
}
#: The usage counters' variant of judge calls.
JUDGE_VARIANT = "judge"


def format_context(passages: Sequence[str]) -> str:
    """The passages as the ``context`` variable: numbered, one blank line apart.

    Examples
    --------
    >>> print(format_context(["Refunds take 14 days.", "Support is open 9 to 5."]))
    [1] Refunds take 14 days.
    <BLANKLINE>
    [2] Support is open 9 to 5.
    """
    return "\n\n".join(f"[{i}] {p.strip()}" for i, p in enumerate(passages, 1) if p.strip())


class JudgeEvaluator:
    """:class:`~flywheel.llm.evaluation.Evaluator` by a judge prompt version.

    Parameters
    ----------
    spec, version
        The judge prompt's verified spec and its registry version.
    provider
        The provider port that answers ``spec.provider`` (retrying, as the gateway's).
    budgets
        Where each call is reserved and settled.
    name
        The evaluator's name (default: the prompt's name).
    threshold, direction
        How the judge's score is read (default: 0.5, higher is better).
    teams
        Team budgets the judge's calls are also charged to.

    Raises
    ------
    ConfigError
        The prompt does not take ``answer``, or takes a required variable other than
        ``answer``, ``question`` and ``context``.
    """

    def __init__(
        self,
        *,
        spec: PromptSpec,
        version: int,
        provider: CompletionProvider,
        budgets: Budgets,
        name: str | None = None,
        threshold: float = 0.5,
        direction: Direction = Direction.HIGHER_IS_BETTER,
        teams: tuple[str, ...] = (),
    ) -> None:
        if "answer" not in spec.variables:
            raise ConfigError(
                f"judge prompt {spec.name!r} does not take the variable answer",
                field="variables.answer",
            )
        for variable, declared in spec.variables.items():
            if variable not in JUDGE_VARIABLES and declared.required:
                raise ConfigError(
                    f"judge prompt {spec.name!r}: variables.{variable} is required, but a "
                    f"judge is given only {', '.join(JUDGE_VARIABLES)}",
                    field=f"variables.{variable}",
                )
        self.spec = spec
        self.version = version
        self.name = name or spec.name
        self.threshold = threshold
        self.direction = direction
        self.teams = teams
        self._provider = provider
        self._budgets = budgets

    @classmethod
    def from_catalog(
        cls,
        catalog: PromptCatalog,
        prompt: str,
        *,
        provider: CompletionProvider,
        budgets: Budgets,
        ref: int | str = "champion",
        **options: Any,
    ) -> JudgeEvaluator:
        """The judge of version ``ref`` (a number, ``champion``, ``challenger``) of the
        registered prompt ``prompt``, its spec verified against the registry."""
        found = catalog.get(prompt, ref)
        return cls(
            spec=found.spec,
            version=found.version.version,
            provider=provider,
            budgets=budgets,
            **options,
        )

    def _variables(self, item: EvaluationInput) -> dict[str, object] | None:
        """The judge's variables for ``item``; ``None`` when it lacks one it requires."""
        declared = self.spec.variables
        given: dict[str, object] = {"answer": item.answer}
        context = format_context(item.context)
        for variable, value in (("question", item.question), ("context", context)):
            if variable not in declared:
                continue
            if value:
                given[variable] = value
            elif declared[variable].required:
                return None
        return given

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        variables = self._variables(item)
        if variables is None:
            return self._score(0.0, (Evidence(note="the judge needs a question or context"),),
                               applicable=False)  # fmt: skip
        spec = self.spec
        rendered = render(spec, variables)
        request = request_for(spec, rendered)
        completion = self._budgets.complete(
            BudgetCall(
                prompt=spec.name,
                teams=self.teams,
                provider=spec.provider,
                model_id=spec.model_id,
                input_tokens=estimate_input_tokens(rendered),
                max_tokens=spec.parameters.max_tokens,
            ),
            self._provider,
            request,
            version=self.version,
            variant=JUDGE_VARIANT,
        ).completion
        value, problems = read_output(completion.text, JUDGE_SCHEMA)
        if problems:
            listed = "; ".join(f"{field}: {reason}" for field, reason in problems)
            raise ProviderError(
                f"judge prompt {spec.name!r} version {self.version} did not answer "
                f'{{"score", "reasons"}} JSON ({listed})',
                field="provider",
                details={"problems": [list(p) for p in problems], "retryable": False},
            )
        reasons = tuple(Evidence(note=str(reason)[:2000]) for reason in value["reasons"])
        return self._score(float(value["score"]), reasons, applicable=True)

    def _score(
        self, score: float, evidence: tuple[Evidence, ...], *, applicable: bool
    ) -> EvaluationScore:
        return EvaluationScore(
            evaluator=self.name,
            score=min(1.0, max(0.0, score)),
            threshold=self.threshold,
            direction=self.direction,
            evidence=evidence,
            applicable=applicable,
        )
