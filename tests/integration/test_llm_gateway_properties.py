"""Whatever a client sends the LLM gateway, it answers JSON: 2xx, or 4xx with our error
body naming the field; never a 5xx, never a crash. Plus a corpus of bad inputs, each with
the status, code and field it gets."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.adapters.memory_metrics import InMemoryGatewayMetrics
from flywheel.composition import InMemoryPlatform
from flywheel.gateway.settings import GatewaySettings
from tests.gateway_support import NAME, add_prompt, gateway, promote
from tests.serving_support import EVENTS, FakeContext

GOOD = {"customer": "ACME Corp", "ticket": "The export fails since Monday."}


@pytest.fixture(scope="module")
def handler_module() -> Any:
    """The real handler, its composition root swapped for an in-memory gateway (no AWS)."""
    mp = pytest.MonkeyPatch()
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "flywheel-llm-gateway",
        "POWERTOOLS_METRICS_NAMESPACE": "Flywheel/test",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }.items():
        mp.setenv(key, value)
    platform = InMemoryPlatform(GatewaySettings(backend="local"))
    promote(platform, add_prompt(platform))
    add_prompt(platform, "draft-only")  # a prompt with no champion
    gw = gateway(platform, metrics=InMemoryGatewayMetrics())
    from functions.llm_gateway import handler

    mp.setattr(handler, "_gateway", lambda: gw)
    yield handler
    gw.close()
    mp.undo()


def _event(body: str, *, name: str = NAME, **replace: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "llm_invoke.json").read_text())
    event.update(body=body, path=f"/v1/prompts/{name}/invoke", pathParameters={"name": name})
    event.update(replace)
    return event


def answer(module: Any, body: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    response = module.handler(_event(body, **kw), FakeContext())
    status = response["statusCode"]
    payload = json.loads(response["body"])
    assert status < 500, payload
    if status >= 400:
        error = payload["error"]
        assert set(error) <= {"code", "message", "request_id", "errors"}
        assert error["code"]
        assert error["message"]
        assert error["request_id"]
        assert "Traceback" not in error["message"]
        for problem in error.get("errors") or []:
            assert problem["field"]
            assert problem["reason"]
    else:
        assert payload["prompt"] == NAME
        assert payload["text"] is not None
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
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 400, "1" + "0" * 5000]
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
@given(st.sampled_from(sorted(GOOD)), st.one_of(json_values, st.sampled_from(NON_FINITE)))
def test_any_value_of_any_variable_is_answered_or_refused_by_name(handler_module, name, value):
    literal = value if isinstance(value, str) and value in NON_FINITE else json.dumps(value)
    variables = json.dumps({**GOOD, name: "__VALUE__"}).replace('"__VALUE__"', literal)
    status, payload = answer(handler_module, '{"variables": ' + variables + "}")
    if status != 200:
        assert status in (400, 422)
        fields = {p["field"] for p in payload["error"].get("errors") or []}
        assert f"variables.{name}" in fields or "body" in fields


@PROFILE
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6), st.text(max_size=300))
def test_any_variables_and_assignment_key_are_answered_or_refused(handler_module, extra, key):
    body = json.dumps({"variables": {**GOOD, **extra}, "assignment_key": key})
    status, payload = answer(handler_module, body)
    assert status in (200, 400, 422)
    if status == 200:
        assert payload["variant"] == "champion"


@PROFILE
@given(st.text(max_size=80))
def test_any_prompt_name_is_answered_or_a_404(handler_module, name):
    status, _ = answer(handler_module, json.dumps({"variables": GOOD}), name=name)
    assert status in (200, 404)


# -- the corpus ----------------------------------------------------------------------------------
BAD_INPUTS = [
    # (body, prompt, status, code, a field named)
    ("{nope", NAME, 400, "invalid_request", "body"),
    ("", NAME, 400, "invalid_request", "body"),
    ("[]", NAME, 400, "invalid_request", "body"),
    ('"variables"', NAME, 400, "invalid_request", "body"),
    ("[" * 100_000, NAME, 400, "invalid_request", "body"),
    ('{"variables": {"customer": ' + "9" * 5000 + "}}", NAME, 400, "invalid_request", "body"),
    ('{"variables": []}', NAME, 400, "invalid_request", "variables"),
    ('{"variables": {}, "prompt": "other"}', NAME, 400, "invalid_request", "prompt"),
    ('{"assignment_key": "user-1"}', NAME, 400, "invalid_request", "variables"),
    ('{"variables": {}, "assignment_key": "' + "k" * 257 + '"}', NAME, 400, "invalid_request",
     "assignment_key"),
    ('{"variables": {}, "request_id": "' + "r" * 129 + '"}', NAME, 400, "invalid_request",
     "request_id"),
    ('{"variables": {}, "request_id": 7}', NAME, 400, "invalid_request", "request_id"),
    (json.dumps({"variables": {**GOOD, **{f"v{i}": 1 for i in range(101)}}}), NAME, 422,
     "invalid_variables", "variables.v100"),
    ('{"variables": {}}', NAME, 422, "invalid_variables", "variables.customer"),
    (json.dumps({"variables": {**GOOD, "customer": 42}}), NAME, 422, "invalid_variables",
     "variables.customer"),
    (json.dumps({"variables": {**GOOD, "ticket": "x" * 2001}}), NAME, 422, "invalid_variables",
     "variables.ticket"),
    (json.dumps({"variables": {**GOOD, "ticket": "a\u0000b"}}), NAME, 422, "invalid_variables",
     "variables.ticket"),
    (json.dumps({"variables": {**GOOD, "tone": "dry"}}), NAME, 422, "invalid_variables",
     "variables.tone"),
    (json.dumps({"variables": GOOD}), "nobody", 404, "prompt_not_found", None),
    (json.dumps({"variables": GOOD}), "Ticket_Summary", 404, "prompt_not_found", None),
    (json.dumps({"variables": GOOD}), "draft-only", 404, "no_champion", None),
]  # fmt: skip


@pytest.mark.parametrize(("body", "prompt", "status", "code", "field"), BAD_INPUTS)
def test_each_bad_input_gets_its_status_naming_the_field(
    handler_module, body, prompt, status, code, field
):
    got, payload = answer(handler_module, body, name=prompt)

    assert (got, payload["error"]["code"]) == (status, code)
    if field is not None:
        assert field in {p["field"] for p in payload["error"]["errors"]}


def test_a_body_larger_than_lambdas_payload_limit_is_a_413(handler_module):
    got, payload = answer(handler_module, json.dumps({"variables": {"ticket": "x" * 7_000_000}}))

    assert (got, payload["error"]["code"]) == (413, "payload_too_large")


def test_a_body_that_is_not_utf8_is_a_400(handler_module):
    raw = base64.b64encode(b'{"variables": {"customer": "\x80\xc0\xaf"}}').decode("ascii")

    got, payload = answer(handler_module, raw, isBase64Encoded=True)

    assert (got, payload["error"]["errors"][0]["field"]) == (400, "body")


def test_another_method_or_path_is_a_404(handler_module):
    got, _ = answer(handler_module, "{}", httpMethod="GET")
    assert got == 404
    got, payload = answer(handler_module, "{}", path="/v1/prompts/x/y/invoke")
    assert (got, payload["error"]["code"]) == (404, "not_found")
