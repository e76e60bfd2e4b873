"""Error bodies API Gateway writes itself: valid JSON, the handlers' error shape.

Gateway response templates are not VTL: API Gateway substitutes ``$context`` variables
as text and evaluates nothing else. ``$context.error.messageString`` is substituted as
a quoted JSON string, ``$context.error.message`` and
``$context.error.validationErrorString`` as they are (they may hold double quotes).
Each template of the synthesized API is rendered that way with hostile sample values.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from flywheel.serving.models import ErrorBody

if TYPE_CHECKING:
    from tests.infra.synth import Synth

SERVING = "FlywheelServing"
REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
#: What API Gateway's own messages can look like (quotes and backslashes included).
MESSAGES = [
    "Invalid request body",
    "Missing Authentication Token",
    'The request signature we calculated does not match "the one" you sent \\ (SigV4)',
]
VALIDATION_ERROR = '[object has missing required properties (["reason"])]'


def _context(message: str) -> dict[str, str]:
    """``$context`` variable -> the text API Gateway puts in its place."""
    return {
        "$context.error.messageString": json.dumps(message),
        "$context.error.message": message,
        "$context.error.validationErrorString": VALIDATION_ERROR,
        "$context.error.responseType": "BAD_REQUEST_BODY",
        "$context.requestId": REQUEST_ID,
        "$context.extendedRequestId": "Kq2ZPHwLoAMFjZw=",
        "$context.stage": "dev",
        "$context.resourcePath": "/v1/feedback",
        "$context.httpMethod": "POST",
    }


def render(template: str, message: str) -> str:
    """Substitute ``$context`` variables textually, longest name first, as API Gateway does."""
    values = _context(message)
    names = sorted(values, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(name) for name in names))
    leftover = pattern.sub("", template)
    assert "$" not in leftover, f"not a $context variable API Gateway substitutes: {template}"
    return pattern.sub(lambda m: values[m.group(0)], template)


def _gateway_templates(synth: Synth) -> dict[str, tuple[str | None, str]]:
    found = {}
    for response in synth.resources("AWS::ApiGateway::GatewayResponse", SERVING).values():
        props = response["Properties"]
        assert set(props["ResponseTemplates"]) == {"application/json"}, props
        found[props["ResponseType"]] = (
            props.get("StatusCode"),
            props["ResponseTemplates"]["application/json"],
        )
    return found


def _assert_error_shape(body: dict[str, Any], message: str | None) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", body["error"]["code"])
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    if message is not None:
        assert body["error"]["message"] == message
    assert body["error"]["request_id"] == REQUEST_ID
    ErrorBody.model_validate(body)  # what the OpenAPI document promises


def test_the_4xx_5xx_and_validation_responses_are_all_customised(synth: Synth) -> None:
    templates = _gateway_templates(synth)
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "BAD_REQUEST_BODY", "BAD_REQUEST_PARAMETERS"} <= set(
        templates
    )
    assert templates["BAD_REQUEST_BODY"][0] == "400"
    assert templates["REQUEST_TOO_LARGE"][0] == "413"
    assert templates["THROTTLED"][0] == "429"


@pytest.mark.parametrize("message", MESSAGES)
def test_every_gateway_response_renders_to_the_handlers_error_shape(
    synth: Synth, message: str
) -> None:
    for response_type, (_, template) in _gateway_templates(synth).items():
        text = render(template, message)
        try:
            body = json.loads(text)
        except json.JSONDecodeError as err:
            pytest.fail(f"{response_type} renders invalid JSON ({err}): {text}")
        _assert_error_shape(body, None)
        if "messageString" in template:
            assert body["error"]["message"] == message, response_type


def test_codes_match_the_handlers_codes_for_the_same_failure(synth: Synth) -> None:
    codes = {
        response_type: json.loads(render(template, "x"))["error"]["code"]
        for response_type, (_, template) in _gateway_templates(synth).items()
    }
    assert codes["BAD_REQUEST_BODY"] == codes["BAD_REQUEST_PARAMETERS"] == "invalid_request"
    assert codes["REQUEST_TOO_LARGE"] == "payload_too_large"
    assert codes["DEFAULT_5XX"] == "internal_error"


def test_the_unknown_model_answer_is_the_same_shape(synth: Synth) -> None:
    mocks = [
        m["Properties"]["Integration"]
        for m in synth.resources("AWS::ApiGateway::Method", SERVING).values()
        if m["Properties"]["Integration"]["Type"] == "MOCK"
    ]
    assert mocks
    for integration in mocks:
        (answer,) = integration["IntegrationResponses"]
        assert answer["StatusCode"] == "404"
        body = json.loads(render(answer["ResponseTemplates"]["application/json"], "x"))
        _assert_error_shape(body, "no model is served under this name")
        assert body["error"]["code"] == "model_not_found"


def test_the_renderer_refuses_what_api_gateway_would_not_evaluate() -> None:
    # Control: the old BAD_REQUEST_BODY template, with a VTL call API Gateway prints
    # verbatim and a validation string that breaks the JSON.
    old = (
        '{"error": {"code": "invalid_request", '
        '"message": "$util.escapeJavaScript($context.error.validationErrorString)"}}'
    )
    with pytest.raises(AssertionError, match="not a \\$context variable"):
        render(old, "x")
    quoted_twice = '{"error": {"message": "$context.error.messageString"}}'
    with pytest.raises(json.JSONDecodeError):
        json.loads(render(quoted_twice, "Forbidden"))
