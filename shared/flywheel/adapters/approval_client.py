"""Deciding an approval the way the API does: the CLI and SDK never decide in-process.

In AWS the decision is a SigV4-signed ``POST /v1/approvals/{id}`` (the caller's IAM
identity is the approver); on the local runtime the approval function is invoked with
the REST event API Gateway would send, carrying the named actor.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import FlywheelError, UnauthenticatedError, error_from_dict

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_lambda import LambdaClient

__all__ = ["HttpApprovalGateway", "LambdaApprovalGateway"]


class ApprovalGatewayError(FlywheelError):
    code = "approval_api_unavailable"


def _answer(status: int, body: bytes) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = json.loads(body or b"{}")
    except ValueError:
        payload = {}
    if status >= 400:
        error = payload.get("error") or {
            "code": "approval_api_unavailable",
            "message": f"the approval API answered {status}",
        }
        raise error_from_dict(error)
    return payload


class HttpApprovalGateway:
    """``POST {api_url}/v1/approvals/{id}``, signed with the caller's AWS credentials.

    Examples
    --------
    >>> gateway = HttpApprovalGateway("https://abc.execute-api.eu-west-1.amazonaws.com/prod",
    ...                               session=boto3.Session(), region="eu-west-1")  # doctest: +SKIP
    >>> gateway.decide("9a1f…", decision="approve", reason="reviewed")["status"]  # doctest: +SKIP
    'approved'
    """

    def __init__(self, api_url: str, *, session: boto3.Session, region: str) -> None:
        self._url = api_url.rstrip("/")
        self._session = session
        self._region = region

    def decide(self, approval_id: str, *, decision: str, reason: str) -> dict[str, Any]:
        credentials = self._session.get_credentials()
        if credentials is None:
            raise UnauthenticatedError("no AWS credentials to sign the request with")
        body = json.dumps({"decision": decision, "reason": reason}).encode()
        request = AWSRequest(
            method="POST",
            url=f"{self._url}/v1/approvals/{approval_id}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self._region).add_auth(
            request
        )
        prepared = urllib.request.Request(
            str(request.url), data=body, headers=dict(request.headers.items()), method="POST"
        )
        try:
            with urllib.request.urlopen(prepared, timeout=30) as answer:
                return _answer(answer.status, answer.read())
        except urllib.error.HTTPError as err:
            return _answer(err.code, err.read())
        except (urllib.error.URLError, OSError) as err:
            raise ApprovalGatewayError(f"the approval API at {self._url} is unreachable") from err


class LambdaApprovalGateway:
    """The local runtime's stand-in for API Gateway: invoke the approval function with the
    REST proxy event, the actor as the caller's IAM identity."""

    def __init__(self, function: str, *, actor: str, client: LambdaClient) -> None:
        self._function = function
        self._actor = actor
        self._client = client

    def decide(self, approval_id: str, *, decision: str, reason: str) -> dict[str, Any]:
        path = f"/v1/approvals/{approval_id}"
        event = {
            "resource": "/v1/approvals/{id}",
            "path": path,
            "httpMethod": "POST",
            "headers": {"Content-Type": "application/json"},
            "pathParameters": {"id": approval_id},
            "body": json.dumps({"decision": decision, "reason": reason}),
            "isBase64Encoded": False,
            "requestContext": {
                "resourcePath": "/v1/approvals/{id}",
                "httpMethod": "POST",
                "path": path,
                "requestId": f"local-{approval_id}",
                "identity": {"userArn": self._actor},
            },
        }
        try:
            answer = self._client.invoke(
                FunctionName=self._function, Payload=json.dumps(event).encode()
            )
            payload = json.loads(answer["Payload"].read() or b"{}")
        except (ClientError, BotoCoreError, ValueError) as err:
            raise ApprovalGatewayError("the approval function could not be invoked") from err
        if answer.get("FunctionError"):
            raise ApprovalGatewayError("the approval function failed")
        return _answer(int(payload.get("statusCode", 500)), str(payload.get("body", "")).encode())
