"""Format: the answer is one JSON value that satisfies the prompt version's output schema,
checked exactly as the gateway checks it (:func:`flywheel.llm.output.read_output`).

Examples
--------
>>> from flywheel.llm.evaluation import EvaluationInput
>>> schema = {"type": "object", "required": ["urgency"],
...           "properties": {"urgency": {"enum": ["low", "high"]}}}
>>> judge = FormatEvaluator()
>>> judge.evaluate(EvaluationInput(answer='{"urgency": "low"}', output_schema=schema)).score
1.0
>>> scored = judge.evaluate(EvaluationInput(answer='{"urgency": "soon"}', output_schema=schema))
>>> scored.score, scored.evidence[0].note
(0.0, 'output.urgency: must be one of "low", "high"')
"""

from __future__ import annotations

from flywheel.llm.evaluation import Direction, EvaluationInput, EvaluationScore, Evidence
from flywheel.llm.output import read_output

__all__ = ["DEFAULT_THRESHOLD", "FormatEvaluator"]

#: An answer passes only when it parses and satisfies the schema.
DEFAULT_THRESHOLD = 1.0


class FormatEvaluator:
    """:class:`~flywheel.llm.evaluation.Evaluator` ``format``: 1.0 when the answer parses
    and satisfies ``output_schema``, else 0.0 with each problem as evidence; not
    applicable without a schema."""

    name = "format"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        evidence: tuple[Evidence, ...]
        if item.output_schema is None:
            score, evidence, applicable = 0.0, (Evidence(note="no output schema"),), False
        else:
            _, problems = read_output(item.answer, item.output_schema)
            score, applicable = (0.0 if problems else 1.0), True
            evidence = tuple(Evidence(note=f"{field}: {reason}") for field, reason in problems)
        return EvaluationScore(
            evaluator=self.name,
            score=score,
            threshold=self.threshold,
            direction=Direction.HIGHER_IS_BETTER,
            evidence=evidence,
            applicable=applicable,
        )
