"""Every JSON route answers a body it cannot decode, or a path it does not serve, in the
documented error shape: ``{"error": {"code", "message", "request_id", "errors"?}}``."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from functions.approval_api import handler as approval_handler
from functions.feedback import handler as feedback_handler
from functions.inference import handler as inference_handler
from functions.llm_gateway import handler as llm_gateway_handler
from tests.asl_walker import FakeContext
from tests.workflow_support import event

#: Not UTF-8: a lone continuation byte and an overlong encoding.
NOT_UTF8 = b'{"record": {"x": "\x80\xc0\xaf"}}'
ROUTES = {
    "predict": (inference_handler, "predict_record.json"),
    "feedback": (feedback_handler, "feedback_batch.json"),
    "approvals": (approval_handler, "approval_api_decide.json"),
    "invoke": (llm_gateway_handler, "llm_invoke.json"),
}


@pytest.fixture(autouse=True)
def _metrics_namespace(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for module, _ in ROUTES.values():
        monkeypatch.setattr(module.metrics, "namespace", "FlywheelTests")


def _call(route: str, **replace: Any) -> tuple[int, dict[str, Any]]:
    module, sample = ROUTES[route]
    request = event(sample, **replace)
    response = module.handler(request, FakeContext(route))
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_body_that_is_not_utf8_is_a_400_naming_the_body(route: str) -> None:
    status, body = _call(
        route, body=base64.b64encode(NOT_UTF8).decode("ascii"), isBase64Encoded=True
    )

    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["errors"][0]["field"] == "body"
    assert "UTF-8" in body["error"]["message"]
    assert body["error"]["request_id"] == event(ROUTES[route][1])["requestContext"]["requestId"]


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_body_that_is_not_base64_when_flagged_so_is_a_400(route: str) -> None:
    status, body = _call(route, body="%%% not base64 %%%", isBase64Encoded=True)

    assert status == 400
    assert body["error"]["errors"][0]["field"] == "body"


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_an_unknown_path_is_a_404_with_the_request_id(route: str) -> None:
    status, body = _call(route, path="/v1/nowhere", resource="/v1/nowhere")

    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert "/v1/nowhere" in body["error"]["message"]
    assert body["error"]["request_id"] == event(ROUTES[route][1])["requestContext"]["requestId"]


@pytest.mark.parametrize("route", ["feedback", "approvals", "invoke"])
def test_a_list_holding_a_valid_body_is_a_400(route: str) -> None:
    sample = event(ROUTES[route][1])
    status, body = _call(route, body=f"[{sample['body']}]")

    assert status == 400
    assert body["error"]["errors"][0] == {
        "row": None,
        "field": "body",
        "reason": "must be an object",
    }
