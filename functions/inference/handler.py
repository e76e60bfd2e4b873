"""POST /v1/models/{name}/predict: score records with this function's pinned model version."""

from __future__ import annotations

import contextlib
import functools
import uuid
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths

from flywheel.adapters.emf_metrics import EmfServingMetrics
from flywheel.errors import FlywheelError, InvalidRequestError
from flywheel.serving import http
from flywheel.serving.bootstrap import build_inference_service

# Runtime imports: Powertools reads the route's annotations to validate and document it.
from flywheel.serving.models import ErrorBody, PredictRequest, PredictResponse  # noqa: TC001
from flywheel.serving.settings import ServingSettings, environment_pin

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.serving.service import InferenceService

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=http.parse_json_body)
logger = Logger()
tracer = Tracer()
metrics = Metrics()


@functools.cache
def _service_for(_pin: tuple[str | None, ...]) -> InferenceService:
    """Composition root: one service per pinned environment (in Lambda: exactly one)."""
    return build_inference_service(ServingSettings(), metrics=EmfServingMetrics(metrics))


def _service() -> InferenceService:
    return _service_for(environment_pin())


@app.post("/v1/models/<name>/predict", summary="Score records", responses=http.PREDICT_RESPONSES)
def predict(name: str, body: PredictRequest) -> PredictResponse:
    return _service().predict(name, body, request_id=_request_id())


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response[ErrorBody]:
    problems = http.envelope_problems(error.errors())
    return _error(InvalidRequestError("the request body is invalid", details={"errors": problems}))


@app.exception_handler(FlywheelError)
def _error(error: FlywheelError) -> Response[ErrorBody]:
    status, body = http.error_response(error, request_id=_request_id())
    if status >= 500:
        logger.error("request failed", extra={"code": error.code}, exc_info=error)
    if http.raised_before_service(error):
        with contextlib.suppress(FlywheelError):  # a model that cannot load is a 503 already
            _service().rejected(error.code)
    return Response(status_code=status, content_type="application/json", body=body)


@app.exception_handler(Exception)
def _unexpected(_error: Exception) -> Response[ErrorBody]:
    logger.exception("unexpected error")
    with contextlib.suppress(FlywheelError):
        _service().failed(http.INTERNAL_ERROR_CODE)
    status, body = http.internal_error_response(request_id=_request_id())
    return Response(status_code=status, content_type="application/json", body=body)


def _request_id() -> str:
    return app.current_event.request_context.request_id or str(uuid.uuid4())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
