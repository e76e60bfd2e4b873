"""Small evaluators for tests: they implement the evaluator port with rules simple enough
to know each score in advance (the embedded evaluators are tested on their own).

- ``groundedness``: the share of the answer's words (four letters or more) found in the
  context; not applicable without a context;
- ``toxicity``: 1 when the answer holds a word of :data:`RUDE`, else 0 (lower is better);
- ``format``: 1 when the answer parses as JSON, for versions with an output schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from flywheel.errors import ProviderError, ProviderThrottledError
from flywheel.llm.evaluation import (
    Direction,
    EvaluationInput,
    EvaluationScore,
    Evaluator,
    Evidence,
)

WORDS = re.compile(r"[a-z0-9]{4,}")
RUDE = frozenset({"idiot", "stupid", "useless"})


@dataclass
class WordOverlapGroundedness:
    """``groundedness``: the share of the answer's long words that the context holds."""

    threshold: float = 0.5
    name: str = "groundedness"

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        if not item.context:
            return EvaluationScore(
                evaluator=self.name,
                score=0.0,
                threshold=self.threshold,
                direction=Direction.HIGHER_IS_BETTER,
                applicable=False,
            )
        known = set(WORDS.findall(" ".join(item.context).lower()))
        said = WORDS.findall(item.answer.lower())
        unsupported = tuple(w for w in said if w not in known)
        score = 1.0 - len(unsupported) / len(said) if said else 0.0
        return EvaluationScore(
            evaluator=self.name,
            score=round(score, 6),
            threshold=self.threshold,
            direction=Direction.HIGHER_IS_BETTER,
            evidence=(Evidence(words=unsupported[:5], note="not in the context"),)
            if unsupported
            else (),
        )


@dataclass
class RudeWords:
    """``toxicity``: 1 when a rude word is there."""

    threshold: float = 0.5
    name: str = "toxicity"

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        found = tuple(w for w in re.findall(r"[a-z]+", item.answer.lower()) if w in RUDE)
        return EvaluationScore(
            evaluator=self.name,
            score=1.0 if found else 0.0,
            threshold=self.threshold,
            direction=Direction.LOWER_IS_BETTER,
            evidence=(Evidence(words=found, note="rude"),) if found else (),
        )


@dataclass
class ParsesAsJson:
    """``format``: the answer parses as JSON (for versions with an output schema)."""

    threshold: float = 1.0
    name: str = "format"

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        if item.output_schema is None:
            score, applicable = 1.0, False
        else:
            try:
                json.loads(item.answer)
                score, applicable = 1.0, True
            except ValueError:
                score, applicable = 0.0, True
        return EvaluationScore(
            evaluator=self.name,
            score=score,
            threshold=self.threshold,
            direction=Direction.HIGHER_IS_BETTER,
            applicable=applicable,
        )


@dataclass
class Unavailable:
    """An evaluator whose service is throttled (or fails otherwise) on every call."""

    name: str = "groundedness"
    error: ProviderError = field(
        default_factory=lambda: ProviderThrottledError("guardrail service throttled")
    )
    calls: int = 0

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        self.calls += 1
        raise self.error


def fake_evaluators(thresholds: Mapping[str, float] | None = None) -> dict[str, Evaluator]:
    """What ``embedded_evaluators`` returns, with the rules above."""
    given = dict(thresholds or {})
    found: list[Evaluator] = [
        WordOverlapGroundedness(threshold=given.get("groundedness", 0.5)),
        RudeWords(threshold=given.get("toxicity", 0.5)),
        ParsesAsJson(threshold=given.get("format", 1.0)),
    ]
    return {e.name: e for e in found}
