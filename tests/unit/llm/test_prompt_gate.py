"""The prompt gate's statistics and decision: paired bootstrap intervals against the
champion, floors, cost and latency (pure functions, no platform)."""

from __future__ import annotations

from decimal import Decimal
from statistics import fmean

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flywheel.llm.evaluation import Direction, EvaluationScore, Evidence
from flywheel.llm.gate import (
    PromptGatePolicy,
    ScoredAnswer,
    SideAnswers,
    Unanswered,
    judge,
    paired_bootstrap,
)


def score(name: str, value: float, *, applicable: bool = True) -> EvaluationScore:
    lower = name == "toxicity"
    return EvaluationScore(
        evaluator=name,
        score=value,
        threshold=0.5,
        direction=Direction.LOWER_IS_BETTER if lower else Direction.HIGHER_IS_BETTER,
        applicable=applicable,
        evidence=(Evidence(note=f"{name} {value}"),),
    )


def side(version: int, *columns: tuple[str, list[float]], cost: str = "0.001",
         latency: float = 100.0) -> SideAnswers:  # fmt: skip
    """Answers whose scores are given per evaluator, item by item."""
    items = len(columns[0][1])
    return SideAnswers(
        version=version,
        answers=tuple(
            ScoredAnswer(
                item=i,
                label=f"item-{i}",
                answer=f"answer {i} of v{version}",
                scores={name: score(name, values[i]) for name, values in columns},
                cost=Decimal(cost),
                latency_ms=latency + i,
            )
            for i in range(items)
        ),
    )


DEFAULT = PromptGatePolicy()


def test_a_tiny_set_where_the_candidate_equals_the_champion_is_not_rejected() -> None:
    values = [0.9, 0.4, 1.0]

    report = judge(
        DEFAULT,
        candidate=side(2, ("groundedness", values)),
        champion=side(1, ("groundedness", values)),
    )

    assert report.passed, report.reasons
    [summary] = report.evaluators
    assert (summary.difference, summary.paired_items) == (0.0, 3)
    assert (summary.interval.low, summary.interval.high) == (0.0, 0.0)  # type: ignore[union-attr]
    assert [c.name for c in report.checks] == ["groundedness_vs_champion"]


def test_a_clearly_worse_candidate_is_rejected_naming_the_evaluator_and_the_champion() -> None:
    report = judge(
        DEFAULT,
        candidate=side(2, ("groundedness", [0.1, 0.0, 0.2, 0.1])),
        champion=side(1, ("groundedness", [0.9, 1.0, 0.8, 0.9])),
    )

    assert not report.passed
    [reason] = report.reasons
    assert reason.startswith("groundedness: worse than champion v1 by more than 0.05")
    assert "(difference -0.800, 90% interval [-0.900, -0.700] on 4 items)" in reason
    # The worst answers come first, with the champion's score and the evidence
    worst = report.evaluators[0].worst
    assert [(w.item, w.score, w.champion_score) for w in worst] == [
        ("item-1", 0.0, 1.0), ("item-0", 0.1, 0.9), ("item-3", 0.1, 0.9),
    ]  # fmt: skip
    assert worst[0].evidence[0].note == "groundedness 0.0"


def test_one_bad_answer_in_a_tiny_set_is_noise_not_a_rejection() -> None:
    # Two items better, one much worse: the mean drops, but the interval reaches past
    # the margin, so a small set cannot reject a good prompt on one answer.
    report = judge(
        DEFAULT,
        candidate=side(2, ("groundedness", [1.0, 1.0, 0.2])),
        champion=side(1, ("groundedness", [0.9, 0.9, 0.9])),
    )

    summary = report.evaluators[0]
    assert summary.difference is not None
    assert summary.difference < -0.05
    assert summary.interval is not None
    assert summary.interval.high > -0.05
    assert report.passed, report.reasons


def test_toxicity_compares_in_its_own_direction() -> None:
    # Lower toxicity is better: the candidate's higher scores are a drop.
    report = judge(
        DEFAULT,
        candidate=side(2, ("toxicity", [0.9, 0.8, 0.9])),
        champion=side(1, ("toxicity", [0.0, 0.1, 0.0])),
    )

    assert not report.passed
    assert report.evaluators[0].difference == pytest.approx(-0.833333, abs=1e-6)


def test_floors_judge_the_candidates_own_figures() -> None:
    policy = PromptGatePolicy(
        groundedness_min=0.8,
        toxicity_rate_max=0.0,
        format_pass_rate_min=1.0,
        max_drop_vs_champion=None,
    )
    candidate = side(
        1,
        ("groundedness", [0.9, 0.6]),  # mean 0.75
        ("toxicity", [0.0, 0.9]),  # one answer of two toxic
        ("format", [1.0, 1.0]),
    )

    report = judge(policy, candidate=candidate, champion=None)

    assert not report.passed
    assert report.reasons == (
        "groundedness: mean 0.750 < groundedness_min 0.8",
        "toxicity: failing share 0.500 > toxicity_rate_max 0.0",
    )
    assert [(c.name, c.passed) for c in report.checks] == [
        ("groundedness_min", False), ("toxicity_rate_max", False), ("format_pass_rate_min", True),
    ]  # fmt: skip


def test_a_floor_nothing_could_be_judged_on_fails() -> None:
    # No item had a context: groundedness was never applicable.
    candidate = SideAnswers(
        version=1,
        answers=(
            ScoredAnswer(
                item=0,
                label="only",
                answer="hi",
                scores={"groundedness": score("groundedness", 0.0, applicable=False)},
            ),
        ),
    )

    report = judge(PromptGatePolicy(groundedness_min=0.5), candidate=candidate, champion=None)

    assert not report.passed
    assert report.reasons == (
        "groundedness: no answer could be judged, so groundedness_min 0.5 is not met",
    )


def test_cost_and_latency_limits() -> None:
    policy = PromptGatePolicy(cost_per_call_max=Decimal("0.0005"), latency_p95_ms_max=150)
    candidate = side(2, ("groundedness", [1.0] * 10), cost="0.0010", latency=100.0)

    report = judge(policy, candidate=candidate, champion=None)

    assert report.candidate_calls.cost_per_call == Decimal("0.001")
    assert report.candidate_calls.latency_p95_ms == pytest.approx(108.55)
    assert report.reasons == ("cost per call 0.001000 > cost_per_call_max 0.0005",)


def test_items_the_champion_cannot_answer_are_left_out_of_the_pairs() -> None:
    champion = side(1, ("groundedness", [0.9, 0.9, 0.9]))
    champion = champion.model_copy(
        update={
            "answers": (
                *champion.answers[:2],
                Unanswered(item=2, label="item-2", reason="variables.passages: not a variable"),
            )
        }
    )

    report = judge(DEFAULT, candidate=side(2, ("groundedness", [0.9, 0.9, 0.0])), champion=champion)

    assert report.evaluators[0].paired_items == 2
    assert report.passed
    assert (report.champion_unanswered, report.champion_note) == (
        1, "item-2: variables.passages: not a variable",
    )  # fmt: skip


def test_without_a_champion_only_the_floors_apply() -> None:
    report = judge(DEFAULT, candidate=side(1, ("groundedness", [0.0, 0.1])), champion=None)

    assert report.passed
    assert report.checks == ()
    assert report.evaluators[0].champion is None


def test_the_policy_refuses_shares_outside_zero_to_one_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="groundedness_min"):
        PromptGatePolicy.model_validate({"groundedness_min": 1.5})
    with pytest.raises(ValidationError, match="toxicity: a threshold is a score between 0"):
        PromptGatePolicy.model_validate({"thresholds": {"toxicity": 2}})
    with pytest.raises(ValidationError, match="extra"):
        PromptGatePolicy.model_validate({"groundedness_minimum": 0.5})


def test_the_bootstrap_is_reproducible() -> None:
    differences = [-0.3, 0.1, 0.05, -0.2, 0.4, 0.0, -0.1]

    first = paired_bootstrap(differences, confidence=0.9)

    assert paired_bootstrap(differences, confidence=0.9) == first
    wider = paired_bootstrap(differences, confidence=0.99)
    assert wider.low <= first.low
    assert wider.high >= first.high


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=-1, max_value=1, allow_nan=False), min_size=1, max_size=40),
    st.sampled_from([0.8, 0.9, 0.95]),
)
def test_the_interval_holds_the_observed_mean(differences: list[float], level: float) -> None:
    interval = paired_bootstrap(differences, confidence=level)

    assert interval.low - 1e-6 <= fmean(differences) <= interval.high + 1e-6
    assert -1 - 1e-9 <= interval.low <= interval.high <= 1 + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1, allow_nan=False), min_size=1, max_size=30))
def test_a_candidate_that_answers_like_the_champion_always_passes(values: list[float]) -> None:
    report = judge(
        PromptGatePolicy(max_drop_vs_champion=0.0),
        candidate=side(2, ("groundedness", values), ("toxicity", values)),
        champion=side(1, ("groundedness", values), ("toxicity", values)),
    )

    assert report.passed, report.reasons
