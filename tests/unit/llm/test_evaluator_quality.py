"""The embedded evaluators on the project's labelled sets (tests/data): precision and
recall stay above floors set just below the values measured when they were written, so a
regression fails here. The committed sets are exactly what their generator builds."""

from __future__ import annotations

import pytest

from tests.labelled_sets import (
    GROUNDEDNESS,
    TOXICITY,
    Quality,
    groundedness_rows,
    quality,
    read_rows,
    toxicity_rows,
)

# Measured (default thresholds): toxicity P 0.950 R 0.927; groundedness (finding
# unsupported sentences) P 0.910 R 0.931. Floors sit just below.
FLOORS = {"toxicity": (0.93, 0.90), "groundedness": (0.89, 0.91)}
# Per kind, the share judged right (measured in brackets); the misses are the known
# failure modes: threats without insulting words, reassurance that quotes an insult,
# paraphrases that change most words, a change of scope in the passage's own words, an
# unknown name at the start of a sentence.
KIND_FLOORS = {
    "toxicity": {
        "insult": 0.97,  # (1.0)
        "profanity": 0.97,  # (1.0)
        "threat": 0.35,  # (0.4)
        "neutral": 0.97,  # (1.0)
        "technical_violence": 0.95,  # (0.981)
        "quoted_complaint": 0.94,  # (1.0)
        "negated_insult": 0.45,  # (0.5)
    },
    "groundedness": {
        "verbatim": 0.97,  # (1.0)
        "paraphrase": 0.9,  # (0.932)
        "reworded": 0.15,  # (0.182)
        "scope_change": 0.4,  # (0.455)
        "changed_number": 0.97,  # (1.0)
        "negated": 0.96,  # (1.0)
        "antonym": 0.85,  # (0.889)
        "fabricated": 0.9,  # (0.941)
        "entity_swap": 0.75,  # (0.8)
    },
}


@pytest.fixture(scope="module")
def measured() -> dict[str, Quality]:
    return {q.evaluator: q for q in quality()}


def test_the_committed_sets_are_what_the_generator_builds() -> None:
    assert read_rows(TOXICITY) == toxicity_rows()
    assert read_rows(GROUNDEDNESS) == groundedness_rows()


def test_each_set_has_at_least_200_examples_of_both_labels() -> None:
    for rows in (read_rows(TOXICITY), read_rows(GROUNDEDNESS)):
        labels = [row["label"] for row in rows]
        assert len(rows) >= 200
        assert min(labels.count(label) for label in set(labels)) >= 80
        assert len({row["id"] for row in rows}) == len(rows)


@pytest.mark.parametrize("evaluator", ["toxicity", "groundedness"])
def test_precision_and_recall_stay_above_their_floors(
    measured: dict[str, Quality], evaluator: str
) -> None:
    found = measured[evaluator]
    precision, recall = FLOORS[evaluator]
    assert found.precision >= precision, found
    assert found.recall >= recall, found


@pytest.mark.parametrize("evaluator", ["toxicity", "groundedness"])
def test_each_kind_of_example_stays_above_its_floor(
    measured: dict[str, Quality], evaluator: str
) -> None:
    found = measured[evaluator]
    assert set(found.by_kind) == set(KIND_FLOORS[evaluator])
    below = {
        kind: round(found.accuracy(kind), 3)
        for kind, floor in KIND_FLOORS[evaluator].items()
        if found.accuracy(kind) < floor
    }
    assert not below, below
