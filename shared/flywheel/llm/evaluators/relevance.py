"""Relevance: how much the answer and the question share, as a simple documented scorer.

Both sides are read as content words (stop words out, stemmed, a few synonyms merged;
a JSON answer by its string values), each word weighted by how rare it is in English
(the built-in background of frequent words). The score is the larger of two shares:
of the question's words that the answer uses (a short question answered directly), and
of the answer's words that the question uses (a long input summarised or answered in its
own terms). An answer about something else shares little either way. It is not
applicable without a question.

Examples
--------
>>> from flywheel.llm.evaluation import EvaluationInput
>>> judge = RelevanceEvaluator()
>>> judge.evaluate(EvaluationInput(question="How do I reset my password?",
...     answer="Open Settings, then Security, and choose Reset password.")).score
1.0
>>> round(judge.evaluate(EvaluationInput(question="How do I reset my password?",
...     answer="Our offices are closed on public holidays.")).score, 2)
0.0
"""

from __future__ import annotations

from typing import Any

from flywheel.llm.evaluation import Direction, EvaluationInput, EvaluationScore, Evidence
from flywheel.llm.evaluators.text import (
    NEGATIONS,
    STOP_WORDS,
    background_idf,
    stem,
    words,
)
from flywheel.llm.output import read_output

__all__ = ["DEFAULT_THRESHOLD", "RelevanceEvaluator", "answer_text"]

#: Relevant at or above this score unless the factory is told otherwise.
DEFAULT_THRESHOLD = 0.3
#: Words listed as evidence at most.
_EVIDENCE_WORDS = 8


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def answer_text(answer: str) -> str:
    """The answer's text; for a JSON object or array, its string values joined.

    Examples
    --------
    >>> answer_text('{"summary": "Export fails", "tags": ["csv", "timeout"], "n": 3}')
    'Export fails\\ncsv\\ntimeout'
    >>> answer_text("Plain text.")
    'Plain text.'
    """
    stripped = answer.strip()
    if stripped and stripped[0] in "{[`":
        value, problems = read_output(stripped, {})
        if not problems and isinstance(value, dict | list):
            return "\n".join(_strings(value))
    return answer


def _terms(text: str) -> dict[str, str]:
    """Content stems of ``text`` → the first word that gave each."""
    found: dict[str, str] = {}
    for word in words(text):
        if word not in STOP_WORDS and word not in NEGATIONS:
            found.setdefault(stem(word), word)
    return found


def _weight(term: str) -> float:
    return background_idf(term, 0, 0)


class RelevanceEvaluator:
    """:class:`~flywheel.llm.evaluation.Evaluator` ``relevance``: the weighted overlap
    of answer and question (higher is better); not applicable without a question.

    Parameters
    ----------
    threshold
        Relevant at or above this score.
    """

    name = "relevance"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        question = _terms(item.question or "")
        if not question:
            note = "no question" if not (item.question or "").strip() else "no content words"
            return self._score(0.0, (Evidence(note=f"{note} to compare the answer with"),), False)
        answer = _terms(answer_text(item.answer))
        if not answer:
            return self._score(0.0, (Evidence(note="the answer has no content words"),), True)
        shared = question.keys() & answer.keys()
        asked = sum(_weight(t) for t in shared) / sum(_weight(t) for t in question)
        used = sum(_weight(t) for t in shared) / sum(_weight(t) for t in answer)
        by_weight = sorted(shared, key=lambda t: (-_weight(t), t))
        missing = sorted(question.keys() - shared, key=lambda t: (-_weight(t), t))
        evidence = (
            Evidence(
                words=tuple(answer[t] for t in by_weight[:_EVIDENCE_WORDS]),
                note=f"{asked:.0%} of the question's words are in the answer, "
                f"{used:.0%} of the answer's are in the question",
            ),
            Evidence(
                words=tuple(question[t] for t in missing[:_EVIDENCE_WORDS]),
                note="question words the answer does not use",
            ),
        )
        return self._score(min(1.0, max(asked, used)), evidence, True)

    def _score(
        self, score: float, evidence: tuple[Evidence, ...], applicable: bool
    ) -> EvaluationScore:
        return EvaluationScore(
            evaluator=self.name,
            score=score,
            threshold=self.threshold,
            direction=Direction.HIGHER_IS_BETTER,
            evidence=evidence,
            applicable=applicable,
        )
