"""POST /v1/prompts/{name}/invoke: one call of a prompt through the LLM gateway.

Body ``{"variables": {...}, "assignment_key"?: "...", "request_id"?: "..."}``; the answer
names the version and variant that answered, the text (or the parsed ``output`` of a
version with an output schema), the tokens, the exact cost and the latency (see
:mod:`flywheel.gateway.service`). Errors, in the inference route's ``{"error": {...}}``
shape: 400 a malformed body (every bad field listed), 404 an unknown prompt or one
without a champion (``no_champion``), 422 variables that do not fit the version
(``variables.<name>``), 429 a budget without room (``Retry-After`` until its period
ends; nothing charged) or a provider still throttling after the retries, 502 a provider
error or an answer that failed the output schema after the one repair retry (the
problems listed), 503 a prompt's guardrail that could not judge the call
(``guardrail_unavailable``, when its policy blocks then), 504 the provider's timeout, 500
anything else (no details). A guardrail that blocks the input or the answer is not an
error: 200, the prompt's configured message as ``text`` and a ``guardrail`` object
(ADR 83).

Like the inference route, the body is parsed and validated once, by pydantic-core, and
the answer serialized once; the gateway (routing, specs, providers, capture writer) is
built once per execution environment.  The handler imports neither numpy nor ONNX
Runtime.
"""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from flywheel.adapters.emf_gateway import EmfGatewayMetrics
from flywheel.composition import AwsPlatform, check_environment
from flywheel.errors import BudgetExceededError, FlywheelError, NotFoundError
from flywheel.gateway.models import answer_json, parse_invoke_request
from flywheel.gateway.settings import GatewaySettings
from flywheel.serving import http

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.gateway.service import PromptGateway

INVOKE_ROUTE = "/v1/prompts/<name>/invoke"
INVOKE_SUMMARY = "Call a prompt"

app = APIGatewayRestResolver()
logger = Logger()
tracer = Tracer()
metrics = Metrics()


check_environment(GatewaySettings)


@functools.cache
def _gateway() -> PromptGateway:
    """Composition root, built once per execution environment from ``FLYWHEEL_*`` settings."""
    return AwsPlatform(GatewaySettings()).prompt_gateway(metrics=EmfGatewayMetrics(metrics))


@app.post(INVOKE_ROUTE)
def invoke(name: str) -> Response[str]:
    request = parse_invoke_request(http.body_text(app.current_event))
    if request.request_id is not None:
        app.context["request_id"] = request.request_id
    answer = _gateway().invoke(name, request, request_id=_request_id())
    return Response(status_code=200, content_type="application/json", body=answer_json(answer))


def _error(error: FlywheelError) -> Response[str]:
    status, body = http.error_response(error, request_id=_request_id())
    headers: dict[str, str] = {}
    if isinstance(error, BudgetExceededError):
        headers["Retry-After"] = str(error.retry_after)
    if status >= 500:
        logger.error("call failed", extra={"code": error.code}, exc_info=error)
    else:
        logger.info("call refused", extra={"code": error.code, "status": status})
    return Response(
        status_code=status,
        content_type="application/json",
        body=http.dumps(body),
        headers=headers or None,
    )


def _no_route(_missing: Exception) -> Response[str]:
    event = app.current_event
    return _error(NotFoundError(f"no route {event.http_method} {event.path}", field="path"))


def _unexpected(_error: Exception) -> Response[str]:
    logger.exception("unexpected error")
    status, body = http.internal_error_response(request_id=_request_id())
    return Response(status_code=status, content_type="application/json", body=http.dumps(body))


app.exception_handler(FlywheelError)(_error)
app.exception_handler(Exception)(_unexpected)
app.not_found(_no_route)


def _request_id() -> str:
    """The caller's ``request_id`` when the body named one, else API Gateway's."""
    chosen = app.context.get("request_id")
    if chosen is None:
        chosen = app.current_event.request_context.request_id or str(uuid.uuid4())
        app.context["request_id"] = chosen
    return str(chosen)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    return app.resolve(event, context)
