"""check_canary also judges the canary's captured predictions against the champion's."""

from __future__ import annotations

import random

import pytest

from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.registry.models import VersionStatus
from flywheel.serving.capture import encode_rows
from flywheel.workflows.approvals import Decision
from flywheel.workflows.promotion import PromotionSteps
from tests.unit.workflows.conftest import REVIEWER, World, approval_request
from tests.workflow_support import MODEL

PSI_LIMIT = 0.2


def approve(world: World, execution: str) -> int:
    doc = world.approvals.request(approval_request(world, execution=execution, token=execution))
    world.approvals.decide(
        doc.approval_id, decision=Decision.APPROVE, approver=REVIEWER, reason="reviewed"
    )
    return doc.version


def capture(sink: InMemoryCaptureSink, version: int, variant: str, scores: list[float]) -> None:
    rows = [
        {
            "request_id": f"{variant}-{i}",
            "row": 0,
            "timestamp": f"2026-01-01T12:{i % 60:02d}:00.000Z",
            "model": MODEL,
            "version": version,
            "variant": variant,
            "latency_ms": 0.5,
            "features": {},
            "prediction": "yes" if score >= 0.5 else "no",
            "probabilities": {"no": 1 - score, "yes": score},
            "entity_id": None,
        }
        for i, score in enumerate(scores)
    ]
    key = f"capture/model={MODEL}/version={version}/date=2026-01-01/hour=12/{variant}.jsonl.gz"
    sink.put(key, encode_rows(rows))


@pytest.fixture
def canary_ready(world: World) -> tuple[World, InMemoryCaptureSink]:
    """Version 1 is champion; version 2 is approved; the check reads this capture store."""
    approve(world, "run-1")
    assert world.promote().status == "SUCCEEDED"
    approve(world, "run-2")
    sink = InMemoryCaptureSink()
    world.promotion = PromotionSteps(
        registry=world.registry,
        records=world.store,
        serving=world.serving,
        health=world.health,
        default_canary_weight=0.1,
        capture=sink,
        prediction_psi=PSI_LIMIT,
        prediction_min_rows=50,
    )
    return world, sink


def test_a_canary_whose_predictions_moved_is_rolled_back(canary_ready):
    world, sink = canary_ready
    rng = random.Random(1)
    capture(sink, 1, "champion", [rng.uniform(0.0, 0.6) for _ in range(200)])
    capture(sink, 2, "canary", [rng.uniform(0.4, 1.0) for _ in range(80)])

    execution = world.promote()

    assert execution.error == "CanaryRolledBack"
    check = execution.state["canary_check"]["Payload"]
    assert check["healthy"] is False
    assert check["breached"] == ["prediction-drift"]
    assert check["prediction_drift"] > PSI_LIMIT
    assert world.registry.get_version(MODEL, 2).status is VersionStatus.ROLLED_BACK
    reason = list(world.audit.entries(MODEL))[-1].reason
    assert "canary predictions moved from the champion's: PSI" in reason


def test_a_canary_that_predicts_like_the_champion_is_promoted(canary_ready):
    world, sink = canary_ready
    rng = random.Random(2)
    capture(sink, 1, "champion", [rng.uniform(0.0, 1.0) for _ in range(300)])
    capture(sink, 2, "canary", [rng.uniform(0.0, 1.0) for _ in range(300)])

    execution = world.promote()

    assert execution.status == "SUCCEEDED"
    check = execution.state["canary_check"]["Payload"]
    assert check["prediction_drift"] < PSI_LIMIT
    assert "prediction PSI" in check["reason"]
    assert world.registry.get_model(MODEL).champion == 2


def test_too_few_canary_rows_give_no_prediction_verdict(canary_ready):
    world, sink = canary_ready
    capture(sink, 1, "champion", [0.1] * 200)
    capture(sink, 2, "canary", [0.9] * 10)  # would be drift, but 10 rows prove nothing

    execution = world.promote()

    assert execution.status == "SUCCEEDED"
    check = execution.state["canary_check"]["Payload"]
    assert check["prediction_drift"] is None
    assert "prediction drift not judged (10 canary and 200 champion rows" in check["reason"]


def test_champion_rows_from_before_the_canary_started_are_not_compared(canary_ready):
    world, sink = canary_ready
    rng = random.Random(3)
    # Yesterday the champion answered very differently; only today's rows count.
    old = [{"no": 0.99, "yes": 0.01}] * 500
    rows = [
        {
            "request_id": f"old-{i}",
            "row": 0,
            "timestamp": "2025-12-31T08:00:00.000Z",
            "variant": "champion",
            "version": 1,
            "prediction": "no",
            "probabilities": p,
        }
        for i, p in enumerate(old)
    ]
    sink.put(
        f"capture/model={MODEL}/version=1/date=2025-12-31/hour=08/old.jsonl.gz",
        encode_rows(rows),
    )
    capture(sink, 1, "champion", [rng.uniform(0.0, 1.0) for _ in range(300)])
    capture(sink, 2, "canary", [rng.uniform(0.0, 1.0) for _ in range(300)])

    execution = world.promote()

    assert execution.status == "SUCCEEDED", execution.state["canary_check"]


def test_a_busy_champion_is_sampled_not_read_whole(canary_ready):
    world, sink = canary_ready
    rng = random.Random(4)
    for part in range(5):  # 5 objects of 200 champion rows
        rows = [
            {
                "request_id": f"p{part}-{i}",
                "row": 0,
                "timestamp": f"2026-01-01T12:{i % 60:02d}:00.000Z",
                "variant": "champion",
                "version": 1,
                "prediction": "yes",
                "probabilities": {"no": 0.5, "yes": rng.uniform(0.0, 1.0)},
            }
            for i in range(200)
        ]
        key = f"capture/model={MODEL}/version=1/date=2026-01-01/hour=12/p{part}.jsonl.gz"
        sink.put(key, encode_rows(rows))
    capture(sink, 2, "canary", [rng.uniform(0.0, 1.0) for _ in range(100)])
    world.promotion._prediction_max_rows = 300
    reads: list[str] = []
    original = sink.get
    sink.get = lambda key: reads.append(key) or original(key)  # type: ignore[method-assign]

    execution = world.promote()

    assert execution.status == "SUCCEEDED"
    champion_reads = [k for k in reads if "version=1/" in k]
    assert len(champion_reads) == 2  # 400 rows >= 300: the other 3 objects stay unread
