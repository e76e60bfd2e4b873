"""Shared pieces of the serving tests: one real trained model, events, contexts, registration."""

from __future__ import annotations

import copy
import functools
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.registry.models import ModelVersion, VersionDraft

EVENTS = Path(__file__).parent / "events"
MODEL = "cancer"
CONFIG: dict[str, Any] = {
    "model": MODEL,
    "task": "classification",
    "dataset": {"source": "sklearn:breast_cancer"},
    "estimator": "logistic_regression",
    "hyperparameters": {"C": 0.5, "max_iter": 500},
    "seed": 3,
}
POWERTOOLS_ENV = {
    "POWERTOOLS_SERVICE_NAME": "flywheel-inference",
    "POWERTOOLS_METRICS_NAMESPACE": "Flywheel/test",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class TrainedModel:
    """A model trained by the real pipeline: its ONNX bytes and what it was registered with."""

    onnx: bytes
    draft: VersionDraft
    records: list[dict[str, float]]
    #: The explainer artifact registered with it (ADR 71).
    explainer: bytes | None = None


@functools.cache
def trained_model(regularization: float | None = None) -> TrainedModel:
    """Train once per test session (in memory, ~2 s) and reuse the artifact everywhere.

    ``regularization`` replaces ``C``: a differently fitted model of the same schema,
    whose answers differ from the default one on some records (shadow and A/B tests).
    """
    from sklearn.datasets import load_breast_cancer

    from flywheel.sdk import Flywheel

    sdk = Flywheel.in_memory(actor="trainer@example.com")
    config = copy.deepcopy(CONFIG)
    if regularization is not None:
        config["hyperparameters"]["C"] = regularization
    version = sdk.train_from_dict(config).version
    onnx = sdk.artifacts.get(version.artifact)
    explainer = sdk.artifacts.get(version.explainer) if version.explainer is not None else None
    draft = VersionDraft(**version.model_dump(include=set(VersionDraft.model_fields)))
    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    records = [dict(zip(names, row, strict=True)) for row in data.data[:120].tolist()]
    return TrainedModel(onnx=onnx, draft=draft, records=records, explainer=explainer)


def register(sdk: Any, trained: TrainedModel, *, description: str = "") -> ModelVersion:
    """Upload the artifact through the SDK's store and register + approve a new version."""
    key = f"models/{MODEL}/{uuid.uuid4().hex}/model.onnx"
    ref = sdk.artifacts.put(key, trained.onnx)
    explainer = None
    if trained.explainer is not None:
        explainer = sdk.artifacts.put(key.replace("model.onnx", "explainer.npz"), trained.explainer)
    draft = trained.draft.model_copy(
        update={"artifact": ref, "explainer": explainer, "description": description}
    )
    version = sdk.registry.register(draft, actor="trainer@example.com")
    sdk.registry.request_approval(MODEL, version.version, actor="trainer@example.com")
    return sdk.registry.approve(
        MODEL, version.version, actor="approver@example.com", reason="tests"
    )


def event(name: str = "predict_record.json", **body_updates: Any) -> dict[str, Any]:
    """A stored API Gateway REST event, optionally with a replaced JSON body."""
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    result = copy.deepcopy(loaded)
    if body_updates:
        body = json.loads(result["body"])
        body.update(body_updates)
        result["body"] = json.dumps(body)
    result["requestContext"]["requestId"] = str(uuid.uuid4())
    return result


def raw_event(body: str, *, model: str = MODEL) -> dict[str, Any]:
    """The stored event with an arbitrary (possibly invalid) body text."""
    result = event()
    result["body"] = body
    result["path"] = f"/v1/models/{model}/predict"
    result["pathParameters"] = {"name": model}
    return result


class FakeContext:
    """A Lambda context with the attributes Powertools reads."""

    function_name = "flywheel-cancer-inference"
    function_version = "7"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:flywheel-cancer:live"
    memory_limit_in_mb = 1024
    aws_request_id = "52fdfc07-2182-454f-963f-5f0f9a621d72"
    log_group_name = "/aws/lambda/flywheel-cancer-inference"
    log_stream_name = "2025/03/10/[7]abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def call(module: Any, ev: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Invoke a Lambda handler module with an API Gateway event; status and parsed body."""
    response = module.handler(ev, FakeContext())
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    return response["statusCode"], json.loads(response["body"])
