"""The monitoring services on in-memory adapters: a registry with a champion, capture, labels."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.adapters.memory_labels import InMemoryLabelClaims
from flywheel.adapters.memory_workflows import InMemoryEventPublisher
from flywheel.clock import FixedClock
from flywheel.drift.profile import ReferenceProfile
from flywheel.monitoring.drift_monitor import DriftMonitor
from flywheel.monitoring.feedback import FeedbackRequest, FeedbackService
from flywheel.monitoring.performance_monitor import PerformanceMonitor
from flywheel.registry.models import ModelVersion, OutputSchema, Task
from flywheel.registry.service import RegistryService
from flywheel.serving.capture import capture_key, encode_rows
from flywheel.workflows.config import ModelConfigStore, parse_model_config
from tests.factories import version_draft

MODEL = "churn"


class RecordingArtifactStore(InMemoryArtifactStore):
    """The in-memory store, remembering the bytes written under each URI (for assertions)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, bytes] = {}

    def _write(
        self, key: str, data: bytes, *, content_type: str, sha256: str
    ) -> tuple[str, str | None]:
        uri, version = super()._write(key, data, content_type=content_type, sha256=sha256)
        self.written[uri] = data
        return uri, version

    def text(self, uri: str | None) -> str:
        assert uri is not None
        return self.written[uri].decode("utf-8")

    def json(self, uri: str | None) -> Any:
        return json.loads(self.text(uri))


START = datetime(2026, 3, 1, 12, tzinfo=UTC)


@dataclass
class Monitoring:
    clock: FixedClock
    registry: RegistryService
    configs: ModelConfigStore
    artifacts: RecordingArtifactStore
    capture: InMemoryCaptureSink
    labels: InMemoryCaptureSink
    claims: InMemoryLabelClaims
    events: InMemoryEventPublisher
    served: list[dict[str, Any]] = field(default_factory=list)

    def champion(self, **overrides: Any) -> ModelVersion:
        """Register, approve and promote a version (classes "0"/"1", holdout accuracy 0.91)."""
        version = self.registry.register(version_draft(name=MODEL, **overrides), actor="ci")
        number = version.version
        self.registry.request_approval(MODEL, number, actor="ci")
        self.registry.approve(MODEL, number, actor="ana", reason="ok")
        return self.registry.promote(MODEL, number, actor="ana", reason="go")

    def champion_with_profile(self, profile: ReferenceProfile) -> ModelVersion:
        """A champion whose stored reference profile is ``profile``."""
        ref = self.artifacts.put_json("models/churn/profile.json", profile.model_dump(mode="json"))
        return self.champion(reference_profile=ref)

    def configure(self, **monitoring: Any) -> None:
        config = parse_model_config(
            {
                "name": MODEL,
                "training": {
                    "task": "classification",
                    "dataset": {"source": "sklearn:breast_cancer"},
                    "estimator": "logistic_regression",
                },
                "gate": {"metric": "accuracy"},
                "monitoring": monitoring,
            }
        )
        self.configs.put(config, actor="ops")

    def serve(
        self,
        predictions: list[str],
        *,
        version: int = 1,
        ages: list[float] | None = None,
        request_id: str = "req",
        at: datetime | None = None,
    ) -> list[tuple[str, int]]:
        """Capture one request with one row per prediction; return its (request_id, row)s."""
        when = at or self.clock.now()
        rows = [
            {
                "request_id": request_id,
                "row": i,
                "timestamp": when.isoformat(),
                "model": MODEL,
                "version": version,
                "variant": "champion",
                "features": {"age": ages[i] if ages else 30.0 + i, "income": 1.0},
                "prediction": p,
                "probabilities": {"0": 0.2, "1": 0.8} if p == "1" else {"0": 0.8, "1": 0.2},
                "entity_id": None,
            }
            for i, p in enumerate(predictions)
        ]
        self.capture.put(capture_key(MODEL, version, when.timestamp()), encode_rows(rows))
        return [(request_id, i) for i in range(len(predictions))]

    def feedback(self, **body: Any) -> Any:
        return self.feedback_service().submit(
            FeedbackRequest.model_validate({"model": MODEL, **body})
        )

    def feedback_service(self, **kwargs: Any) -> FeedbackService:
        return FeedbackService(
            registry=self.registry, claims=self.claims, sink=self.labels, clock=self.clock, **kwargs
        )

    def monitor(self) -> PerformanceMonitor:
        return PerformanceMonitor(
            registry=self.registry,
            configs=self.configs,
            artifacts=self.artifacts,
            capture=self.capture,
            labels=self.labels,
            events=self.events,
            clock=self.clock,
        )

    def drift_monitor(self) -> DriftMonitor:
        return DriftMonitor(
            registry=self.registry,
            artifacts=self.artifacts,
            capture=self.capture,
            events=self.events,
            clock=self.clock,
            configs=self.configs,
        )

    def later(self, hours: float) -> None:
        self.clock.advance(timedelta(hours=hours))


@pytest.fixture
def world() -> Monitoring:
    audit = InMemoryAuditLog()
    store = InMemoryModelRegistry(audit)
    registry = RegistryService(store, audit)
    return Monitoring(
        clock=FixedClock(START),
        registry=registry,
        configs=ModelConfigStore(registry, store),
        artifacts=RecordingArtifactStore(),
        capture=InMemoryCaptureSink(),
        labels=InMemoryCaptureSink(),
        claims=InMemoryLabelClaims(),
        events=InMemoryEventPublisher(),
    )


REGRESSOR = {"output_schema": OutputSchema(task=Task.REGRESSION), "metrics": {"rmse": 2.0}}
