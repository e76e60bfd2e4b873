"""The evaluation gate of a prompt version: its policy, the statistics and the decision
(ADR 81).

A prompt version's evaluation set is answered by the version (the candidate) and by the
prompt's champion, item by item, and every answer is scored by the evaluators
(:mod:`flywheel.llm.evaluation`). :func:`judge` decides on floors and on the comparison
with the champion (see Notes); :func:`paired_bootstrap` gives the intervals.

Notes
-----
* **Floors**: per evaluator, the candidate's mean score (groundedness, relevance,
  reference, consistency), its toxic share (answers whose toxicity verdict fails) or its format pass
  rate, against the policy's limits; its mean cost per call and p95 latency too. A floor
  the set cannot judge (no item had a context, say) fails.
* **No worse than the champion**: per evaluator, the per-item difference of the two
  answers' scores (positive: the candidate is better) on the items both could be judged
  on, and a paired bootstrap interval of its mean (2,000 resamples, fixed seed). The
  candidate is rejected when the whole interval lies below ``-max_drop_vs_champion``.

Examples
--------
>>> from flywheel.llm.evaluation import Direction, EvaluationScore
>>> def answers(scores):
...     return tuple(ScoredAnswer(item=i, label=f"line {i + 1}", answer="...",
...         scores={"groundedness": EvaluationScore(evaluator="groundedness", score=s,
...             threshold=0.5, direction=Direction.HIGHER_IS_BETTER)})
...         for i, s in enumerate(scores))
>>> policy = PromptGatePolicy()
>>> same = judge(policy, candidate=SideAnswers(version=2, answers=answers([0.9, 0.8, 1.0])),
...              champion=SideAnswers(version=1, answers=answers([0.9, 0.8, 1.0])))
>>> same.passed, same.evaluators[0].interval
(True, Interval(low=0.0, high=0.0, confidence=0.9))
>>> worse = judge(policy, candidate=SideAnswers(version=2, answers=answers([0.1, 0.2, 0.0])),
...               champion=SideAnswers(version=1, answers=answers([0.9, 0.8, 1.0])))
>>> worse.passed, worse.reasons[0][:52]
(False, 'groundedness: worse than champion v1 by more than 0.')
"""

from __future__ import annotations

from decimal import Decimal
from statistics import fmean
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from flywheel.llm.evaluation import Direction, EvaluationScore, Evidence, Verdict
from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "FLOORS",
    "EvaluatorSummary",
    "GateFinding",
    "Interval",
    "PromptGatePolicy",
    "PromptGateReport",
    "ScoredAnswer",
    "SideAnswers",
    "SideSummary",
    "Unanswered",
    "WorstItem",
    "judge",
    "paired_bootstrap",
]

#: Resamples of every bootstrap interval, and the generator's seed (reproducible reports).
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
#: Items of the worst answers kept per evaluator in the report.
WORST_ITEMS = 3
#: Longest answer excerpt and evidence text kept in the report (characters).
EXCERPT_CHARS = 400

Statistic = Literal["mean", "fail_rate", "pass_rate"]
#: Each floor of the policy: the evaluator it reads, the statistic, and whether the
#: candidate's value must be at least (``min``) or at most (``max``) the limit.
FLOORS: dict[str, tuple[str, Statistic, Literal["min", "max"]]] = {
    "groundedness_min": ("groundedness", "mean", "min"),
    "relevance_min": ("relevance", "mean", "min"),
    "reference_min": ("reference", "mean", "min"),
    "consistency_min": ("consistency", "mean", "min"),
    "toxicity_rate_max": ("toxicity", "fail_rate", "max"),
    "format_pass_rate_min": ("format", "pass_rate", "min"),
}
_SHARE = Field(default=None, ge=0, le=1)


class PromptGatePolicy(Frozen):
    """A prompt's gate (the project file's ``llm.prompts.<name>.gate``).

    Every limit is optional; ``max_drop_vs_champion`` (``None``: no comparison) and
    ``confidence`` judge the comparison with the champion. ``thresholds`` are handed to
    the evaluators: the score at which one answer passes (``toxicity: 0.5``).

    Examples
    --------
    >>> policy = PromptGatePolicy.model_validate({"groundedness_min": 0.8,
    ...                                           "thresholds": {"toxicity": 0.4}})
    >>> policy.max_drop_vs_champion, policy.confidence, policy.evaluators()
    (0.05, 0.9, ['groundedness', 'toxicity'])
    """

    #: A version without an evaluation set is rejected (default: its gate is skipped).
    require_set: bool = False
    groundedness_min: float | None = _SHARE
    relevance_min: float | None = _SHARE
    #: Mean score of the items' references (``must_include`` facts found, else the token
    #: F1 with ``expected``).
    reference_min: float | None = _SHARE
    #: Mean self-consistency of the answers given no context (the share of each answer's
    #: sentences that sampled answers agree with); ``None``: the check is not run.
    consistency_min: float | None = _SHARE
    #: Extra answers sampled per answer for the self-consistency check, and at what
    #: temperature (each one a call, charged like the answer's).
    consistency_samples: int = Field(default=3, ge=2, le=10)
    consistency_temperature: float = Field(default=0.8, gt=0, le=1)
    #: Share of answers whose toxicity verdict fails.
    toxicity_rate_max: float | None = _SHARE
    format_pass_rate_min: float | None = _SHARE
    #: Mean cost of a call, in the price table's currency.
    cost_per_call_max: Decimal | None = Field(default=None, gt=0, le=Decimal("1e6"))
    latency_p95_ms_max: float | None = Field(default=None, gt=0, le=900_000)
    #: How much worse than the champion (in score, 0-1) an evaluator's mean may be.
    max_drop_vs_champion: float | None = Field(default=0.05, ge=0, le=1)
    confidence: float = Field(default=0.9, ge=0.5, lt=1)
    thresholds: dict[str, float] = Field(default_factory=dict, max_length=20)

    @field_validator("thresholds")
    @classmethod
    def _shares(cls, thresholds: dict[str, float]) -> dict[str, float]:
        for name, value in thresholds.items():
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: a threshold is a score between 0 and 1")
        return thresholds

    def evaluators(self) -> list[str]:
        """The evaluators this policy's floors and thresholds name (besides ``reference``,
        which the gate computes itself)."""
        named = {FLOORS[key][0] for key in FLOORS if getattr(self, key) is not None}
        named |= set(self.thresholds)
        return sorted(named - {"reference"})


class ScoredAnswer(Frozen):
    """One answer of one side to one item, with its scores by evaluator."""

    item: int = Field(ge=0)
    label: str
    #: The answer's start (:data:`EXCERPT_CHARS`).
    answer: str
    scores: dict[str, EvaluationScore]
    #: What the answer's own call cost.
    cost: Decimal = Decimal(0)
    #: What the evaluators' calls to judge it cost (self-consistency samples, judges).
    evaluation_cost: Decimal = Decimal(0)
    latency_ms: float = Field(default=0.0, ge=0)


class Unanswered(Frozen):
    """An item a side could not be asked (the champion takes other variables)."""

    item: int = Field(ge=0)
    label: str
    reason: str


class SideAnswers(Frozen):
    """What one version answered to the set, item by item."""

    version: int = Field(ge=1)
    answers: tuple[ScoredAnswer | Unanswered, ...]

    def answered(self) -> dict[int, ScoredAnswer]:
        return {a.item: a for a in self.answers if isinstance(a, ScoredAnswer)}


class Interval(Frozen):
    """A bootstrap interval of a mean difference (``confidence`` two-sided)."""

    low: float
    high: float
    confidence: float


class WorstItem(Frozen):
    """One of the candidate's worst answers for an evaluator, with why."""

    item: str
    score: float
    verdict: Verdict
    champion_score: float | None = None
    answer: str
    evidence: tuple[Evidence, ...] = ()


class SideSummary(Frozen):
    """One side's figures for one evaluator (``None``: no item could be judged)."""

    mean: float | None = None
    pass_rate: float | None = None
    fail_rate: float | None = None
    items: int = 0


class EvaluatorSummary(Frozen):
    """One evaluator across the set: both sides, their paired difference, the verdict."""

    evaluator: str
    direction: Direction
    candidate: SideSummary
    champion: SideSummary | None = None
    #: Mean over the paired items of candidate minus champion, oriented so that a
    #: positive difference means the candidate is better.
    difference: float | None = None
    interval: Interval | None = None
    paired_items: int = 0
    passed: bool
    worst: tuple[WorstItem, ...] = ()


class GateFinding(Frozen):
    """One check of the gate and what it found."""

    name: str
    passed: bool
    detail: str


class CallFigures(Frozen):
    """Cost and latency of one side's calls.

    ``cost_per_call`` is what one answer cost (what ``cost_per_call_max`` judges: a
    served call makes no evaluator calls); ``cost`` is what the side's evaluation cost
    in all, the evaluators' own calls (``evaluation_cost``) included."""

    calls: int = 0
    cost_per_call: Decimal | None = None
    latency_p95_ms: float | None = None
    cost: Decimal = Decimal(0)
    evaluation_cost: Decimal = Decimal(0)


class PromptGateReport(Frozen):
    """What the gate decided for a prompt version, and on what."""

    version: int
    champion: int | None = None
    items: int
    passed: bool
    #: One line per failed check.
    reasons: tuple[str, ...] = ()
    checks: tuple[GateFinding, ...] = ()
    evaluators: tuple[EvaluatorSummary, ...] = ()
    candidate_calls: CallFigures = CallFigures()
    champion_calls: CallFigures | None = None
    #: Items the champion could not be asked, and why (the first reason).
    champion_unanswered: int = 0
    champion_note: str | None = None
    policy: PromptGatePolicy
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = BOOTSTRAP_SEED


def paired_bootstrap(
    differences: Sequence[float],
    *,
    confidence: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """A percentile bootstrap interval of the mean of paired ``differences``.

    The items are resampled with replacement (the pairs stay together), ``resamples``
    times with a generator seeded by ``seed``, so the same differences always give the
    same interval. (numpy is imported here only: records that hold a report are read
    where numpy is not loaded, the LLM gateway.)

    Examples
    --------
    >>> paired_bootstrap([0.0, 0.0, 0.0], confidence=0.9)
    Interval(low=0.0, high=0.0, confidence=0.9)
    >>> wide = paired_bootstrap([-0.6, 0.1, 0.2, -0.1], confidence=0.9)
    >>> wide.low < -0.05 < wide.high
    True
    """
    import numpy as np

    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no paired differences")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = 50 * (1 - confidence)
    return Interval(
        low=round(float(np.percentile(means, tail)), 6),
        high=round(float(np.percentile(means, 100 - tail)), 6),
        confidence=confidence,
    )


def _goodness(score: EvaluationScore) -> float:
    """The score oriented so that higher is better."""
    return score.score if score.direction is Direction.HIGHER_IS_BETTER else 1.0 - score.score


def _summary(scores: Sequence[EvaluationScore]) -> SideSummary:
    if not scores:
        return SideSummary()
    passed = sum(1 for s in scores if s.passed)
    return SideSummary(
        mean=round(fmean(s.score for s in scores), 6),
        pass_rate=round(passed / len(scores), 6),
        fail_rate=round(1 - passed / len(scores), 6),
        items=len(scores),
    )


def _excerpt(text: str | None) -> str | None:
    if text is None or len(text) <= EXCERPT_CHARS:
        return text
    return text[: EXCERPT_CHARS - 1] + "…"


def _evidence(evidence: tuple[Evidence, ...]) -> tuple[Evidence, ...]:
    return tuple(
        e.model_copy(
            update={
                "sentence": _excerpt(e.sentence),
                "passage": _excerpt(e.passage),
                "note": _excerpt(e.note),
                "words": e.words[:10],
            }
        )
        for e in evidence[:3]
    )


def _applicable(side: dict[int, ScoredAnswer], evaluator: str) -> dict[int, EvaluationScore]:
    return {
        i: a.scores[evaluator]
        for i, a in side.items()
        if evaluator in a.scores and a.scores[evaluator].applicable
    }


def _worst(
    evaluator: str, candidate: dict[int, ScoredAnswer], champion: dict[int, ScoredAnswer]
) -> tuple[WorstItem, ...]:
    scored = _applicable(candidate, evaluator)
    order = sorted(scored, key=lambda i: (scored[i].passed, _goodness(scored[i]), i))
    rival = _applicable(champion, evaluator)
    return tuple(
        WorstItem(
            item=candidate[i].label,
            score=scored[i].score,
            verdict=scored[i].verdict,
            champion_score=rival[i].score if i in rival else None,
            answer=candidate[i].answer,
            evidence=_evidence(scored[i].evidence),
        )
        for i in order[:WORST_ITEMS]
    )


def _calls(side: SideAnswers) -> CallFigures:
    import numpy as np

    answered = list(side.answered().values())
    if not answered:
        return CallFigures()
    total = sum((a.cost for a in answered), Decimal(0))
    judging = sum((a.evaluation_cost for a in answered), Decimal(0))
    latencies = np.asarray([a.latency_ms for a in answered], dtype=np.float64)
    return CallFigures(
        calls=len(answered),
        cost_per_call=(total / len(answered)).quantize(Decimal("1e-12")).normalize(),
        latency_p95_ms=round(float(np.percentile(latencies, 95)), 3),
        cost=(total + judging).quantize(Decimal("1e-12")).normalize(),
        evaluation_cost=judging.quantize(Decimal("1e-12")).normalize(),
    )


def judge(
    policy: PromptGatePolicy, *, candidate: SideAnswers, champion: SideAnswers | None
) -> PromptGateReport:
    """Decide the gate for ``candidate``'s answers (see the module docstring).

    ``champion`` is ``None`` when the prompt has no champion yet: only the floors apply.
    """
    ours = candidate.answered()
    theirs = champion.answered() if champion is not None else {}
    names = sorted({name for a in ours.values() for name in a.scores})
    checks: list[GateFinding] = []
    summaries: list[EvaluatorSummary] = []
    for name in names:
        summary, found = _evaluator(policy, name, ours, theirs, champion)
        summaries.append(summary)
        checks.extend(found)
    by_name = {s.evaluator: s for s in summaries}
    checks.extend(_floors(policy, by_name))
    mine = _calls(candidate)
    checks.extend(_cost_and_latency(policy, mine))
    unanswered = [a for a in champion.answers if isinstance(a, Unanswered)] if champion else []
    failed = tuple(c.detail for c in checks if not c.passed)
    return PromptGateReport(
        version=candidate.version,
        champion=champion.version if champion is not None else None,
        items=len(candidate.answers),
        passed=not failed,
        reasons=failed,
        checks=tuple(checks),
        evaluators=tuple(summaries),
        candidate_calls=mine,
        champion_calls=_calls(champion) if champion is not None else None,
        champion_unanswered=len(unanswered),
        champion_note=(f"{unanswered[0].label}: {unanswered[0].reason}" if unanswered else None),
        policy=policy,
    )


def _evaluator(
    policy: PromptGatePolicy,
    name: str,
    ours: dict[int, ScoredAnswer],
    theirs: dict[int, ScoredAnswer],
    champion: SideAnswers | None,
) -> tuple[EvaluatorSummary, list[GateFinding]]:
    mine = _applicable(ours, name)
    rival = _applicable(theirs, name)
    direction = next(iter(mine.values())).direction if mine else Direction.HIGHER_IS_BETTER
    paired = sorted(set(mine) & set(rival))
    difference: float | None = None
    interval: Interval | None = None
    found: list[GateFinding] = []
    margin = policy.max_drop_vs_champion
    if champion is not None and paired:
        deltas = [_goodness(mine[i]) - _goodness(rival[i]) for i in paired]
        difference = round(fmean(deltas), 6)
        interval = paired_bootstrap(deltas, confidence=policy.confidence)
        if margin is not None:
            worse = interval.high < -margin
            span = (
                f"difference {difference:+.3f}, {policy.confidence:.0%} interval "
                f"[{interval.low:+.3f}, {interval.high:+.3f}] on {len(paired)} items"
            )
            detail = (
                f"{name}: worse than champion v{champion.version} by more than {margin} ({span})"
                if worse
                else f"{name}: no worse than champion v{champion.version} by more than "
                f"{margin} ({span})"
            )
            found.append(GateFinding(name=f"{name}_vs_champion", passed=not worse, detail=detail))
    summary = EvaluatorSummary(
        evaluator=name,
        direction=direction,
        candidate=_summary(list(mine.values())),
        champion=_summary(list(rival.values())) if champion is not None else None,
        difference=difference,
        interval=interval,
        paired_items=len(paired),
        passed=all(f.passed for f in found),
        worst=_worst(name, ours, theirs),
    )
    return summary, found


def _floors(policy: PromptGatePolicy, by_name: dict[str, EvaluatorSummary]) -> list[GateFinding]:
    found: list[GateFinding] = []
    for key, (evaluator, statistic, side) in FLOORS.items():
        limit = getattr(policy, key)
        if limit is None:
            continue
        summary = by_name.get(evaluator)
        value = getattr(summary.candidate, statistic) if summary is not None else None
        label = {"mean": "mean", "fail_rate": "failing share", "pass_rate": "pass rate"}[statistic]
        if value is None:
            found.append(
                GateFinding(
                    name=key,
                    passed=False,
                    detail=f"{evaluator}: no answer could be judged, so {key} {limit} is not met",
                )
            )
            continue
        ok = value >= limit if side == "min" else value <= limit
        sign = (">=" if ok else "<") if side == "min" else ("<=" if ok else ">")
        found.append(
            GateFinding(
                name=key,
                passed=ok,
                detail=f"{evaluator}: {label} {value:.3f} {sign} {key} {limit}",
            )
        )
    return found


def _cost_and_latency(policy: PromptGatePolicy, calls: CallFigures) -> list[GateFinding]:
    found: list[GateFinding] = []
    if policy.cost_per_call_max is not None and calls.cost_per_call is not None:
        ok = calls.cost_per_call <= policy.cost_per_call_max
        found.append(
            GateFinding(
                name="cost_per_call_max",
                passed=ok,
                detail=f"cost per call {calls.cost_per_call:.6f} {'<=' if ok else '>'} "
                f"cost_per_call_max {policy.cost_per_call_max}",
            )
        )
    if policy.latency_p95_ms_max is not None and calls.latency_p95_ms is not None:
        ok = calls.latency_p95_ms <= policy.latency_p95_ms_max
        found.append(
            GateFinding(
                name="latency_p95_ms_max",
                passed=ok,
                detail=f"latency p95 {calls.latency_p95_ms:.1f} ms {'<=' if ok else '>'} "
                f"latency_p95_ms_max {policy.latency_p95_ms_max}",
            )
        )
    return found
