"""InferenceService on in-memory adapters: shadow, A/B, capture and metrics as callers see."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.adapters.memory_metrics import InMemoryServingMetrics
from flywheel.errors import InvalidRecordsError, ModelNotFoundError, PayloadTooLargeError
from flywheel.sdk import Flywheel
from flywheel.serving.capture import read_capture
from flywheel.serving.models import PredictRequest, Variant
from flywheel.serving.service import InferenceService
from flywheel.serving.settings import ServingSettings
from tests.serving_support import MODEL, register, trained_model


class SlowModel:
    """A model that answers like the real one, ``delay`` seconds later."""

    def __init__(self, model: Any, delay: float) -> None:
        self.model, self.delay = model, delay

    def predict(self, matrix: Any) -> Any:
        time.sleep(self.delay)
        return self.model.predict(matrix)


class BrokenModel:
    def predict(self, matrix: Any) -> Any:
        raise RuntimeError("shadow model exploded")


@pytest.fixture(scope="module")
def sdk() -> Flywheel:
    sdk = Flywheel.in_memory(actor="ops@example.com")
    trained = trained_model()
    register(sdk, trained, description="champion")
    register(sdk, trained, description="challenger")
    sdk.promote(MODEL, 1, reason="launch")
    return sdk


def start(
    sdk: Flywheel, **settings
) -> tuple[InferenceService, InMemoryCaptureSink, InMemoryServingMetrics]:
    sink, metrics = InMemoryCaptureSink(), InMemoryServingMetrics()
    service = InferenceService.start(
        ServingSettings(backend="local", model_name=MODEL, **settings),
        registry=sdk.registry.registry,
        artifacts=sdk.artifacts,
        metrics=metrics,
        sink=sink,
        background=False,
    )
    return service, sink, metrics


def body(**extra) -> PredictRequest:
    return PredictRequest(records=trained_model().records[:2], **extra)


def test_the_champion_answers_and_its_rows_are_captured(sdk):
    service, sink, metrics = start(sdk, model_version="1")
    response = service.predict(MODEL, body(entity_id="p-1"), request_id="req-1")
    assert (response.version, response.variant, response.request_id) == (1, "champion", "req-1")
    assert response.predictions == ["malignant", "malignant"]
    assert set(response.probabilities[0]) == {"benign", "malignant"}
    service.flush()
    rows = read_capture(sink, "capture/model=cancer/version=1/")
    assert [(r["request_id"], r["row"], r["entity_id"]) for r in rows] == [
        ("req-1", 0, "p-1"),
        ("req-1", 1, "p-1"),
    ]
    (served,) = metrics.of("served")
    assert served.labels.variant == "champion"
    assert served.values["rows"] == 2
    assert 0.9 < served.values["scores"][0] <= 1.0


def test_rejections_are_counted_per_variant(sdk):
    service, _, metrics = start(sdk, model_version="1", max_batch_records=2)
    with pytest.raises(InvalidRecordsError):
        service.predict(MODEL, PredictRequest(record={"mean radius": "x"}), request_id="r")
    with pytest.raises(PayloadTooLargeError):
        service.predict(MODEL, PredictRequest(records=trained_model().records[:3]), request_id="r")
    with pytest.raises(ModelNotFoundError):
        service.predict("other", body(), request_id="r")
    assert [m.values["code"] for m in metrics.of("rejected")] == [
        "invalid_records",
        "payload_too_large",
        "model_not_found",
    ]


def test_shadow_never_changes_or_delays_the_response(sdk):
    # Given the same service without and with a shadow that takes 0.5 s per request
    plain, _, _ = start(sdk, model_version="1")
    shadowed, sink, _ = start(sdk, model_version="1", shadow_version=2)
    shadowed.shadow = replace(shadowed.shadow, model=SlowModel(shadowed.shadow.model, 0.5))
    # When both answer the same request
    expected = plain.predict(MODEL, body(), request_id="req-9")
    started = time.perf_counter()
    answer = shadowed.predict(MODEL, body(), request_id="req-9")
    elapsed = time.perf_counter() - started
    # Then the answer is identical and was not held up by the shadow
    assert answer == expected
    assert elapsed < 0.2
    shadowed.flush()
    rows = read_capture(sink)
    assert {(r["variant"], r["version"]) for r in rows} == {("champion", 1), ("shadow", 2)}
    assert {r["request_id"] for r in rows} == {"req-9"}


def test_a_failing_shadow_is_counted_and_the_caller_never_notices(sdk):
    service, _, metrics = start(sdk, model_version="1", shadow_version=2)

    service.shadow = replace(service.shadow, model=BrokenModel())
    response = service.predict(MODEL, body(), request_id="r")
    service.flush()
    assert response.variant == "champion"
    assert [m.labels.variant for m in metrics.of("shadow_failed")] == ["shadow"]


def test_ab_assignment_is_sticky_per_key_and_reported(sdk):
    service, _, _ = start(sdk, model_version="1", ab_challenger_version=2, ab_weight=0.5)
    seen = {}
    for i in range(40):
        key = f"user-{i % 8}"
        response = service.predict(MODEL, body(assignment_key=key), request_id=str(i))
        assert seen.setdefault(key, (response.variant, response.version)) == (
            response.variant,
            response.version,
        )
    assert set(seen.values()) == {(Variant.A, 1), (Variant.B, 2)}


def test_a_failing_capture_sink_never_fails_the_response_and_is_counted(sdk):
    service, sink, metrics = start(sdk, model_version="1")
    sink.fail_with = PermissionError("AccessDenied")
    first = service.predict(MODEL, body(), request_id="r1")
    service.flush()
    second = service.predict(MODEL, body(), request_id="r2")
    assert first.predictions == second.predictions == ["malignant", "malignant"]
    assert [m.values["capture_lost"] for m in metrics.of("served")] == [0, 2]


def test_the_challenger_reports_itself_as_canary(sdk):
    sdk.registry.start_canary(MODEL, 2, actor="ops@example.com")
    try:
        canary, _, _ = start(sdk, model_version="2")
        champion, _, _ = start(sdk, model_version="champion")
        assert canary.predict(MODEL, body(), request_id="r").variant == "canary"
        assert champion.predict(MODEL, body(), request_id="r").variant == "champion"
    finally:
        sdk.registry.abort_canary(MODEL, 2, actor="ops@example.com", reason="test over")
