"""Delayed labels: validated against the model, stored once, conflicts refused whole."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from flywheel.errors import (
    ArtifactError,
    InvalidLabelsError,
    InvalidRequestError,
    LabelConflictError,
    ModelNotFoundError,
    PayloadTooLargeError,
)
from flywheel.monitoring.feedback import FeedbackRequest, read_labels
from tests.unit.monitoring.conftest import MODEL, REGRESSOR, START, Monitoring


def stored_rows(world: Monitoring) -> list[dict[str, Any]]:
    return read_labels(world.labels, MODEL, START, START)


def test_a_batch_is_stored_as_one_object_in_the_hour_it_arrived(world: Monitoring) -> None:
    world.champion()

    receipt = world.feedback(
        labels=[
            {"request_id": "r-1", "row": 0, "label": "1"},
            {"request_id": "r-1", "row": 1, "label": 0},  # a number naming class "0"
        ]
    )

    assert (receipt.received, receipt.stored, receipt.duplicates) == (2, 2, 0)
    [key] = world.labels.objects
    assert key.startswith(f"labels/model={MODEL}/date=2026-03-01/hour=12/")
    assert [(r["request_id"], r["row"], r["label"]) for r in stored_rows(world)] == [
        ("r-1", 0, "1"),
        ("r-1", 1, "0"),
    ]


def test_the_same_label_again_is_a_duplicate_and_writes_nothing(world: Monitoring) -> None:
    world.champion()
    world.feedback(request_id="r-1", label="1")

    again = world.feedback(request_id="r-1", label="1")

    assert [r.status for r in again.results] == ["duplicate"]
    assert (again.stored, again.duplicates) == (0, 1)
    assert len(world.labels.objects) == 1


def test_a_different_label_is_a_conflict_and_nothing_of_the_batch_is_stored(
    world: Monitoring,
) -> None:
    world.champion()
    world.feedback(request_id="r-1", label="1")

    with pytest.raises(LabelConflictError) as raised:
        world.feedback(
            labels=[{"request_id": "r-2", "label": "0"}, {"request_id": "r-1", "label": "0"}]
        )

    assert raised.value.field == "labels[1].label"
    assert "already labelled '1'" in raised.value.message
    assert len(world.labels.objects) == 1  # r-2 was not stored either
    assert world.feedback(request_id="r-2", label="0").stored == 1  # and can be sent again


def test_two_labels_for_one_prediction_in_one_batch_conflict(world: Monitoring) -> None:
    world.champion()

    with pytest.raises(LabelConflictError) as raised:
        world.feedback(
            labels=[{"request_id": "r-1", "label": "0"}, {"request_id": "r-1", "label": "1"}]
        )

    assert raised.value.field == "labels[1].label"
    assert world.labels.objects == {}


def test_a_class_the_model_cannot_predict_is_refused_naming_every_bad_label(
    world: Monitoring,
) -> None:
    world.champion()

    with pytest.raises(InvalidLabelsError) as raised:
        world.feedback(
            labels=[
                {"request_id": "r-1", "label": "1"},
                {"request_id": "r-2", "label": "maybe"},
                {"request_id": "r-3", "label": 2},
            ]
        )

    assert [e["field"] for e in raised.value.details["errors"]] == [
        "labels[1].label",
        "labels[2].label",
    ]
    assert "one of the model's classes ('0', '1')" in raised.value.message
    assert world.labels.objects == {}


def test_a_regressor_takes_numbers_only(world: Monitoring) -> None:
    world.champion(**REGRESSOR)

    assert world.feedback(request_id="r-1", label=3).stored == 1
    with pytest.raises(InvalidLabelsError, match="must be a number"):
        world.feedback(request_id="r-2", label="3.5")


def test_too_many_labels_is_413_and_none_is_400(world: Monitoring) -> None:
    world.champion()
    labels = [{"request_id": f"r-{i}", "label": "1"} for i in range(101)]

    with pytest.raises(PayloadTooLargeError) as raised:
        world.feedback(labels=labels)
    assert raised.value.field == "labels"
    with pytest.raises(InvalidRequestError, match="must not be empty"):
        world.feedback(labels=[])
    assert world.labels.objects == {}


def test_an_unknown_model_is_not_found(world: Monitoring) -> None:
    with pytest.raises(ModelNotFoundError):
        world.feedback(request_id="r-1", label="1")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"request_id": "r-1"}, "label"),
        ({"label": "1"}, "request_id"),
        ({"request_id": "r-1", "label": "1", "labels": []}, "labels"),
    ],
)
def test_a_body_is_one_label_or_a_batch(
    world: Monitoring, body: dict[str, Any], field: str
) -> None:
    world.champion()

    with pytest.raises(InvalidRequestError) as raised:
        world.feedback(**body)

    assert raised.value.field == field


@pytest.mark.parametrize(
    ("item", "where"),
    [
        ({"request_id": "", "label": "1"}, ("labels", 0, "request_id")),
        ({"request_id": "a/b", "label": "1"}, ("labels", 0, "request_id")),
        ({"request_id": "r", "label": True}, ("labels", 0, "label")),
        ({"request_id": "r", "label": None}, ("labels", 0, "label")),
        ({"request_id": "r", "label": float("nan")}, ("labels", 0, "label")),
        ({"request_id": "r", "label": 10**400}, ("labels", 0, "label")),
        ({"request_id": "r", "row": -1, "label": "1"}, ("labels", 0, "row")),
        ({"request_id": "r", "label": "1", "extra": 1}, ("labels", 0, "extra")),
    ],
)
def test_malformed_labels_fail_validation_at_their_field(
    item: dict[str, Any], where: tuple[Any, ...]
) -> None:
    with pytest.raises(ValidationError) as raised:
        FeedbackRequest.model_validate({"model": MODEL, "labels": [item]})

    assert raised.value.errors()[0]["loc"] == where


def test_a_failed_write_releases_the_claims_so_a_retry_stores_the_labels(
    world: Monitoring,
) -> None:
    world.champion()
    world.labels.fail_with = ArtifactError("the bucket is unavailable")

    with pytest.raises(ArtifactError):
        world.feedback(request_id="r-1", label="1")
    world.labels.fail_with = None

    assert world.feedback(request_id="r-1", label="1").stored == 1


def test_labels_are_read_back_by_the_hour_they_arrived(world: Monitoring) -> None:
    world.champion()
    world.feedback(request_id="r-1", label="1")
    world.later(3)
    world.feedback(request_id="r-2", label="0")

    later = datetime(2026, 3, 1, 15, tzinfo=UTC)
    assert [r["request_id"] for r in read_labels(world.labels, MODEL, START, later)] == [
        "r-1",
        "r-2",
    ]
    assert [r["request_id"] for r in read_labels(world.labels, MODEL, later, later)] == ["r-2"]
