"""The scheduled monitors and the feedback API together on moto, as the schedules run them."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import numpy as np
import pytest

from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
from flywheel.adapters.s3_artifacts import S3ArtifactStore
from flywheel.drift.profile import build_profile
from flywheel.registry.service import RegistryService
from flywheel.serving.capture import capture_key, encode_rows
from functions.drift_scorer import handler as drift_handler
from functions.feedback import handler as feedback_handler
from functions.performance_monitor import handler as performance_handler
from tests import attribution_support as attribution
from tests.asl_walker import FakeContext
from tests.factories import version_draft
from tests.workflow_support import event

MODEL = "churn"
BUS = "flywheel-test-bus"
NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
HANDLERS = (drift_handler, feedback_handler, performance_handler)


@dataclass
class Deployment:
    names: dict[str, str]
    queue_url: str

    def serve(self, ages: list[float], predictions: list[str], request_id: str = "req-1") -> None:
        """Captured rows of one request, as the inference function writes them."""
        incomes = np.random.default_rng(2).normal(50, 5, len(ages))  # as in training
        rows = [
            {
                "request_id": request_id, "row": i, "timestamp": NOW.isoformat(), "model": MODEL,
                "version": 1, "variant": "champion",
                "features": {"age": age, "income": float(income)},
                "prediction": p, "probabilities": {"0": 0.3, "1": 0.7}, "entity_id": None,
            }
            for i, (age, income, p) in enumerate(zip(ages, incomes, predictions, strict=True))
        ]  # fmt: skip
        boto3.client("s3").put_object(
            Bucket=self.names["FLYWHEEL_FEATURES_BUCKET"],
            Key=capture_key(MODEL, 1, NOW.timestamp()),
            Body=encode_rows(rows),
        )

    def events(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        found = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in found.get("Messages", [])]

    def reports(self, kind: str) -> list[str]:
        listed = boto3.client("s3").list_objects_v2(
            Bucket=self.names["FLYWHEEL_ARTIFACTS_BUCKET"], Prefix=f"reports/{MODEL}/{kind}/"
        )
        return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture
def deployment(
    local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    # The project bus, with a rule copying the monitors' events to a queue we can read
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    queue_url = sqs.create_queue(QueueName="monitoring-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events.put_rule(
        Name="monitoring", EventBusName=BUS,
        EventPattern=json.dumps({"source": ["flywheel.monitoring"]}),
    )  # fmt: skip
    events.put_targets(
        Rule="monitoring",
        EventBusName=BUS,
        Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
    )
    # The functions' environment, as infra/constructs/model_monitors.py sets it
    environment = {
        **local_names,
        "FLYWHEEL_BACKEND": "aws",
        "FLYWHEEL_EVENT_BUS": BUS,
        "FLYWHEEL_EVENT_SOURCE": "flywheel.monitoring",
        "FLYWHEEL_MODELS": json.dumps([MODEL]),
        "FLYWHEEL_NOW": NOW.isoformat(),
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    # A champion trained on ages ~ N(40, 10), holdout accuracy 0.91
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    artifacts = S3ArtifactStore(local_names["FLYWHEEL_ARTIFACTS_BUCKET"], client=s3)
    rng = np.random.default_rng(0)
    training = np.column_stack([rng.normal(40, 10, 3000), rng.normal(50, 5, 3000)])
    profile = artifacts.put_json(
        "models/churn/profile.json",
        # holdout scores spread over [0, 1]; the served rows below all score 0.7
        build_profile(training, ["age", "income"], predictions=rng.uniform(0, 1, 300)).model_dump(
            mode="json"
        ),
    )
    audit = DynamoDbAuditLog(local_names["FLYWHEEL_AUDIT_TABLE"], client=dynamodb)
    store = DynamoDbModelRegistry(local_names["FLYWHEEL_REGISTRY_TABLE"], audit, client=dynamodb)
    registry = RegistryService(store, audit)
    registry.register(version_draft(name=MODEL, reference_profile=profile), actor="ci")
    registry.request_approval(MODEL, 1, actor="ci")
    registry.approve(MODEL, 1, actor="ana", reason="ok")
    registry.promote(MODEL, 1, actor="ana", reason="go")
    for module in HANDLERS:
        # Imported at collection, before the test's environment: name the namespace here.
        monkeypatch.setattr(module.metrics, "namespace", "FlywheelTests")
        for root in ("_service", "_monitor", "_settings"):
            if hasattr(module, root):
                getattr(module, root).cache_clear()
    yield Deployment(local_names, queue_url)
    for module in HANDLERS:
        for root in ("_service", "_monitor", "_settings"):
            if hasattr(module, root):
                getattr(module, root).cache_clear()


def emf(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def test_labels_through_the_api_make_the_monitor_report_a_degraded_model(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given 120 captured predictions of class "1"
    deployment.serve([40.0] * 120, ["1"] * 120)
    # And their ground truth, "0" for all of them, sent through POST /v1/feedback
    for start in (0, 100):
        request = event("feedback_batch.json")
        rows = range(start, min(start + 100, 120))
        labels = [{"request_id": "req-1", "row": i, "label": "0"} for i in rows]
        request["body"] = json.dumps({"model": MODEL, "labels": labels})
        answer = feedback_handler.handler(request, FakeContext("feedback"))
        assert answer["statusCode"] == 200, answer

    # When the performance monitor's schedule fires
    capsys.readouterr()
    result = performance_handler.handler(
        {"trigger": "schedule", "time": NOW.isoformat()}, FakeContext("performance-monitor")
    )

    # Then the run found every prediction labelled and all of them wrong
    [run] = result["runs"]
    assert (run["status"], run["verdict"], run["labelled"], run["value"]) == (
        "scored", "degraded", 120, 0.0,
    )  # fmt: skip
    # And it stored its report, put PerformanceDegraded on the bus and emitted metrics
    assert [k.rsplit(".", 1)[1] for k in deployment.reports("performance")] == ["html", "json"]
    [degraded] = deployment.events()
    assert degraded["detail-type"] == "PerformanceDegraded"
    assert degraded["source"] == "flywheel.monitoring"
    assert degraded["detail"]["model_name"] == MODEL
    assert (degraded["detail"]["metric"], degraded["detail"]["baseline"]) == ("accuracy", 0.91)
    documents = emf(capsys.readouterr().out)
    by_metric = {
        m["Name"]: doc for doc in documents for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    assert by_metric["PerformanceValue"]["Metric"] == "accuracy"
    assert by_metric["PerformanceValue"]["PerformanceValue"] == [0.0]
    assert by_metric["LabelCoverage"]["LabelCoverage"] == [100.0]
    assert by_metric["PerformanceDegraded"]["PerformanceDegraded"] == [1.0]


@pytest.mark.parametrize(
    "monitor", [performance_handler, drift_handler], ids=["performance", "drift"]
)
def test_a_monitor_run_with_nothing_to_score_says_why_without_a_metrics_warning(
    deployment: Deployment, monitor: Any
) -> None:
    # Given a model that was never deployed (no champion, nothing captured)
    # When the monitor's schedule asks for it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = monitor.handler(
            {"models": ["never-deployed"], "time": NOW.isoformat()}, FakeContext("monitor")
        )

    # Then the run says why it scored nothing, and no empty-metrics warning reaches the log
    [run] = result["runs"]
    assert (run["model"], run["status"]) == ("never-deployed", "skipped")
    assert run["reason"]
    assert [str(w.message) for w in caught if "metrics" in str(w.message)] == []


def test_the_drift_scorer_emits_one_metric_document_per_feature(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given captured traffic whose ages moved up by two standard deviations
    rng = np.random.default_rng(1)
    deployment.serve(list(rng.normal(60, 10, 400)), ["1"] * 400)

    capsys.readouterr()
    result = drift_handler.handler({}, FakeContext("drift-scorer"))

    [run] = result["runs"]
    assert run["drift_detected"] is True
    assert run["drifted"] == ["age"]
    documents = emf(capsys.readouterr().out)
    per_feature = {doc["Feature"]: doc for doc in documents if "Feature" in doc}
    assert set(per_feature) == {"age", "income"}
    age = per_feature["age"]
    assert age["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Model", "Feature"]]
    assert (age["Model"], age["FeatureDrifted"], age["Method"]) == (MODEL, 1, "ks")
    assert per_feature["income"]["FeatureDrifted"] == 0
    assert age["Wasserstein"] > 1.5  # two reference standard deviations
    [drift] = deployment.events()
    assert drift["detail-type"] == "DriftDetected"
    assert drift["detail"]["drifted_features"] == ["age"]
    # Every served row scores 0.7, nothing like the champion's holdout: prediction drift,
    # on the dashboard's [Model, Variant=champion] line.
    assert drift["detail"]["prediction_psi"] > 0.2
    [predictions] = [d for d in documents if "PredictionDrift" in d]
    assert predictions["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Model", "Variant"]]
    assert (predictions["Model"], predictions["Variant"]) == (MODEL, "champion")
    assert predictions["PredictionDrift"] == drift["detail"]["prediction_psi"]


def test_the_drift_scorer_measures_attribution_drift_on_the_verified_champion(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an explainable champion in S3 and DynamoDB, and captured traffic in which its
    # most important feature is stuck at the training mean (ADR 73)
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    artifacts = S3ArtifactStore(deployment.names["FLYWHEEL_ARTIFACTS_BUCKET"], client=s3)
    audit = DynamoDbAuditLog(deployment.names["FLYWHEEL_AUDIT_TABLE"], client=dynamodb)
    store = DynamoDbModelRegistry(
        deployment.names["FLYWHEEL_REGISTRY_TABLE"], audit, client=dynamodb
    )
    attribution.register_champion(RegistryService(store, audit), artifacts)
    s3.put_object(
        Bucket=deployment.names["FLYWHEEL_FEATURES_BUCKET"],
        Key=capture_key(attribution.MODEL, 1, NOW.timestamp()),
        Body=attribution.captured(attribution.records(2500, stuck=True), NOW),
    )

    # When the drift scorer's schedule runs for that model
    capsys.readouterr()
    result = drift_handler.handler({"models": [attribution.MODEL]}, FakeContext("drift-scorer"))

    # Then the ranking broke though only one feature of four drifted
    [run] = result["runs"]
    assert (run["status"], run["drifted"], run["attribution_drifted"]) == (
        "scored", [attribution.TOP], True,
    )  # fmt: skip
    assert run["attribution_ndcg"] < 0.9
    # And the AttributionDrift metric is in the model's EMF document
    [model_document] = [d for d in emf(capsys.readouterr().out) if "AttributionDrift" in d]
    assert model_document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Model"]]
    assert model_document["Model"] == attribution.MODEL
    assert model_document["AttributionDrift"] == [run["attribution_ndcg"]]
    # And DriftDetected reached the bus with the attribution evidence
    [drift] = deployment.events()
    assert drift["detail-type"] == "DriftDetected"
    assert drift["detail"]["model_name"] == attribution.MODEL
    assert drift["detail"]["attribution_ndcg"] == round(run["attribution_ndcg"], 4)
    assert drift["detail"]["reasons"] == [
        f"attribution drift: NDCG {run['attribution_ndcg']:.3f} < 0.9"
    ]
