"""``flywheel serve``'s gateway answers every error it makes itself in the API's error shape,
with a request id, as the Lambda handler does for the errors it makes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flywheel.local.api_gateway import LocalApiGateway, Target

PREDICT = "/v1/models/churn/predict"


@pytest.fixture
def gateway(tmp_path: Path) -> LocalApiGateway:
    (tmp_path / "crashing.py").write_text(
        "def handler(event, context):\n    raise RuntimeError('boom')\n"
    )
    served = LocalApiGateway(functions_dir=tmp_path, handler="crashing.handler")
    served.add_route("churn", [Target(version=1, weight=1.0)])
    return served


def _error(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, Any]]:
    status, headers, body = answer
    assert headers.get("Content-Type", "application/json") == "application/json"
    return status, json.loads(body)["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", PREDICT, 405, "method_not_allowed"),
        ("POST", "/v1/models/other/predict", 404, "model_not_found"),
        ("POST", PREDICT, 502, "bad_gateway"),
    ],
)
def test_gateway_errors_carry_a_request_id(
    gateway: LocalApiGateway, method: str, path: str, status: int, code: str
) -> None:
    answered, error = _error(gateway.handle(method, path, {}, b"{}"))

    assert (answered, error["code"]) == (status, code)
    assert len(error["request_id"]) == 36  # a UUID, as API Gateway's
    assert "boom" not in error["message"]


def test_each_request_gets_its_own_request_id(gateway: LocalApiGateway) -> None:
    first = _error(gateway.handle("GET", "/nowhere", {}, b""))[1]["request_id"]
    second = _error(gateway.handle("GET", "/nowhere", {}, b""))[1]["request_id"]

    assert first != second
