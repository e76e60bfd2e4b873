"""Smoke tests of a stage's API: what CI runs after ``cdk deploy`` (``pytest -m deployed``).

Against a deployed stage they need ``FLYWHEEL_BACKEND=aws``, ``FLYWHEEL_STAGE`` and
credentials that may read the stage's platform record and call the retrain route (the
``GitHubDeployAccess`` role may); without them, against the local runtime
(``conftest.py``), reached the same way.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

if TYPE_CHECKING:
    from tests.deployed.conftest import StageUnderTest

pytestmark = pytest.mark.deployed


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def _signed(url: str, body: bytes, region: str) -> dict[str, str]:
    """The headers of ``POST url`` signed (SigV4, ``execute-api``) with the ambient credentials."""
    credentials = boto3.Session().get_credentials()
    assert credentials is not None
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def test_the_stage_describes_itself_with_its_api_and_workflows(
    stage: StageUnderTest, record: dict[str, Any]
) -> None:
    assert record["stage"] == stage.name
    assert record["api_url"].startswith("https://" if stage.deployed else "http://127.0.0.1:")
    assert set(record["state_machines"]) >= {"training", "promotion"}


def test_the_api_refuses_unsigned_requests(record: dict[str, Any]) -> None:
    status, body = _post(
        record["api_url"].rstrip("/") + "/v1/models/no-such-model/retrain",
        b'{"reason": "smoke test"}',
        {"Content-Type": "application/json"},
    )
    assert status == 403
    assert body["error"]["message"] == "Missing Authentication Token"


def test_the_api_refuses_a_body_changed_after_signing(record: dict[str, Any]) -> None:
    url = record["api_url"].rstrip("/") + "/v1/models/no-such-model/retrain"
    headers = _signed(url, b'{"reason": "smoke test"}', record["region"])
    status, body = _post(url, b'{"reason": "smoke test, changed"}', headers)
    assert status == 403
    assert "signature" in body["error"]["message"]


def test_a_signed_request_reaches_the_retrain_route(record: dict[str, Any]) -> None:
    from flywheel.adapters.api_client import HttpApi
    from flywheel.errors import ModelNotFoundError

    api = HttpApi(record["api_url"], session=boto3.Session(), region=record["region"])
    # A model nobody configured: the route's function answers (404), so auth and routing
    # work and nothing trains.
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        api.request_retrain("no-such-model", reason="smoke test")


def test_only_approvers_reach_the_approvals_route(record: dict[str, Any]) -> None:
    url = record["api_url"].rstrip("/") + "/v1/approvals/no-such-approval"
    body = json.dumps({"decision": "approve", "reason": "smoke test"}).encode()
    status, answer = _post(url, body, _signed(url, body, record["region"]))
    # CI is no approver: refused before the function (resource policy or IAM), 403.
    assert status == 403
    assert answer["error"]["code"] == "request_error"
