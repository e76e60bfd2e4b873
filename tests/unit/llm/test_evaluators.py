"""The embedded evaluators: toxicity equal to the classifier it was exported from,
groundedness's checks, relevance, format, and the factory's thresholds."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
from profanity_check import predict_prob

from flywheel.errors import ConfigError
from flywheel.llm.evaluation import Direction, EvaluationInput, Verdict
from flywheel.llm.evaluators import DEFAULT_THRESHOLDS, embedded_evaluators
from flywheel.llm.evaluators.build_toxicity import DEFAULT_OUT, build
from flywheel.llm.evaluators.groundedness import GroundednessEvaluator, claim_sentences
from flywheel.llm.evaluators.output_format import FormatEvaluator
from flywheel.llm.evaluators.relevance import RelevanceEvaluator
from flywheel.llm.evaluators.toxicity import ToxicityEvaluator, load_model
from tests.labelled_sets import groundedness_rows, toxicity_rows

CONTEXT = (
    "Refunds are issued within 14 days of a cancellation request.",
    "The Pro plan costs $49 per month and includes 5 seats. Phone support is available "
    "Monday to Friday from 9 am to 5 pm.",
    "Orders placed before 2 pm ship the same business day.",
)


def _texts() -> list[str]:
    """A few hundred texts: the labelled sets, edge cases, and shuffled word salads."""
    rng = random.Random(7)
    texts = [row["text"] for row in toxicity_rows()]
    texts += [row["sentence"] for row in groundedness_rows()][:80]
    texts += ["", "   ", "!!!", "12345 678", "a I to the", "Ünïcode ÉCOLE naïve idiot",
              "IDIOT idiot Idiot", "stupid " * 200, "don't won't can't shouldn't",
              "e-mail re-run co-operate", "日本語のテキスト", "fuck\nthis\tshit"]  # fmt: skip
    vocabulary = " ".join(texts).split()
    for _ in range(120):
        texts.append(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 40))))
    return texts


def _score(evaluator: str, **item: object) -> tuple[float, str]:
    scored = embedded_evaluators()[evaluator].evaluate(EvaluationInput(**item))  # type: ignore[arg-type]
    return scored.score, scored.verdict.value


# -- toxicity -----------------------------------------------------------------------------------
def test_toxicity_probabilities_equal_the_packages_predict_proba() -> None:
    texts = _texts()
    assert len(texts) >= 300
    model = load_model()
    ours = np.array([model.probability(t) for t in texts])
    reference = predict_prob(texts)
    assert np.max(np.abs(ours - reference)) < 1e-9
    assert ours.min() < 0.05  # both ends are exercised
    assert ours.max() > 0.99


def test_the_shipped_data_file_is_what_the_build_step_writes() -> None:
    shipped = json.loads(gzip.decompress(DEFAULT_OUT.read_bytes()))
    assert shipped == build()
    assert len(shipped["terms"]) == 15_442
    assert len(shipped["folds"]) == 5


def test_toxic_answers_fail_with_the_words_that_made_them_toxic() -> None:
    scored = ToxicityEvaluator().evaluate(EvaluationInput(answer="You are a useless moron."))
    assert scored.verdict is Verdict.FAIL
    assert scored.direction is Direction.LOWER_IS_BETTER
    assert scored.score > 0.9
    assert set(scored.evidence[0].words) >= {"moron", "useless"}
    assert scored.evidence[0].note == "answer"


def test_computing_violence_passes() -> None:
    for answer in ("Kill the process and restart the worker.", "This bug is killing me."):
        assert _score("toxicity", answer=answer)[1] == "pass", answer


def test_input_toxicity_counts_only_when_asked() -> None:
    item = EvaluationInput(answer="Here is how to reset it.", question="Answer me, you idiot.")
    assert ToxicityEvaluator().evaluate(item).passed
    both = ToxicityEvaluator(include_input=True).evaluate(item)
    assert not both.passed
    assert [e.note for e in both.evidence] == ["answer", "input"]
    assert both.evidence[1].words[0] == "idiot"


# -- groundedness -------------------------------------------------------------------------------
def _grounded(answer: str, **kwargs: object) -> tuple[float, list[str | None]]:
    scored = GroundednessEvaluator().evaluate(EvaluationInput(answer=answer, context=CONTEXT))
    return scored.score, [e.note for e in scored.evidence]


def test_supported_sentences_and_paraphrases_are_grounded() -> None:
    answer = (
        "Hi Ana, thanks for writing! Refunds are issued within 14 days of your cancellation "
        "request. For $49 a month, the Pro plan gives you five seats. Anything else?"
    )
    assert _grounded(answer) == (1.0, [])


def test_a_changed_number_sinks_the_sentence_whatever_the_overlap() -> None:
    score, notes = _grounded("Refunds are issued within 30 days of a cancellation request.")
    assert (score, notes) == (0.0, ["number 30 is not in the passage"])
    assert _grounded("Orders placed before 3 pm ship the same business day.")[0] == 0.0


def test_negation_on_one_side_only_sinks_the_sentence() -> None:
    assert _grounded("Refunds are never issued after a cancellation request.") == (
        0.0,
        ["negated on one side only"],
    )
    assert _grounded("The Pro plan doesn't include seats.")[0] == 0.0


def test_an_opposite_word_or_an_unknown_name_sinks_the_sentence() -> None:
    assert _grounded("Orders placed after 2 pm ship the same business day.") == (
        0.0,
        ["says 'after' where the passage says 'before'"],
    )
    assert _grounded("Phone support is available on weekends from 9 am to 5 pm.")[0] == 0.0
    assert _grounded("The Team plan costs $49 per month and includes 5 seats.") == (
        0.0,
        ["'Team' is not in the context"],
    )


def test_a_general_claim_the_passage_does_not_make_sinks_the_sentence() -> None:
    assert _grounded("All orders ship the same business day.") == (
        0.0,
        ["says 'all' where the passage makes no such general claim"],
    )
    # "each" / "every" that say how often are no general claim
    assert _grounded("The Pro plan costs $49 each month and includes 5 seats.")[0] == 1.0


def test_unsupported_sentences_are_evidence_with_the_closest_passage() -> None:
    scored = GroundednessEvaluator().evaluate(
        EvaluationInput(
            answer="Refunds are issued within 14 days. The Pro plan costs $59 per month. "
            "We also ship to the Moon for free.",
            context=CONTEXT,
        )
    )
    assert scored.score == pytest.approx(1 / 3)
    assert scored.verdict is Verdict.FAIL
    first, second = scored.evidence
    assert first.sentence == "The Pro plan costs $59 per month."
    assert "$49 per month" in (first.passage or "")
    assert first.score == 0.0
    assert second.sentence == "We also ship to the Moon for free."
    assert second.note == "'Moon' is not in the context"


def test_groundedness_needs_context_and_a_claim() -> None:
    without = GroundednessEvaluator().evaluate(EvaluationInput(answer="Refunds take 14 days."))
    assert (without.applicable, without.verdict) == (False, Verdict.PASS)
    no_claim = GroundednessEvaluator().evaluate(
        EvaluationInput(answer="Thanks! Could you send the invoice number?", context=CONTEXT)
    )
    assert (no_claim.score, no_claim.applicable) == (1.0, True)


def test_claim_sentences_skip_questions_greetings_and_short_hedges() -> None:
    answer = (
        "Hello! I hope this helps. Maybe. Is the export still failing? "
        "The export fails above 10k rows.\n- Restart the worker after the upgrade."
    )
    assert claim_sentences(answer) == [
        "The export fails above 10k rows.",
        "Restart the worker after the upgrade.",
    ]


# -- relevance and format -----------------------------------------------------------------------
def test_relevance_scores_overlap_with_the_question_and_needs_one() -> None:
    judge = RelevanceEvaluator()
    on_topic = judge.evaluate(
        EvaluationInput(
            question="Why does my CSV export time out?",
            answer="CSV exports over 10k rows time out; use the API.",
        )
    )
    off_topic = judge.evaluate(
        EvaluationInput(
            question="Why does my CSV export time out?",
            answer="Our offices are closed on public holidays.",
        )
    )
    assert on_topic.passed
    assert not off_topic.passed
    assert on_topic.score > 0.8
    assert off_topic.score < 0.1
    assert set(on_topic.evidence[0].words) >= {"csv", "exports"}
    assert not judge.evaluate(EvaluationInput(answer="Hi")).applicable


def test_relevance_reads_a_json_answer_by_its_string_values() -> None:
    scored = RelevanceEvaluator().evaluate(
        EvaluationInput(
            question="Summarize: the CSV export times out for large accounts.",
            answer='{"summary": "CSV export times out for large accounts", "urgency": "high"}',
        )
    )
    assert scored.score > 0.8
    assert "summary" not in scored.evidence[0].words


def test_format_checks_the_output_schema_like_the_gateway() -> None:
    schema = {"type": "object", "required": ["summary"],
              "properties": {"summary": {"type": "string"}}}  # fmt: skip
    judge = FormatEvaluator()
    assert judge.evaluate(EvaluationInput(answer='{"summary": "ok"}', output_schema=schema)).passed
    bad = judge.evaluate(EvaluationInput(answer="Sure! {", output_schema=schema))
    assert (bad.score, bad.verdict) == (0.0, Verdict.FAIL)
    assert bad.evidence[0].note == "output: is not JSON (line 1, column 1)"
    assert not judge.evaluate(EvaluationInput(answer="text")).applicable


# -- the factory --------------------------------------------------------------------------------
def test_the_factory_builds_all_four_with_overridden_thresholds() -> None:
    evaluators = embedded_evaluators({"toxicity": 0.2, "groundedness": 1})
    assert {name: e.name for name, e in evaluators.items()} == {
        "toxicity": "toxicity",
        "groundedness": "groundedness",
        "relevance": "relevance",
        "format": "format",
    }
    item = EvaluationInput(answer="This update is crap.", context=CONTEXT)
    assert evaluators["toxicity"].evaluate(item).threshold == 0.2
    assert evaluators["relevance"].evaluate(item).threshold == DEFAULT_THRESHOLDS["relevance"]


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"tone": 0.5}, "thresholds.tone: not an embedded evaluator"),
        ({"toxicity": 1.5}, "thresholds.toxicity: a number from 0 to 1, not 1.5"),
        ({"format": float("nan")}, "thresholds.format: a number from 0 to 1"),
        ({"relevance": True}, "thresholds.relevance: a number from 0 to 1, not True"),
    ],
)
def test_the_factory_refuses_bad_thresholds_naming_them(
    thresholds: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        embedded_evaluators(thresholds)
    assert caught.value.field == message.split(":", maxsplit=1)[0]
