"""check_canary also judges the canary's captured predictions against the champion's."""

from __future__ import annotations

import random

import numpy as np
import pytest

from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.drift.profile import build_profile
from flywheel.registry.models import VersionStatus
from flywheel.serving.capture import encode_rows
from flywheel.workflows.approvals import Decision
from flywheel.workflows.promotion import PromotionSteps
from tests.factories import version_draft
from tests.unit.workflows.conftest import REQUESTER, REVIEWER, World, approval_request
from tests.workflow_support import MODEL, approval_request_for

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


def traffic(
    sink: InMemoryCaptureSink,
    seed: int,
    champion: tuple[float, float],
    canary: tuple[float, float],
    rows: int = 300,
) -> None:
    """Both versions' captured scores, uniform on the given ranges."""
    rng = random.Random(seed)
    capture(sink, 1, "champion", [rng.uniform(*champion) for _ in range(rows)])
    capture(sink, 2, "canary", [rng.uniform(*canary) for _ in range(rows)])


def checking(world: World, sink: InMemoryCaptureSink, **extra: object) -> PromotionSteps:
    """The world's promotion steps with the prediction checks on ``sink``."""
    return PromotionSteps(
        registry=world.registry,
        records=world.store,
        serving=world.serving,
        health=world.health,
        default_canary_weight=0.1,
        capture=sink,
        prediction_psi=PSI_LIMIT,
        prediction_min_rows=50,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def canary_ready(world: World) -> tuple[World, InMemoryCaptureSink]:
    """Version 1 is champion; version 2 is approved; the check reads this capture store."""
    approve(world, "run-1")
    assert world.promote().status == "SUCCEEDED"
    approve(world, "run-2")
    sink = InMemoryCaptureSink()
    world.promotion = checking(world, sink)
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
    traffic(sink, 2, champion=(0.0, 1.0), canary=(0.0, 1.0))

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
    assert (
        "prediction drift from the champion not judged (10 canary and 200 champion rows"
        in check["reason"]
    )


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


# -- against the canary version's own holdout scores (its reference profile) -----------


def register_with_holdout(world: World, execution: str, holdout: list[float]) -> int:
    """Register and approve a version whose reference profile carries ``holdout`` scores."""
    profile = build_profile(
        np.column_stack([np.linspace(20, 80, 200), np.linspace(1e3, 9e3, 200)]),
        ["age", "income"],
        predictions=holdout,
    )
    ref = world.artifacts.put_json(
        f"models/{MODEL}/{execution}/reference_profile.json", profile.model_dump(mode="json")
    )
    version = world.registry.register(
        version_draft(name=MODEL, reference_profile=ref), actor="workflow"
    )
    doc = world.approvals.request(
        approval_request_for(version, requested_by=REQUESTER, execution=execution, token=execution)
    )
    world.approvals.decide(
        doc.approval_id, decision=Decision.APPROVE, approver=REVIEWER, reason="reviewed"
    )
    return doc.version


@pytest.fixture
def checked_against_holdout(world: World) -> tuple[World, InMemoryCaptureSink]:
    """Version 1 is champion; version 2 (holdout scores uniform on [0, 1]) is approved."""
    approve(world, "run-1")
    assert world.promote().status == "SUCCEEDED"
    rng = random.Random(10)
    assert register_with_holdout(world, "run-2", [rng.uniform(0, 1) for _ in range(400)]) == 2
    sink = InMemoryCaptureSink()
    world.promotion = checking(world, sink, artifacts=world.artifacts)
    return world, sink


def test_a_canary_scoring_unlike_its_holdout_is_rolled_back_even_if_the_champion_agrees(
    checked_against_holdout,
):
    world, sink = checked_against_holdout
    # Live traffic makes both versions answer "yes" with high confidence: the canary
    # agrees with the champion, but nothing like that was in its holdout.
    traffic(sink, 11, champion=(0.85, 1.0), canary=(0.85, 1.0))

    execution = world.promote()

    assert execution.error == "CanaryRolledBack"
    check = execution.state["canary_check"]["Payload"]
    assert check["breached"] == ["prediction-drift-vs-reference"]
    assert check["prediction_drift"] < PSI_LIMIT < check["reference_prediction_drift"]
    assert world.registry.get_version(MODEL, 2).status is VersionStatus.ROLLED_BACK
    reason = list(world.audit.entries(MODEL))[-1].reason
    assert "canary predictions moved from the holdout's: PSI" in reason


def test_a_canary_scoring_like_its_holdout_and_the_champion_is_promoted(
    checked_against_holdout,
):
    world, sink = checked_against_holdout
    traffic(sink, 12, champion=(0.0, 1.0), canary=(0.0, 1.0))

    execution = world.promote()

    assert execution.status == "SUCCEEDED", execution.state["canary_check"]
    check = execution.state["canary_check"]["Payload"]
    assert check["reference_prediction_drift"] < PSI_LIMIT
    assert "holdout prediction PSI" in check["reason"]
    assert world.registry.get_model(MODEL).champion == 2


def test_a_version_without_holdout_scores_is_judged_on_the_champion_alone(canary_ready):
    world, sink = canary_ready
    world.promotion._artifacts = world.artifacts  # the factory's version has no profile
    traffic(sink, 13, champion=(0.85, 1.0), canary=(0.85, 1.0))

    execution = world.promote()

    assert execution.status == "SUCCEEDED"
    check = execution.state["canary_check"]["Payload"]
    assert check["reference_prediction_drift"] is None
    assert "no holdout prediction profile to compare with" in check["reason"]


def test_a_tampered_reference_profile_fails_the_check_instead_of_skipping_it(
    checked_against_holdout,
):
    world, sink = checked_against_holdout
    traffic(sink, 14, champion=(0.0, 1.0), canary=(0.0, 1.0))
    ref = world.registry.get_version(MODEL, 2).reference_profile
    assert ref is not None
    world.artifacts.tamper(ref, b'{"features": ["age"]}')

    execution = world.promote()

    assert execution.status != "SUCCEEDED"
    assert world.registry.get_model(MODEL).champion == 1


def test_a_small_canary_whose_psi_is_only_sampling_noise_is_promoted(canary_ready):
    """With 50 canary rows, PSI over deciles exceeds 0.2 in most healthy canaries."""
    world, sink = canary_ready
    points = [(k + 0.5) / 10 for k in range(10)]
    capture(sink, 1, "champion", [p for p in points for _ in range(20)])
    per_decile = [8, 2, 8, 2, 8, 2, 8, 2, 5, 5]  # PSI 0.33, chi-square p 0.23
    capture(
        sink, 2, "canary", [p for p, n in zip(points, per_decile, strict=True) for _ in range(n)]
    )

    execution = world.promote()

    assert execution.status == "SUCCEEDED", execution.state["canary_check"]
    check = execution.state["canary_check"]["Payload"]
    assert check["prediction_drift"] > PSI_LIMIT
    assert "but within sampling noise (p 0.23" in check["reason"]
    assert world.registry.get_model(MODEL).champion == 2
