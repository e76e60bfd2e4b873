"""The platform's API as the CLI and SDK call it: decisions and retrain requests are made
by the API's functions, never in-process.

In AWS a call is a SigV4-signed request to the stage's REST API (the caller's IAM
identity is who acts); on the local runtime the route's function is invoked with the REST
event API Gateway would send, carrying the named actor as the caller.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import FlywheelError, UnauthenticatedError, error_from_dict

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import boto3
    from mypy_boto3_lambda import LambdaClient

__all__ = [
    "APPROVALS",
    "CONFIG",
    "PREDICT",
    "PROMOTIONS",
    "PROMPT_VERSIONS",
    "RETRAIN",
    "HttpApi",
    "LambdaApi",
    "PlatformApiError",
]

#: The routes the clients call: API Gateway's resource paths.
APPROVALS = "/v1/approvals/{id}"
RETRAIN = "/v1/models/{name}/retrain"
PREDICT = "/v1/models/{name}/predict"
PROMOTIONS = "/v1/models/{name}/promotions"
CONFIG = "/v1/models/{name}/config"
PROMPT_VERSIONS = "/v1/prompts/{name}/versions"


class PlatformApiError(FlywheelError):
    code = "platform_api_unavailable"


def _answer(status: int, body: bytes) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = json.loads(body or b"{}")
    except ValueError:
        payload = {}
    if status >= 400:
        error = payload.get("error") or {
            "code": PlatformApiError.code,
            "message": f"the platform's API answered {status}",
        }
        raise error_from_dict(error)
    return payload


def _path(resource: str, parameters: Mapping[str, str]) -> str:
    """``resource`` with its ``{name}`` parts filled in, each URL-quoted.

    Examples
    --------
    >>> _path("/v1/models/{name}/retrain", {"name": "churn"})
    '/v1/models/churn/retrain'
    """
    path = resource
    for key, value in parameters.items():
        path = path.replace("{" + key + "}", urllib.parse.quote(value, safe=""))
    return path


class _Routes:
    """What the platform's API offers a client; ``post`` is the transport."""

    def post(
        self, resource: str, parameters: Mapping[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        raise NotImplementedError

    def decide(self, approval_id: str, *, decision: str, reason: str) -> dict[str, Any]:
        """``POST /v1/approvals/{id}``: approve or reject as the caller."""
        return self.post(APPROVALS, {"id": approval_id}, {"decision": decision, "reason": reason})

    def request_retrain(
        self, model: str, *, reason: str, code_version: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/models/{name}/retrain``: ask for a training run as the caller."""
        body = {"reason": reason}
        if code_version is not None:
            body["code_version"] = code_version
        return self.post(RETRAIN, {"name": model}, body)

    def request_promotion(self, model: str, *, version: int, reason: str) -> dict[str, Any]:
        """``POST /v1/models/{name}/promotions``: ask the promotion workflow for ``version``."""
        return self.post(PROMOTIONS, {"name": model}, {"version": version, "reason": reason})

    def store_config(self, model: str, config: Mapping[str, Any], *, reason: str) -> dict[str, Any]:
        """``POST /v1/models/{name}/config``: store ``model``'s workflow config as the caller
        (unchanged configs are not written again)."""
        return self.post(CONFIG, {"name": model}, {"config": dict(config), "reason": reason})

    def register_prompt(
        self,
        prompt: str,
        spec: Mapping[str, Any],
        *,
        reason: str,
        evaluation_set: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/prompts/{name}/versions``: register ``spec`` (with the lines of the
        evaluation set it names) as a version of ``prompt`` and ask for its approval as
        the caller (the spec the latest version holds is not registered again)."""
        body: dict[str, Any] = {"spec": dict(spec), "reason": reason}
        if evaluation_set is not None:
            body["evaluation_set"] = list(evaluation_set)
        return self.post(PROMPT_VERSIONS, {"name": prompt}, body)

    def predict(
        self, model: str, records: Sequence[Mapping[str, Any]], *, explain: bool = False
    ) -> dict[str, Any]:
        """``POST /v1/models/{name}/predict``: score ``records`` on the model's alias ``live``
        (the answer names the ``version`` that scored them)."""
        body: dict[str, Any] = {"records": [dict(r) for r in records]}
        if explain:
            body["explain"] = True
        return self.post(PREDICT, {"name": model}, body)


class HttpApi(_Routes):
    """The stage's REST API, each request signed with the caller's AWS credentials.

    Examples
    --------
    >>> api = HttpApi("https://abc.execute-api.eu-west-1.amazonaws.com/prod",
    ...               session=boto3.Session(), region="eu-west-1")  # doctest: +SKIP
    >>> api.decide("9a1f…", decision="approve", reason="reviewed")["status"]  # doctest: +SKIP
    'approved'
    """

    def __init__(self, api_url: str, *, session: boto3.Session, region: str) -> None:
        self._url = api_url.rstrip("/")
        self._session = session
        self._region = region

    def post(
        self, resource: str, parameters: Mapping[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        credentials = self._session.get_credentials()
        if credentials is None:
            raise UnauthenticatedError("no AWS credentials to sign the request with")
        data = json.dumps(body).encode()
        request = AWSRequest(
            method="POST",
            url=f"{self._url}{_path(resource, parameters)}",
            data=data,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self._region).add_auth(
            request
        )
        prepared = urllib.request.Request(
            str(request.url), data=data, headers=dict(request.headers.items()), method="POST"
        )
        try:
            with urllib.request.urlopen(prepared, timeout=30) as answer:
                return _answer(answer.status, answer.read())
        except urllib.error.HTTPError as err:
            return _answer(err.code, err.read())
        except (urllib.error.URLError, OSError) as err:
            raise PlatformApiError(f"the platform's API at {self._url} is unreachable") from err


class LambdaApi(_Routes):
    """The local runtime's stand-in for API Gateway: invoke the route's function with the
    REST proxy event, the actor as the caller's IAM identity.

    ``functions`` maps each route (:data:`APPROVALS`, :data:`RETRAIN`) to its function.
    """

    def __init__(self, functions: Mapping[str, str], *, actor: str, client: LambdaClient) -> None:
        self._functions = dict(functions)
        self._actor = actor
        self._client = client

    def post(
        self, resource: str, parameters: Mapping[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        function = self._functions.get(resource)
        if function is None:
            raise PlatformApiError(f"the local runtime has no function for {resource}")
        path = _path(resource, parameters)
        event = {
            "resource": resource,
            "path": path,
            "httpMethod": "POST",
            "headers": {"Content-Type": "application/json"},
            "pathParameters": dict(parameters),
            "body": json.dumps(body),
            "isBase64Encoded": False,
            "requestContext": {
                "resourcePath": resource,
                "httpMethod": "POST",
                "path": path,
                "requestId": f"local-{path.strip('/').replace('/', '-')}",
                "identity": {"userArn": self._actor},
            },
        }
        try:
            answer = self._client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
            payload = json.loads(answer["Payload"].read() or b"{}")
        except (ClientError, BotoCoreError, ValueError) as err:
            raise PlatformApiError(f"{function} could not be invoked") from err
        if answer.get("FunctionError"):
            raise PlatformApiError(f"{function} failed")
        return _answer(int(payload.get("statusCode", 500)), str(payload.get("body", "")).encode())
