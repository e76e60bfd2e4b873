"""The training workflow's handlers build a training set from a feature view on S3 (moto).

The feature store is the deployment's (features bucket, registry table), composed by
``wiring.training_steps`` exactly as the training function does it; the entity table
is an S3 object; the run's snapshot and the version's lineage are checked as a user
would see them, and ``flywheel reproduce`` re-trains from the snapshot.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flywheel.cli.app import app
from flywheel.clock import FixedClock
from flywheel.composition import AwsPlatform
from flywheel.registry.models import VersionStatus
from flywheel.sdk import Flywheel
from flywheel.settings import Settings
from flywheel.training.feature_sets import parquet_bytes
from flywheel.workflows.config import ModelConfigStore, parse_model_config
from tests.aws_workflows import AwsWorkflows, provision
from tests.feature_support import (
    CUSTOMERS,
    EXPECTED_SNAPSHOT,
    EXPECTED_VIEW_LINEAGE,
    T0,
    TRANSFORMS,
    customer_view,
    snapshot_summary,
    training_entities,
    training_history,
    write_training_config,
)
from tests.workflow_support import MODEL, model_config

VIEW = "customer-orders"


@pytest.fixture
def aws(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AwsWorkflows:
    world = provision(local_names, monkeypatch, serving=False)
    # The feature team registered the view and ingested its history into the offline store
    store = AwsPlatform(
        Settings.of_deployment(local_names, backend="aws"),
        clock=FixedClock(T0 + timedelta(days=20)),
    ).feature_store()
    store.transformations = TRANSFORMS
    store.register(customer_view(ttl=None), actor="ana@example.com")
    assert store.ingest(VIEW, training_history()).rows_rejected == 0
    return world


def entity_table_uri(aws: AwsWorkflows) -> str:
    bucket = aws.names["FLYWHEEL_ARTIFACTS_BUCKET"]
    boto3.client("s3").put_object(
        Bucket=bucket,
        Key="datasets/churn/entities.parquet",
        Body=parquet_bytes(training_entities()),
    )
    return f"s3://{bucket}/datasets/churn/entities.parquet"


def configure(aws: AwsWorkflows, source: str) -> None:
    config = parse_model_config(model_config(training=training(source)))
    store = aws.registry.registry
    ModelConfigStore(aws.registry, store).put(config, actor="ops")  # type: ignore[arg-type]


def training(source: str) -> dict[str, Any]:
    return {
        "task": "classification",
        "estimator": "logistic_regression",
        "hyperparameters": {"max_iter": 500},
        "seed": 7,
        "dataset": {
            "source": source,
            "target": "churned",
            "feature_view": {"name": VIEW, "features": ["spend", "orders"]},
        },
    }


def test_the_workflow_trains_from_the_view_and_reproduces_from_the_snapshot(
    aws: AwsWorkflows,
) -> None:
    # Given a model configured to train from the view joined onto an entity table in S3
    source = entity_table_uri(aws)
    configure(aws, source)

    # When the training workflow runs its handlers
    execution = aws.start_training("schedule")

    # Then the joined training set is the run's Parquet snapshot in the artifacts bucket
    assert execution.status == "WAITING", execution.state.get("error")
    payload = execution.state["training_set"]["Payload"]
    bucket = aws.names["FLYWHEEL_ARTIFACTS_BUCKET"]
    assert payload["snapshot"]["uri"].startswith(f"s3://{bucket}/training-sets/{MODEL}/")
    assert payload["snapshot"]["uri"].endswith("/data.parquet")
    key = payload["snapshot"]["uri"].removeprefix(f"s3://{bucket}/")
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    # point-in-time: the order recorded late is not in the earlier row; no-history rows left out
    assert snapshot_summary(pq.read_table(io.BytesIO(body)).to_pylist()) == EXPECTED_SNAPSHOT

    # And the registered version's lineage names the view, its version and the snapshot
    version = aws.registry.get_version(MODEL, 1)
    assert version.status is VersionStatus.PENDING_APPROVAL
    assert version.lineage.feature_view is not None
    assert version.lineage.feature_view.entity_source == source
    assert version.lineage.feature_view.model_dump(exclude={"entity_source"}) == (
        EXPECTED_VIEW_LINEAGE
    )
    assert version.lineage.training_config["dataset"] == {
        "source": payload["snapshot"]["uri"],
        "target": "churned",
        "features": ["spend", "orders"],
        "feature_view": None,
    }

    # And `flywheel reproduce` re-trains it from the snapshot
    report = Flywheel(AwsPlatform(Settings()), actor="ops").reproduce(MODEL, 1)
    assert report.reproduced
    assert report.dataset_sha256_match


def test_a_missing_entity_table_fails_validation_naming_the_source(aws: AwsWorkflows) -> None:
    bucket = aws.names["FLYWHEEL_ARTIFACTS_BUCKET"]
    configure(aws, f"s3://{bucket}/datasets/churn/missing.parquet")

    execution = aws.start_training("schedule")

    assert execution.status == "FAILED"
    assert "BuildTrainingSet" not in execution.visited
    assert "no object at s3://" in execution.state["error"]["Cause"]


def test_flywheel_train_and_reproduce_from_a_feature_view(
    local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given the deployment's feature store with the view, and a config naming it
    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    for env_var, name in local_names.items():
        monkeypatch.setenv(env_var, name)
    store = AwsPlatform(Settings(), clock=FixedClock(T0 + timedelta(days=20))).feature_store()
    store.transformations = TRANSFORMS
    store.register(customer_view(ttl=None), actor="ana@example.com")
    store.ingest(VIEW, training_history())
    config = write_training_config(tmp_path)
    runner = CliRunner()

    # When `flywheel train` runs it, the output says which view and what was left out
    trained = runner.invoke(app, ["train", str(config)], catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    output = " ".join(trained.output.split())  # the console wraps long lines
    assert "trained from feature view customer-orders v1 (spend, orders)" in output
    assert f"1 of {CUSTOMERS + 3} entity rows saw no feature value" in output

    # And `flywheel reproduce` re-trains it from the stored snapshot
    reproduced = runner.invoke(app, ["reproduce", "churn", "1"], catch_exceptions=False)
    assert reproduced.exit_code == 0, reproduced.output
