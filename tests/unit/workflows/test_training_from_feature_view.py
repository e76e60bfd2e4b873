"""The training workflow builds its training set from a feature view, point-in-time."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.errors import ConfigError
from flywheel.features import FeatureStore
from flywheel.registry.models import ArtifactRef, VersionStatus
from flywheel.training.config import parse_config
from flywheel.training.datasets import dataset_from_bytes
from flywheel.training.reproduce import reproduce
from flywheel.workflows.training import TrainingSteps
from tests.feature_support import (
    DAY,
    EXPECTED_SNAPSHOT,
    EXPECTED_VIEW_LINEAGE,
    T0,
    TRANSFORMS,
    churned,
    customer_view,
    snapshot_summary,
    training_entities,
    training_history,
)
from tests.unit.workflows.conftest import World
from tests.workflow_support import MODEL

VIEW = "customer-orders"


def write_entities(folder: Path) -> Path:
    path = folder / "entities.parquet"
    pq.write_table(training_entities(), path)
    return path


def view_dataset(entities: Path, **view: Any) -> dict[str, Any]:
    return {
        "source": str(entities),
        "target": "churned",
        "feature_view": {"name": VIEW, "features": ["spend", "orders"], **view},
    }


@pytest.fixture
def store() -> FeatureStore:
    store = InMemoryPlatform(clock=FixedClock(T0 + 20 * DAY)).feature_store(
        transformations=TRANSFORMS
    )
    store.register(customer_view(ttl=None), actor="ana@example.com")
    assert store.ingest(VIEW, training_history()).rows_rejected == 0
    return store


@pytest.fixture
def steps(world: World, store: FeatureStore) -> TrainingSteps:
    """The world's training steps, with the feature store injected."""
    world.training = TrainingSteps(
        registry=world.registry,
        records=world.store,
        artifacts=world.artifacts,
        approvals=world.approvals,
        fetch=lambda uri: b"",
        clock=world.clock,
        lock_ttl_seconds=3600,
        max_approval_timeout_seconds=48 * 3600,
        features=store,
    )
    return world.training


def snapshot_rows(world: World, payload: dict[str, Any]) -> list[dict[str, Any]]:
    ref = ArtifactRef.model_validate(payload["snapshot"])
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(world.artifacts.get(ref))).to_pylist()
    return rows


def test_a_run_trains_on_the_view_joined_point_in_time(
    world: World, steps: TrainingSteps, tmp_path: Path
) -> None:
    # Given a model whose training set is an entity table joined with a feature view
    world.configure(training={**_training(), "dataset": view_dataset(write_entities(tmp_path))})

    # When the training workflow runs
    execution = world.start_training("schedule")

    # Then it trains and registers a candidate from the joined snapshot
    assert execution.status == "WAITING", execution.state.get("error")
    payload = execution.state["training_set"]["Payload"]
    assert payload["snapshot"]["uri"].endswith("/data.parquet")
    assert payload["features"] == ["spend", "orders"]
    # The late order (created after the first event) is not in that event's row; the
    # newcomer had no visible value at its event time: dropped and counted.
    assert snapshot_summary(snapshot_rows(world, payload)) == EXPECTED_SNAPSHOT
    assert payload["rows"] == EXPECTED_SNAPSHOT["rows"]

    # And the version's lineage says which view, version and features it was trained from
    version = world.registry.get_version(MODEL, 1)
    assert version.status is VersionStatus.PENDING_APPROVAL
    assert version.lineage.feature_view is not None
    assert version.lineage.feature_view.model_dump(exclude={"entity_source"}) == (
        EXPECTED_VIEW_LINEAGE
    )
    assert list(version.input_schema.feature_names) == ["spend", "orders"]
    assert version.lineage.dataset_sha256 == payload["snapshot"]["sha256"]


def test_a_version_trained_from_a_view_reproduces_from_its_snapshot(
    world: World, steps: TrainingSteps, tmp_path: Path
) -> None:
    world.configure(training={**_training(), "dataset": view_dataset(write_entities(tmp_path))})
    execution = world.start_training("schedule")
    version = world.registry.get_version(MODEL, 1)
    payload = execution.state["training_set"]["Payload"]

    # The snapshot re-trains to the same model ...
    dataset = dataset_from_bytes(
        world.artifacts.get(ArtifactRef.model_validate(payload["snapshot"])),
        file_format="parquet",
        source=payload["snapshot"]["uri"],
        target="churned",
        features=("spend", "orders"),
        task=version.output_schema.task,
    )
    report = reproduce(version, world.artifacts.get(version.artifact), dataset=dataset)
    assert report.reproduced
    assert report.dataset_sha256_match
    # ... while re-reading the entity table as if it held the features is refused
    with pytest.raises(ConfigError, match=r"^dataset\.feature_view: .* is an entity table"):
        reproduce(version, world.artifacts.get(version.artifact))


def failed_validation(world: World) -> str:
    """Run the workflow; it must fail at ValidateData, registering nothing. The error text."""
    execution = world.start_training("schedule")
    assert execution.status == "FAILED"
    assert "ValidateData" in execution.visited
    assert "BuildTrainingSet" not in execution.visited
    assert "version_registered" not in world.actions()
    cause: str = execution.state["error"]["Cause"]
    return cause


def test_too_many_rows_without_features_fail_the_build(
    world: World, steps: TrainingSteps, tmp_path: Path
) -> None:
    # Given entity times before any order was recorded (a wrong timestamp column, say)
    entities = tmp_path / "early.csv"
    entities.write_text(
        "customer_id,event_timestamp,churned\n"
        + "".join(f"c{i},2025-06-01T00:00:00Z,{churned(20.0 + 5 * i)}\n" for i in range(60))
    )
    world.configure(training={**_training(), "dataset": view_dataset(entities)})

    # When the run validates its data, it fails naming the setting
    cause = failed_validation(world)
    assert "dataset.feature_view.max_unmatched_share: 60 of 60 entity rows" in cause


def test_the_entity_table_must_carry_key_time_and_label(
    steps: TrainingSteps, world: World, tmp_path: Path
) -> None:
    entities = tmp_path / "entities.csv"
    entities.write_text("customer,event_timestamp,churned\nc1,2026-01-02T00:00:00Z,no\n")
    world.configure(training={**_training(), "dataset": view_dataset(entities)})
    cause = failed_validation(world)
    assert "dataset.source: the entity table lacks the view's join key 'customer_id'" in cause


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (
            {"source": "sklearn:iris", "feature_view": {"name": VIEW}},
            r"^dataset\.feature_view: a feature view is joined onto an entity table",
        ),
        (
            {"source": "e.csv", "target": "y", "features": ["a"], "feature_view": {"name": VIEW}},
            r"^dataset\.features: with a feature_view, list the model's features in "
            r"dataset\.feature_view\.features",
        ),
        (
            {"source": "e.csv", "target": "y", "feature_view": {"name": VIEW, "version": 0}},
            r"^dataset\.feature_view\.version: ",
        ),
        (
            {"source": "e.csv", "target": "y", "feature_view": {"name": "Bad Name"}},
            r"^dataset\.feature_view\.name: invalid model name",
        ),
        (
            {"source": "e.csv", "target": "y", "feature_view": {"name": VIEW, "features": ["y"]}},
            r"^dataset\.feature_view\.features: the target 'y' is also listed as a feature",
        ),
        (
            {"source": "e.csv", "target": "y", "feature_view": {"name": VIEW, "colour": 1}},
            r"^dataset\.feature_view\.colour: ",
        ),
    ],
)
def test_feature_view_config_errors_name_the_field(dataset: dict[str, Any], message: str) -> None:
    config = {"model": "churn", "task": "classification", "estimator": "logistic_regression"}
    with pytest.raises(ConfigError, match=message):
        parse_config({**config, "dataset": dataset})


@pytest.mark.parametrize(
    ("view", "message"),
    [
        ({"version": 2}, "dataset.feature_view: feature view 'customer-orders' has no version 2"),
        (
            {"features": ["tip"]},
            "dataset.feature_view.features: view 'customer-orders' v1 has no feature(s) ['tip']",
        ),
    ],
)
def test_an_unknown_view_version_or_feature_is_named(
    steps: TrainingSteps, world: World, tmp_path: Path, view: dict[str, Any], message: str
) -> None:
    dataset = view_dataset(write_entities(tmp_path), **view)
    world.configure(training={**_training(), "dataset": dataset})
    assert message in failed_validation(world)


def _training() -> dict[str, Any]:
    return {
        "task": "classification",
        "estimator": "logistic_regression",
        "hyperparameters": {"max_iter": 500},
        "seed": 7,
    }
