"""Whatever a client sends, the handler answers 2xx or 4xx with our error body, never 5xx."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.adapters.memory_metrics import InMemoryServingMetrics
from flywheel.sdk import Flywheel
from flywheel.serving.service import InferenceService
from flywheel.serving.settings import ServingSettings
from tests.serving_support import MODEL, FakeContext, raw_event, register, trained_model

FEATURES = list(trained_model().records[0])
RECORD = trained_model().records[0]


@pytest.fixture(scope="module")
def handler_module() -> Any:
    """The real handler, its composition root swapped for in-memory adapters (no AWS)."""
    mp = pytest.MonkeyPatch()
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "flywheel-inference",
        "POWERTOOLS_METRICS_NAMESPACE": "Flywheel/test",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        mp.setenv(key, value)
    sdk = Flywheel.in_memory()
    register(sdk, trained_model())
    service = InferenceService.start(
        ServingSettings(backend="local", model_name=MODEL, model_version="1", max_batch_records=10),
        registry=sdk.registry.registry,
        artifacts=sdk.artifacts,
        metrics=InMemoryServingMetrics(),
        sink=InMemoryCaptureSink(),
        background=False,
    )
    from functions.inference import handler

    mp.setattr(handler, "_service_for", lambda _pin: service)
    yield handler
    mp.undo()


def answer(module: Any, body: str) -> tuple[int, dict[str, Any]]:
    response = module.handler(raw_event(body), FakeContext())
    status = response["statusCode"]
    payload = json.loads(response["body"])
    assert status < 500, payload
    if status >= 400:
        error = payload["error"]
        assert set(error) <= {"code", "message", "request_id", "errors"}
        assert "Traceback" not in error["message"]
        for problem in error.get("errors") or []:
            assert problem["field"]
            assert problem["reason"]
    return status, payload


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 400, "1" + "0" * 5000]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(json_values)
def test_arbitrary_json_is_never_a_server_error(handler_module, value):
    answer(handler_module, json.dumps(value))


@PROFILE
@given(st.text(max_size=60))
def test_arbitrary_text_is_never_a_server_error(handler_module, text):
    answer(handler_module, text)


@PROFILE
@given(
    st.sampled_from(FEATURES),
    st.one_of(json_values, st.sampled_from(NON_FINITE)),
)
def test_any_value_in_any_feature_is_scored_or_refused_by_name(handler_module, feature, value):
    literal = value if isinstance(value, str) and value in NON_FINITE else json.dumps(value)
    record = json.dumps({**RECORD, feature: "__VALUE__"}).replace('"__VALUE__"', literal)
    status, payload = answer(handler_module, '{"record": ' + record + "}")
    if status != 200:
        assert status in (400, 422)
        fields = {p["field"] for p in payload["error"].get("errors") or []}
        assert feature in fields or "body" in fields


@PROFILE
@given(st.integers(min_value=1, max_value=40))
def test_batches_are_scored_up_to_the_cap_and_413_beyond(handler_module, size):
    status, payload = answer(handler_module, json.dumps({"records": [RECORD] * size}))
    assert status == (200 if size <= 10 else 413)
    if status == 200:
        assert len(payload["predictions"]) == size


@pytest.mark.parametrize("depth", [10, 1_000, 100_000])
def test_deep_nesting_is_a_400(handler_module, depth):
    status, _ = answer(handler_module, '{"record": ' + "[" * depth + "]" * depth + "}")
    assert status == 400


def test_nan_and_infinity_are_refused_by_name(handler_module):
    for literal in ("NaN", "Infinity", "-Infinity"):
        record = json.dumps(RECORD).replace(str(RECORD[FEATURES[0]]), literal, 1)
        status, payload = answer(handler_module, '{"record": ' + record + "}")
        assert status == 422
        assert payload["error"]["errors"][0] == {
            "row": 0,
            "field": FEATURES[0],
            "reason": "must be a finite number",
        }
    assert math.isfinite(RECORD[FEATURES[0]])
