"""A production window's quality figures: scored calls in, rates with counts and a verdict
out (ADR 82).

The monitor (:mod:`flywheel.monitoring.llm_monitor`) scores a sample of a prompt
version's captured calls; :func:`aggregate` turns the scores into the window's figures
(each a value and the number of answers it stands on) and :func:`judge` compares them
with the prompt's :class:`~flywheel.llm.monitor_policy.PromptMonitorPolicy`. What the
monitor decided is recorded with the version (:class:`QualityVerdictDoc`, with its audit
entry); the promotion workflow's canary check reads it.

Examples
--------
>>> from flywheel.llm.evaluation import Direction, EvaluationScore
>>> def call(toxicity):
...     return ScoredCall(request_id="r", variant="canary", answer="...", scores={
...         "toxicity": EvaluationScore(evaluator="toxicity", score=toxicity, threshold=0.5,
...                                     direction=Direction.LOWER_IS_BETTER)})
>>> figures = aggregate([call(0.9), call(0.1), call(0.2), call(0.95)])
>>> figures["toxicity_rate"]
MetricFigure(value=0.5, count=4, failed=2)
>>> from flywheel.llm.monitor_policy import PromptMonitorPolicy
>>> policy = PromptMonitorPolicy(toxicity_rate_max=0.1, min_scored=4)
>>> judge(policy, figures, scored=4)
('degraded', ('toxicity_rate 0.500 > 0.1 (2 of 4 answers)',))
>>> judge(policy, figures, scored=3)[0]
'insufficient'
"""

from __future__ import annotations

from datetime import datetime
from statistics import fmean
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from flywheel.llm.evaluation import Direction, EvaluationScore, Evidence
from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from flywheel.llm.monitor_policy import PromptMonitorPolicy

__all__ = [
    "METRICS",
    "MetricFigure",
    "QualityBudgetDoc",
    "QualityVerdictDoc",
    "ScoredCall",
    "WorstCall",
    "aggregate",
    "judge",
    "worst_calls",
]

#: Metric -> (evaluator, statistic): ``fail_rate`` (share of failed verdicts) or ``mean``.
METRICS: dict[str, tuple[str, Literal["fail_rate", "mean"]]] = {
    "toxicity_rate": ("toxicity", "fail_rate"),
    "groundedness": ("groundedness", "mean"),
    "relevance": ("relevance", "mean"),
    "format_failure_rate": ("format", "fail_rate"),
}
#: Worst calls kept per metric in the report.
WORST_CALLS = 3
Outcome = Literal["healthy", "degraded", "insufficient", "failed"]


class ScoredCall(Frozen):
    """One sampled call, scored: its id, its variant, the answer as the capture policy let
    it be stored, and each evaluator's score."""

    request_id: str
    variant: str
    answer: str
    scores: dict[str, EvaluationScore]


class MetricFigure(Frozen):
    """A window's figure: its value and how many answers it stands on (``failed``: how
    many of them failed, for rates)."""

    value: float = Field(ge=0, le=1)
    count: int = Field(ge=0)
    failed: int | None = Field(default=None, ge=0)


class WorstCall(Frozen):
    """One of the window's worst answers for a metric, with the evaluator's evidence."""

    metric: str
    request_id: str
    variant: str
    score: float
    answer: str
    evidence: tuple[Evidence, ...] = ()


def aggregate(calls: Iterable[ScoredCall]) -> dict[str, MetricFigure]:
    """The window's figures by metric (a metric no answer could be judged on is left out:
    groundedness without any context, say).

    Examples
    --------
    >>> aggregate([])
    {}
    """
    judged: dict[str, list[EvaluationScore]] = {}
    for call in calls:
        for metric, (evaluator, _) in METRICS.items():
            score = call.scores.get(evaluator)
            if score is not None and score.applicable:
                judged.setdefault(metric, []).append(score)
    figures: dict[str, MetricFigure] = {}
    for metric, scores in judged.items():
        statistic = METRICS[metric][1]
        if statistic == "fail_rate":
            failed = sum(not s.passed for s in scores)
            figures[metric] = MetricFigure(
                value=failed / len(scores), count=len(scores), failed=failed
            )
        else:
            figures[metric] = MetricFigure(
                value=min(1.0, max(0.0, fmean(s.score for s in scores))), count=len(scores)
            )
    return figures


def judge(
    policy: PromptMonitorPolicy, figures: Mapping[str, MetricFigure], *, scored: int
) -> tuple[Outcome, tuple[str, ...]]:
    """``healthy``, ``degraded`` (with the breaches, one line each) or ``insufficient``
    (fewer than ``policy.min_scored`` scored calls: no verdict either way)."""
    if scored < policy.min_scored:
        return "insufficient", ()
    breaches: list[str] = []
    for metric, (limit, side) in policy.limits().items():
        figure = figures.get(metric)
        if figure is None:
            continue
        worse = figure.value > limit if side == "max" else figure.value < limit
        if worse:
            sign = ">" if side == "max" else "<"
            counted = (
                f"{figure.failed} of {figure.count} answers"
                if figure.failed is not None
                else f"mean of {figure.count} answers"
            )
            breaches.append(f"{metric} {figure.value:.3f} {sign} {limit:g} ({counted})")
    return ("degraded" if breaches else "healthy"), tuple(breaches)


def worst_calls(calls: Sequence[ScoredCall], *, keep: int = WORST_CALLS) -> list[WorstCall]:
    """Per metric, the ``keep`` answers that scored worst and failed their evaluator."""
    worst: list[WorstCall] = []
    for metric, (evaluator, _) in METRICS.items():
        failing = [
            (call, call.scores[evaluator])
            for call in calls
            if evaluator in call.scores
            and call.scores[evaluator].applicable
            and not call.scores[evaluator].passed
        ]
        failing.sort(
            key=lambda pair: (
                -pair[1].score if pair[1].direction is Direction.LOWER_IS_BETTER else pair[1].score
            )
        )
        worst += [
            WorstCall(
                metric=metric,
                request_id=call.request_id,
                variant=call.variant,
                score=round(score.score, 4),
                answer=call.answer,
                evidence=score.evidence[:3],
            )
            for call, score in failing[:keep]
        ]
    return worst


class QualityVerdictDoc(Frozen):
    """The latest verdict of the production monitor for one prompt version, written with
    its audit entry (``MODEL#<name>`` / ``QUALITY#V<n>``)."""

    version: int = Field(ge=1)
    outcome: Outcome
    reason: str
    breaches: tuple[str, ...] = ()
    metrics: dict[str, float] = Field(default_factory=dict)
    sampled: int = Field(default=0, ge=0)
    scored: int = Field(default=0, ge=0)
    window_start: datetime
    window_end: datetime
    checked_at: datetime
    report_uri: str | None = None
    #: When ``LlmQualityDegraded`` was last published for the version (cooldown).
    alerted_at: datetime | None = None
    event_id: str | None = None


class QualityBudgetDoc(Frozen):
    """What scoring spent for a prompt on one UTC day (``MODEL#<name>`` / ``QUALITY``)."""

    day: str
    scored: int = Field(default=0, ge=0)
    spent_usd: str = "0"
