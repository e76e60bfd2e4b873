"""POST /v1/models/{name}/predict: score records with this function's pinned model version.

The route runs on a Powertools REST resolver without its OpenAPI validation
middleware: the body is parsed and validated once, by the same ``PredictRequest``
model, in :func:`flywheel.serving.http.parse_predict_request` (pydantic-core's JSON
parser), and the answer is serialized once by ``PredictResponse``.  The middleware
would do the same work through generic machinery for ≈ 100 µs a request, more than
validating and scoring a row (``bench/serving.py``; ADR 0021).  The OpenAPI
document is still generated from a Powertools resolver: :func:`openapi_app` declares
the same route with its typed body and answer, and a test keeps the two in step.  The
document also describes the API's prompts route, which the LLM gateway serves.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from flywheel.adapters.emf_metrics import EmfServingMetrics
from flywheel.composition import AwsPlatform, check_environment
from flywheel.errors import FlywheelError, NotFoundError
from flywheel.serving import http
from flywheel.serving.settings import ServingSettings, environment_pin

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.serving.service import InferenceService

PREDICT_ROUTE = "/v1/models/<name>/predict"
PREDICT_SUMMARY = "Score records"

app = APIGatewayRestResolver()
logger = Logger()
metrics = Metrics()


check_environment(ServingSettings)


@functools.cache
def _service_for(_pin: tuple[str | None, ...]) -> InferenceService:
    """Composition root: one service per pinned environment (in Lambda: exactly one)."""
    settings = ServingSettings()
    return AwsPlatform(settings).inference_service(settings, metrics=EmfServingMetrics(metrics))


def _service() -> InferenceService:
    return _service_for(environment_pin())


@app.post(PREDICT_ROUTE)
def predict(name: str) -> Response[str]:
    text = http.body_text(app.current_event)
    request = http.parse_predict_request(text)
    answer = _service().predict(name, request, request_id=_request_id(), body=text)
    return Response(status_code=200, content_type="application/json", body=answer.model_dump_json())


def _error(error: FlywheelError) -> Response[str]:
    status, body = http.error_response(error, request_id=_request_id())
    if status >= 500:
        logger.error("request failed", extra={"code": error.code}, exc_info=error)
    if http.raised_before_service(error):
        with contextlib.suppress(FlywheelError):  # a model that cannot load is a 503 already
            _service().rejected(error.code)
    return Response(status_code=status, content_type="application/json", body=http.dumps(body))


def _no_route(_missing: Exception) -> Response[str]:
    event = app.current_event
    return _error(NotFoundError(f"no route {event.http_method} {event.path}", field="path"))


def _unexpected(_error: Exception) -> Response[str]:
    logger.exception("unexpected error")
    with contextlib.suppress(FlywheelError):
        _service().failed(http.INTERNAL_ERROR_CODE)
    status, body = http.internal_error_response(request_id=_request_id())
    return Response(status_code=status, content_type="application/json", body=http.dumps(body))


app.exception_handler(FlywheelError)(_error)
app.exception_handler(Exception)(_unexpected)
app.not_found(_no_route)


def _request_id() -> str:
    return app.current_event.request_context.request_id or str(uuid.uuid4())


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    return app.resolve(event, context)


if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
    # SnapStart (ADR 0021): load and verify the pinned model during the init phase
    # Lambda snapshots when the version is published, so environments resumed from
    # the snapshot answer their first request without fetching anything.  A failure
    # here is left for the first request to report (503, counted).
    with contextlib.suppress(Exception):
        _service()


def openapi_app() -> APIGatewayRestResolver:
    """The API as documentation: the same route, declared with its typed body and answer,
    the prompts route (``POST /v1/prompts/{name}/invoke``, the LLM gateway's) and the
    prompt registration route (``POST /v1/prompts/{name}/versions``, its own function's).

    ``docs/openapi.json`` is ``openapi_app().get_openapi_json_schema(**http.OPENAPI_INFO)``.
    """
    from flywheel.llm.invocation import INVOKE_ROUTE, InvokeRequest, InvokeResponse
    from flywheel.llm.registration import (
        VERSIONS_ROUTE,
        PromptVersionReceipt,
        PromptVersionRequest,
    )
    from flywheel.serving.models import PredictRequest, PredictResponse

    documented = APIGatewayRestResolver(enable_validation=True)

    def predict_contract(name: str, body: PredictRequest) -> PredictResponse:  # pragma: no cover
        raise NotImplementedError  # documentation only: requests go to ``predict``

    # Real objects, not postponed annotation strings: Powertools reads them.
    predict_contract.__annotations__ = {
        "name": str,
        "body": PredictRequest,
        "return": PredictResponse,
    }
    predict_contract.__name__ = "predict"
    responses = cast("dict[int, OpenAPIResponse]", http.PREDICT_RESPONSES)
    documented.post(PREDICT_ROUTE, summary=PREDICT_SUMMARY, responses=responses)(predict_contract)

    def invoke_contract(name: str, body: InvokeRequest) -> InvokeResponse:  # pragma: no cover
        raise NotImplementedError  # documentation only: the LLM gateway answers the route

    invoke_contract.__annotations__ = {
        "name": str,
        "body": InvokeRequest,
        "return": InvokeResponse,
    }
    invoke_contract.__name__ = "invoke_prompt"
    documented.post(
        INVOKE_ROUTE,
        summary="Call a prompt",
        responses=cast("dict[int, OpenAPIResponse]", http.INVOKE_RESPONSES),
    )(invoke_contract)

    def versions_contract(
        name: str, body: PromptVersionRequest
    ) -> PromptVersionReceipt:  # pragma: no cover
        raise NotImplementedError  # documentation only: the prompt registration function

    versions_contract.__annotations__ = {
        "name": str,
        "body": PromptVersionRequest,
        "return": PromptVersionReceipt,
    }
    versions_contract.__name__ = "register_prompt_version"
    documented.post(
        VERSIONS_ROUTE,
        summary="Register a prompt version",
        responses=cast("dict[int, OpenAPIResponse]", http.PROMPT_VERSION_RESPONSES),
    )(versions_contract)
    return documented
