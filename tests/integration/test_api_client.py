"""The CLI and SDK call the deployed API as API Gateway expects: SigV4 for execute-api,
the route's path, a JSON body; the API's refusals come back as the same domain errors."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from flywheel.adapters.api_client import HttpApi, PlatformApiError
from flywheel.errors import ApproverNotAllowedError, ModelNotFoundError, UnauthenticatedError
from tests.local_support import free_port_pair

if TYPE_CHECKING:
    from collections.abc import Iterator


class Api:
    """A stand-in for API Gateway that records each request and answers what it is told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, dict[str, Any]] = (200, {})


@pytest.fixture
def api() -> Iterator[tuple[Api, str]]:
    state = Api()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
            )
            status, payload = state.answer
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port_pair()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/prod/"
    finally:
        server.shutdown()


def _session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1"
    )


def test_a_retrain_request_is_signed_for_execute_api_on_the_route(api: tuple[Api, str]) -> None:
    state, url = api
    state.answer = (202, {"model_name": "churn", "requested_by": "arn:x", "event_id": "e-1"})

    receipt = HttpApi(url, session=_session(), region="eu-west-1").request_retrain(
        "churn", reason="new labels"
    )

    assert receipt["event_id"] == "e-1"
    [sent] = state.requests
    assert sent["path"] == "/prod/v1/models/churn/retrain"
    assert sent["body"] == {"reason": "new labels"}
    authorization = sent["headers"]["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert "X-Amz-Date" in sent["headers"]


def test_a_decision_goes_to_its_approval_and_a_refusal_is_the_same_error(
    api: tuple[Api, str],
) -> None:
    state, url = api
    state.answer = (
        403,
        {"error": {"code": "approver_not_allowed", "message": "you asked for this run"}},
    )

    with pytest.raises(ApproverNotAllowedError, match="you asked for this run"):
        HttpApi(url, session=_session(), region="eu-west-1").decide(
            "a/1", decision="approve", reason="ok"
        )

    assert state.requests[0]["path"] == "/prod/v1/approvals/a%2F1"  # one path segment
    assert state.requests[0]["body"] == {"decision": "approve", "reason": "ok"}


def test_an_unknown_model_is_the_apis_404(api: tuple[Api, str]) -> None:
    state, url = api
    state.answer = (404, {"error": {"code": "model_not_found", "message": "no config"}})

    with pytest.raises(ModelNotFoundError):
        HttpApi(url, session=_session(), region="eu-west-1").request_retrain("x", reason="r")


def test_an_answer_without_an_error_body_still_says_the_status(api: tuple[Api, str]) -> None:
    state, url = api
    state.answer = (502, {})

    with pytest.raises(PlatformApiError, match="answered 502"):
        HttpApi(url, session=_session(), region="eu-west-1").request_retrain("x", reason="r")


def test_an_unreachable_api_and_missing_credentials_are_clear() -> None:
    port = free_port_pair()  # nothing listens there
    with pytest.raises(PlatformApiError, match="unreachable"):
        HttpApi(f"http://127.0.0.1:{port}", session=_session(), region="eu-west-1").decide(
            "a-1", decision="approve", reason="ok"
        )

    class NoCredentials:
        def get_credentials(self) -> None:
            return None

    with pytest.raises(UnauthenticatedError):
        HttpApi("http://127.0.0.1:1", session=NoCredentials(), region="eu-west-1").decide(  # type: ignore[arg-type]
            "a-1", decision="approve", reason="ok"
        )
