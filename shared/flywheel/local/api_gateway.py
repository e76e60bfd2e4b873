"""A local stand-in for API Gateway + Lambda alias ``live``, behind ``flywheel serve``.

HTTP requests on localhost become API Gateway REST proxy events and run the
real inference handler in this process.  Each registered model has weighted
*targets*, one per published "Lambda version" (pinned to one model version by
its environment, as in AWS); a request goes to one target chosen by weight,
just as alias routing does.  Invocations are serialized, as one Lambda
execution environment runs one request at a time, and each runs with its
target's environment variables set.

Examples
--------
>>> from pathlib import Path
>>> gateway = LocalApiGateway(functions_dir=Path("functions"))
>>> gateway.add_route("churn", [Target(version=3, weight=0.9), Target(version=4, weight=0.1)])
>>> status, _, body = gateway.handle("GET", "/nowhere", {}, b"")
>>> status, json.loads(body)["error"]["code"]
(404, 'not_found')
"""

from __future__ import annotations

import base64
import importlib
import json
import random
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

from flywheel.local.bridge import scoped_environment

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

__all__ = [
    "DEFAULT_HANDLER",
    "MAX_BODY_BYTES",
    "HttpGateway",
    "LocalApiGateway",
    "Target",
    "make_server",
    "rest_proxy_event",
    "targets_for",
]

DEFAULT_HANDLER = "inference.handler.handler"
#: Lambda refuses synchronous payloads above 6 MB; so does the local gateway (413).
MAX_BODY_BYTES = 6 * 1024 * 1024
RESOURCE = "/v1/models/{name}/predict"
_PREDICT_PATH = re.compile(r"^/v1/models/(?P<name>[^/]+)/predict/?$")

Response = tuple[int, dict[str, str], bytes]


class HttpGateway(Protocol):
    """What :func:`make_server` serves: one HTTP request in, ``(status, headers, body)`` out."""

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Response: ...


@dataclass(frozen=True)
class Target:
    """One published version behind the alias: its model version, weight and extra env."""

    version: int
    weight: float
    environment: Mapping[str, str] = field(default_factory=dict)


class _Context:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, version: int) -> None:
        self.function_name = function_name
        self.function_version = str(version)
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}:live"
        )
        self.memory_limit_in_mb = 1024
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


class LocalApiGateway:
    """Routes ``POST /v1/models/{name}/predict`` to weighted in-process handlers.

    Parameters
    ----------
    functions_dir
        The ``functions/`` code asset (put on ``sys.path`` like Lambda's task root).
    handler
        The handler string, as configured on the function.
    environment
        Variables every target gets (resource names, endpoint, Powertools).
    rng
        Chooses targets by weight (seed it for reproducible routing).
    """

    def __init__(
        self,
        *,
        functions_dir: Path,
        handler: str = DEFAULT_HANDLER,
        environment: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
        stage: str = "local",
    ) -> None:
        self.functions_dir = functions_dir
        self.handler = handler
        self.environment = dict(environment or {})
        self.stage = stage
        self.routes: dict[str, list[Target]] = {}
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._handler_fn: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None

    def add_route(self, model: str, targets: list[Target]) -> None:
        """Serve ``model`` from ``targets`` (weights are normalized)."""
        if not targets or sum(t.weight for t in targets) <= 0:
            raise ValueError(f"model {model!r} needs at least one target with a weight")
        self.routes[model] = targets

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one HTTP request: ``(status, headers, body)``."""
        route, _, query = path.partition("?")
        request_id = str(uuid.uuid4())
        match = _PREDICT_PATH.match(route)
        if match is None:
            return _json(404, "not_found", f"no route {method} {route}", request_id)
        if method != "POST":
            return _json(405, "method_not_allowed", f"use POST on {route}", request_id)
        name = match.group("name")
        targets = self.routes.get(name)
        if targets is None:
            return _json(404, "model_not_found", f"model {name!r} is not served here", request_id)
        if len(body) > MAX_BODY_BYTES:
            message = f"the body is larger than {MAX_BODY_BYTES} bytes"
            return _json(413, "payload_too_large", message, request_id)
        target = self._choose(targets)
        event = rest_proxy_event(
            method,
            route,
            query,
            headers,
            body,
            path_parameters={"name": name},
            stage=self.stage,
            request_id=request_id,
        )
        result = self._invoke(name, target, event)
        return _to_http(result, target)

    # -- internals ---------------------------------------------------------------------------
    def _choose(self, targets: list[Target]) -> Target:
        if len(targets) == 1:
            return targets[0]
        return self._rng.choices(targets, weights=[t.weight for t in targets])[0]

    def _invoke(self, name: str, target: Target, event: dict[str, Any]) -> dict[str, Any]:
        environment = {
            **self.environment,
            "FLYWHEEL_MODEL_NAME": name,
            "FLYWHEEL_MODEL_VERSION": str(target.version),
            **target.environment,
        }
        with self._lock, scoped_environment(environment):
            try:
                return self._load()(event, _Context(f"flywheel-{name}", target.version))
            except Exception:  # a crashed invocation is API Gateway's 502
                request_id = event["requestContext"]["requestId"]
                body = _error_body("bad_gateway", "internal error", request_id)
                return {"statusCode": 502, "body": body}

    def _load(self) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        if self._handler_fn is None:
            root = str(self.functions_dir.resolve())
            if root not in sys.path:
                sys.path.insert(0, root)
            module_name, _, attribute = self.handler.rpartition(".")
            self._handler_fn = getattr(importlib.import_module(module_name), attribute)
        return self._handler_fn


def targets_for(
    champion: int, challenger: int | None, *, canary_weight: float, shadow: bool = False
) -> list[Target]:
    """The alias routing for a model: champion, plus the challenger as canary or shadow.

    Examples
    --------
    >>> [(t.version, t.weight) for t in targets_for(3, 4, canary_weight=0.1)]
    [(3, 0.9), (4, 0.1)]
    >>> shadowed = targets_for(3, 4, canary_weight=0.1, shadow=True)
    >>> [(t.version, dict(t.environment)) for t in shadowed]
    [(3, {'FLYWHEEL_SHADOW_VERSION': '4'})]
    """
    if challenger is None or challenger == champion:
        return [Target(version=champion, weight=1.0)]
    if shadow:
        return [
            Target(
                version=champion,
                weight=1.0,
                environment={"FLYWHEEL_SHADOW_VERSION": str(challenger)},
            )
        ]
    if not 0.0 <= canary_weight <= 1.0:
        raise ValueError("canary_weight must be between 0 and 1")
    return [
        Target(version=champion, weight=round(1.0 - canary_weight, 6)),
        Target(version=challenger, weight=canary_weight),
    ]


def rest_proxy_event(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    path_parameters: dict[str, str],
    stage: str = "local",
    request_id: str | None = None,
    resource: str = RESOURCE,
    identity: Mapping[str, str | None] | None = None,
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, as Lambda receives it.

    ``resource`` is the route's resource path; ``identity`` adds the caller's fields to
    ``requestContext.identity`` (what IAM auth fills in: ``userArn``, ``caller``, ...).

    Examples
    --------
    >>> event = rest_proxy_event(
    ...     "POST", "/v1/models/churn/predict", "", {"Content-Type": "application/json"},
    ...     b"{}", path_parameters={"name": "churn"},
    ... )
    >>> event["resource"], event["requestContext"]["resourcePath"], event["body"]
    ('/v1/models/{name}/predict', '/v1/models/{name}/predict', '{}')
    """
    now = datetime.now(tz=UTC)
    try:
        text: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    params: dict[str, list[str]] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        params.setdefault(key, []).append(value)
    request_id = request_id or str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in params.items()} or None,
        "multiValueQueryStringParameters": params or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "accountId": account_id,
            "apiId": "local",
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "path": f"/{stage}{path}",
            "stage": stage,
            "protocol": "HTTP/1.1",
            "domainName": "localhost",
            "identity": {
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", headers.get("user-agent", "")),
                **(identity or {}),
            },
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def make_server(gateway: HttpGateway, host: str = "127.0.0.1", port: int = 8080) -> Any:
    """A threaded HTTP server in front of ``gateway`` (call ``serve_forever()``).

    Examples
    --------
    >>> from pathlib import Path
    >>> server = make_server(LocalApiGateway(functions_dir=Path("functions")), port=0)
    >>> server.server_address[0]
    '127.0.0.1'
    >>> server.server_close()
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "flywheel-local"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                message = f"the body is larger than {MAX_BODY_BYTES} bytes"
                status, headers, body = _json(413, "payload_too_large", message, str(uuid.uuid4()))
                self.close_connection = True
            else:
                data = self.rfile.read(length) if length else b""
                status, headers, body = gateway.handle(
                    self.command, self.path, dict(self.headers.items()), data
                )
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def __getattr__(self, name: str) -> Any:
            # http.server dispatches on do_<METHOD>; every method gets a JSON answer.
            if name.startswith("do_"):
                return self._answer
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{time.strftime('%H:%M:%S')} {format % args}\n")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _to_http(result: dict[str, Any], target: Target) -> Response:
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(key)] = ", ".join(str(v) for v in values)
    headers.setdefault("Content-Type", "application/json")
    headers["X-Flywheel-Function-Version"] = str(target.version)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
    return int(result.get("statusCode", 502)), headers, body


def _json(status: int, code: str, message: str, request_id: str) -> Response:
    body = _error_body(code, message, request_id).encode()
    return status, {"Content-Type": "application/json"}, body


def _error_body(code: str, message: str, request_id: str) -> str:
    return json.dumps({"error": {"code": code, "message": message, "request_id": request_id}})
