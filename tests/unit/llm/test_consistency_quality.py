"""The self-consistency check's agreement scoring on the project's labelled set
(:mod:`tests.consistency_set`, built from the groundedness set's facts): precision and
recall of finding inconsistent samples stay above floors set just below the values
measured when it was written, so a regression fails here."""

from __future__ import annotations

import pytest

from tests.consistency_set import SAMPLES, consistency_quality, consistency_rows
from tests.labelled_sets import Quality

# Measured (default threshold 0.8, 3 samples): finding inconsistent answers P 0.870,
# R 0.853 on 233 rows. Floors sit just below.
FLOORS = (0.85, 0.83)
# Per kind, the share judged right (measured in brackets). The misses are the
# groundedness scorer's: answers in other words look inconsistent, a change of scope in
# the same words looks consistent, and a changed number is missed when the sample says
# that number in its other sentence ("expire after 60 minutes" against a sample whose
# next sentence says "60 requests").
KIND_FLOORS = {
    "same": 0.97,  # (1.0)
    "partial": 0.97,  # (1.0)
    "paraphrase": 0.9,  # (0.932)
    "reworded": 0.05,  # (0.091)
    "changed_number": 0.9,  # (0.929)
    "negated": 0.97,  # (1.0)
    "antonym": 0.7,  # (0.778)
    "entity_swap": 0.75,  # (0.8)
    "scope_change": 0.2,  # (0.273)
    "fabricated": 0.85,  # (0.882)
}


@pytest.fixture(scope="module")
def measured() -> Quality:
    return consistency_quality()


def test_the_set_has_both_labels_and_three_samples_a_row() -> None:
    rows = consistency_rows()
    assert len(rows) >= 200
    labels = [r["label"] for r in rows]
    assert min(labels.count("consistent"), labels.count("inconsistent")) >= 100
    assert {len(r["samples"]) for r in rows} == {SAMPLES}


def test_precision_and_recall_stay_above_their_floors(measured: Quality) -> None:
    assert measured.precision >= FLOORS[0]
    assert measured.recall >= FLOORS[1]


@pytest.mark.parametrize(("kind", "floor"), sorted(KIND_FLOORS.items()))
def test_each_kind_stays_above_its_floor(measured: Quality, kind: str, floor: float) -> None:
    assert measured.accuracy(kind) >= floor
