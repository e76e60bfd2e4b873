"""Attribution drift in the drift scorer's run: sampled, explained, judged, reported, acted on."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.drift.attribution import AttributionPolicy
from flywheel.errors import ConfigError
from flywheel.explain.artifact import Explainer
from flywheel.explain.linear import LinearShap
from flywheel.monitoring.attribution import (
    RecordSample,
    explainer_rows,
    measure_attribution_drift,
)
from flywheel.monitoring.drift_monitor import DriftMonitor, DriftRun
from flywheel.registry.models import FeatureSpec, InputSchema
from flywheel.serving.service import ServedModel
from flywheel.workflows.config import parse_model_config
from flywheel.workflows.state import RunContext, TrainingState, Trigger, TriggerReason
from tests import attribution_support as support
from tests.factories import version_draft
from tests.unit.monitoring.conftest import RecordingArtifactStore

os.environ.setdefault("OMP_NUM_THREADS", "1")

START = datetime(2026, 3, 1, 12, tzinfo=UTC)


class World:
    """The in-memory platform with the explainable champion and its model config."""

    def __init__(self, *, explainer: bool = True, **attribution: Any) -> None:
        self.platform = InMemoryPlatform(clock=FixedClock(START))
        self.artifacts = RecordingArtifactStore()
        if explainer:
            support.register_champion(self.platform.registry, self.artifacts)
        self.configure(**attribution)

    def configure(self, **attribution: Any) -> None:
        config = parse_model_config(
            {
                "name": support.MODEL,
                "training": {
                    "task": "classification",
                    "dataset": {"source": "sklearn:breast_cancer", "features": support.FEATURES},
                    "estimator": "logistic_regression",
                },
                "gate": {"metric": "accuracy"},
                "retraining": {"cooldown_minutes": 240},
                "monitoring": {"attribution": attribution},
            }
        )
        self.platform.configs.put(config, actor="ops@example.com")

    def monitor(self) -> DriftMonitor:
        p = self.platform
        return DriftMonitor(
            registry=p.registry,
            artifacts=self.artifacts,
            capture=p.capture,
            events=p.events("flywheel.monitoring"),
            clock=p.clock,
            configs=p.configs,
        )

    def serve(self, rows: int, *, stuck: bool = False, seed: int = 0) -> None:
        support.capture(
            self.platform.capture,
            support.records(rows, stuck=stuck, seed=seed),
            self.platform.clock.now(),
        )

    def run(self) -> DriftRun:
        return self.monitor().run(support.MODEL)

    def report(self, run: DriftRun) -> tuple[dict[str, Any], str]:
        return self.artifacts.json(run.report_json), self.artifacts.text(run.report_html)

    def drift_events(self) -> list[dict[str, Any]]:
        return [d for t, d in self.platform.published.events if t == "DriftDetected"]

    def later(self, hours: float) -> None:
        self.platform.clock.advance(timedelta(hours=hours))


def test_traffic_like_training_keeps_the_ranking_and_publishes_nothing() -> None:
    # Given the champion serves 3,000 records like its training data
    world = World()
    world.serve(3000)

    # When the drift scorer runs
    run = world.run()

    # Then it explained a 2,000-row sample and found the training ranking
    assert (run.status, run.drift_detected, run.attribution_drifted) == ("scored", False, False)
    assert run.attribution_ndcg is not None
    assert run.attribution_ndcg > 0.99
    document, page = world.report(run)
    attribution = document["attribution_drift"]
    assert (attribution["status"], attribution["sample_rows"], attribution["window_rows"]) == (
        "scored",
        2000,
        3000,
    )
    assert (attribution["method"], attribution["space"]) == ("linear_shap", "log_odds")
    assert attribution["features"][0]["feature"] == support.TOP
    assert [f["live_rank"] for f in attribution["features"]] == [1, 2, 3, 4]
    assert 'id="attributions"' in page
    assert "No attribution drift: importance ranking NDCG" in page
    assert world.drift_events() == []


def test_a_stuck_top_feature_reorders_the_ranking_and_takes_the_drift_event_path() -> None:
    # Given traffic where the most important feature is stuck at its training mean
    world = World()
    world.serve(3000, stuck=True)

    # When the drift scorer runs
    run = world.run()

    # Then only one of four features drifted (no dataset drift) but the ranking broke
    assert run.result is not None
    assert (run.result.drift_detected, run.drifted) == (False, (support.TOP,))
    assert run.attribution_drifted is True
    assert run.attribution_ndcg is not None
    assert run.attribution_ndcg < 0.9
    assert run.drift_detected is True
    document, page = world.report(run)
    top = document["attribution_drift"]["features"][0]
    assert (top["feature"], top["baseline_rank"], top["live_rank"], top["live"]) == (
        support.TOP, 1, 4, 0.0,
    )  # fmt: skip
    assert top["change"] == -top["baseline"]
    assert "Attribution drift: importance ranking NDCG" in page
    assert re.search(r"changed: the window's importance ranking .* NDCG 0\.\d{3}", page)
    # And DriftDetected carries the attribution evidence
    [event] = world.drift_events()
    assert event["model_name"] == support.MODEL
    assert event["attribution_ndcg"] == round(run.attribution_ndcg, 4)
    assert event["attribution_min_ndcg"] == 0.9
    assert event["reasons"] == [f"attribution drift: NDCG {run.attribution_ndcg:.3f} < 0.9"]

    # When the training workflow's first step takes the event (as the EventBridge rule
    # hands it over), a retraining run starts and is audited
    steps = world.platform.training_steps()
    first = steps.acquire_run_lock(_state(event, "run-1"))
    assert first.suppressed is False
    # And once that run is over, the next breach within the cooldown is suppressed
    steps.locks.release(support.MODEL, run=_run("run-1"), outcome="gate_rejected")
    world.later(2)
    world.serve(3000, stuck=True, seed=1)
    again = world.run()
    assert again.attribution_drifted is True
    second = steps.acquire_run_lock(_state(world.drift_events()[-1], "run-2"))
    assert second.suppressed is True
    assert second.reason is not None
    assert second.reason.startswith("cooldown: the last run started at")
    trail = [
        (str(e.action), e.details.get("trigger"))
        for e in world.platform.audit.entries(support.MODEL)
        if str(e.action).startswith("retrain_")
    ]
    assert trail == [("retrain_triggered", "drift"), ("retrain_suppressed", "drift")]


def test_the_sample_is_seeded_bounded_and_configurable() -> None:
    world = World(sample_rows=500, seed=7)
    world.serve(3000)

    first, second = world.run(), world.run()
    world.configure(sample_rows=500, seed=8)
    reseeded = world.run()

    def live(run: DriftRun) -> dict[str, float]:
        assert run.result is not None
        drift = run.result.attribution_drift
        assert drift is not None
        assert (drift.sample_rows, drift.window_rows) == (500, 3000)
        return {f.feature: f.live for f in drift.features}

    assert first.result is not None
    assert first.result.attribution_drift is not None
    assert first.result.attribution_drift.seed == 7
    assert live(first) == live(second)  # same window, same seed: the same rows
    assert live(reseeded) != live(first)  # another seed draws other rows


def test_a_version_without_an_explainer_is_scored_and_says_why_attribution_was_skipped() -> None:
    # Given a champion registered without an explainer
    world = World(explainer=False)
    support.register_champion(world.platform.registry, world.artifacts, explainer=False)
    world.serve(300)

    run = world.run()

    assert (run.status, run.attribution_ndcg, run.drift_detected) == ("scored", None, False)
    document, page = world.report(run)
    skipped = document["attribution_drift"]
    assert (skipped["status"], skipped["ndcg"], skipped["drifted"]) == ("skipped", None, False)
    assert skipped["reason"] == "version 1 was registered without an explainer"
    assert "not measured: version 1 was registered without an explainer" in page
    assert run.result is not None
    assert "attribution_ndcg" not in run.result.metrics()


def test_a_window_too_small_to_judge_skips_attribution_without_loading_the_champion() -> None:
    world = World()
    world.serve(60)

    run = world.run()

    assert (run.status, run.attribution_ndcg) == ("scored", None)
    document, _ = world.report(run)
    assert document["attribution_drift"]["reason"] == "60 captured rows; at least 100 are needed"


def test_a_model_config_with_a_policy_that_cannot_judge_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"monitoring\.attribution") as caught:
        World(sample_rows=50)
    assert "sample_rows (50) is below min_rows (100)" in str(caught.value)


def test_attribution_drift_can_be_turned_off_per_model() -> None:
    world = World(enabled=False)
    world.serve(300, stuck=True)

    run = world.run()

    assert run.attribution_ndcg is None
    assert run.drift_detected is False
    document, _ = world.report(run)
    assert document["attribution_drift"]["reason"] == (
        "turned off in the model's config (monitoring.attribution.enabled)"
    )


def test_a_tampered_explainer_is_not_used_and_drift_scoring_goes_on() -> None:
    # Given a champion whose registered explainer digest does not match the stored bytes
    world = World(explainer=False)
    p, artifacts = world.platform, world.artifacts
    trained = support.outcome()
    model = artifacts.put("models/cancer/1/model.onnx", trained.onnx_bytes)
    profile = artifacts.put_json(
        "models/cancer/1/profile.json", trained.profile.model_dump(mode="json")
    )
    forged = artifacts.put("models/cancer/1/explainer.npz", b"not the explainer")
    draft = trained.version_draft(model, reference_profile=profile).model_copy(
        update={"explainer": forged.model_copy(update={"sha256": "0" * 64})}
    )
    p.registry.register(draft, actor="ci")
    p.registry.request_approval(support.MODEL, 1, actor="ci")
    p.registry.approve(support.MODEL, 1, actor="ana", reason="ok")
    p.registry.promote(support.MODEL, 1, actor="ana", reason="go")
    world.serve(300)

    run = world.run()

    assert (run.status, run.attribution_ndcg) == ("scored", None)
    assert run.result is not None
    attribution = run.result.attribution_drift
    assert attribution is not None
    assert attribution.reason is not None
    assert attribution.reason.startswith("not measured: ")
    assert "SHA-256" in attribution.reason


def test_live_importance_is_the_trainings_definition_on_the_sampled_rows() -> None:
    world = World()
    served = ServedModel.load(
        world.platform.records, world.artifacts, support.MODEL, 1, max_records=400
    )
    sample = RecordSample(size=400, seed=3)
    sample.offer(support.records(1000))

    drift = measure_attribution_drift(served, sample, AttributionPolicy(sample_rows=400, seed=3))

    assert served.explainer is not None
    expected = served.explainer.importance(explainer_rows(sample.records(), served))
    assert {f.feature: f.live for f in drift.features} == pytest.approx(expected, rel=1e-12)
    assert (drift.sample_rows, drift.window_rows) == (400, 1000)


def test_records_that_no_longer_validate_are_left_out_of_the_explained_rows() -> None:
    world = World()
    served = ServedModel.load(world.platform.records, world.artifacts, support.MODEL, 1)
    good = support.records(3)
    bad = {**good[0], "mean texture": "n/a"}

    rows = explainer_rows([good[0], bad, good[1], good[2]], served)

    assert rows.shape == (3, 4)
    assert rows[:, 0].tolist() == [r[support.TOP] for r in good]


def test_a_typed_models_explainer_over_expanded_columns_is_skipped_until_records_map_to_them() -> (
    None
):
    # Given a model with a categorical feature whose explainer takes the one-hot columns
    schema = InputSchema(
        features=(
            FeatureSpec(name="plan", dtype="categorical", categories=("basic", "pro")),
            FeatureSpec(name="age"),
        )
    )
    explainer = Explainer.linear(
        LinearShap(np.array([[1.0, -1.0, 0.5]]), np.zeros(1), np.zeros(3)),
        columns=("plan=basic", "plan=pro", "age"),
        features=("plan", "age"),
        column_feature=(0, 0, 1),
        outputs=("1",),
        space="log_odds",
    )
    platform = InMemoryPlatform()
    version = platform.registry.register(
        version_draft(input_schema=schema, importance={"plan": 1.0, "age": 0.5}), actor="ci"
    )
    served = ServedModel(version=version, model=None, validator=None, explainer=explainer)  # type: ignore[arg-type]
    sample = RecordSample(size=10, seed=0)
    sample.offer([{"plan": "pro", "age": 40.0}] * 200)

    drift = measure_attribution_drift(served, sample, AttributionPolicy())

    assert drift.status == "skipped"
    assert drift.reason is not None
    assert "expands categorical and text features to" in drift.reason


def test_a_record_sample_is_uniform_nested_and_independent_of_batching() -> None:
    n, size = 20_000, 2000
    whole = RecordSample(size=size, seed=5)
    whole.offer([{"i": i} for i in range(n)])
    batched = RecordSample(size=size, seed=5)
    for start in range(0, n, 777):
        batched.offer([{"i": i} for i in range(start, min(start + 777, n))])

    picked = np.array([r["i"] for r in whole.records()])
    assert [r["i"] for r in batched.records()] == picked.tolist()
    assert len(set(picked.tolist())) == size
    # Uniform over the stream: the mean index is n/2 within ~4 standard errors
    assert abs(picked.mean() - n / 2) < 4 * (n / np.sqrt(12)) / np.sqrt(size)
    # The first k by key are the sample of size k (what an approximate explainer takes)
    smaller = RecordSample(size=200, seed=5)
    smaller.offer([{"i": i} for i in range(n)])
    assert whole.records(limit=200) == smaller.records()
    other = RecordSample(size=size, seed=6)
    other.offer([{"i": i} for i in range(n)])
    assert other.records() != whole.records()


def _state(event: dict[str, Any], run: str) -> TrainingState:
    """What the DriftDetected rule's input transformer hands the training workflow."""
    return TrainingState(
        model_name=event["model_name"],
        trigger=Trigger(
            reason=TriggerReason.DRIFT, source="flywheel.monitoring", event_id=run, detail=event
        ),
        run=_run(run),
    )


def _run(name: str) -> RunContext:
    return RunContext(
        execution_id=f"arn:aws:states:us-east-1:1:execution:training:{name}",
        execution_name=name,
        started_at="2026-03-01T12:00:00Z",
        state_machine="flywheel-test-training",
    )


def test_the_report_json_round_trips_through_the_result_model() -> None:
    world = World()
    world.serve(500)
    run = world.run()

    document, _ = world.report(run)

    assert run.result is not None
    assert json.loads(run.result.to_json())["attribution_drift"] == document["attribution_drift"]
