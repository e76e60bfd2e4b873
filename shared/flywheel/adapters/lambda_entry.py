"""Lambda entry points built with Powertools, shared by the handlers.

- :func:`rest_handler` (approvals, feedback, retrain): Logger with the API Gateway request
  id as correlation id, Tracer, EMF metrics with a ``Route`` dimension, and one error
  mapping (:func:`register_error_handlers`); :func:`caller_identity` names the caller.
- :func:`scheduled_handler` (drift scorer, performance monitor): one monitoring run per
  model, each logged, the scored ones' metrics emitted.

Error mapping of the REST functions:

Domain errors become their status from :data:`flywheel.errors.HTTP_STATUS_BY_CODE` and
the ``{"error": {...}}`` body of :mod:`flywheel.serving.http`; request validation errors
become a 400 naming the first bad field (all of them listed); anything else is a 500
that says nothing about its cause. Each answer counts ``Http4xx``/``Http5xx``.
"""

from __future__ import annotations

import binascii
import uuid
import warnings
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.errors import (
    FlywheelError,
    InvalidRequestError,
    NotFoundError,
    UnauthenticatedError,
)
from flywheel.serving import http

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.monitoring.runs import MonitorRun

    Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]

__all__ = ["caller_identity", "register_error_handlers", "rest_handler", "scheduled_handler"]


def caller_identity(app: APIGatewayRestResolver) -> str:
    """The authenticated caller of the current request: the IAM ARN API Gateway verified
    (``AWS_IAM`` auth, from the SigV4 signature) or ``cognito:<user>`` (``COGNITO``).

    Raises
    ------
    UnauthenticatedError
        The request carries neither (401).
    """
    context = app.current_event.request_context
    if context.identity.user_arn:
        return context.identity.user_arn
    claims = context.authorizer.claims
    for key in ("cognito:username", "username", "sub"):
        if claims.get(key):
            return f"cognito:{claims[key]}"
    raise UnauthenticatedError("the request carries no caller identity", field="identity")


def register_error_handlers(
    app: APIGatewayRestResolver, *, logger: Logger, metrics: Metrics
) -> None:
    """Register the three handlers on ``app``; the most specific class wins, so library
    exceptions only ever reach the generic 500."""

    def request_id() -> str:
        return app.current_event.request_context.request_id or str(uuid.uuid4())

    def refused(error: FlywheelError) -> Response[Any]:
        status, body = http.error_response(error, request_id=request_id())
        metrics.add_metric(f"Http{status // 100}xx", MetricUnit.Count, 1)
        if status >= 500:
            logger.error("request failed", extra={"code": error.code}, exc_info=error)
        else:
            logger.info("request refused", extra={"code": error.code, "status": status})
        return Response(status_code=status, content_type="application/json", body=body)

    def invalid(error: RequestValidationError) -> Response[Any]:
        problems = http.envelope_problems(error.errors())
        first = problems[0] if problems else {"field": "body", "reason": "is invalid"}
        return refused(
            InvalidRequestError(
                f"{first['field']}: {first['reason']}",
                field=str(first["field"]),
                details={"errors": problems},
            )
        )

    def unexpected(_error: Exception) -> Response[Any]:
        logger.exception("unexpected error")
        metrics.add_metric("Http5xx", MetricUnit.Count, 1)
        status, body = http.internal_error_response(request_id=request_id())
        return Response(status_code=status, content_type="application/json", body=body)

    def undecodable(_error: Exception) -> Response[Any]:
        return refused(InvalidRequestError("body: is not valid UTF-8 text", field="body"))

    def no_route(_error: Exception) -> Response[Any]:
        event = app.current_event
        return refused(NotFoundError(f"no route {event.http_method} {event.path}", field="path"))

    app.exception_handler(RequestValidationError)(invalid)
    app.exception_handler([UnicodeDecodeError, binascii.Error])(undecodable)
    app.exception_handler(FlywheelError)(refused)
    app.exception_handler(Exception)(unexpected)
    app.not_found(no_route)


def rest_handler(
    app: APIGatewayRestResolver, *, logger: Logger, tracer: Tracer, metrics: Metrics, route: str
) -> Handler:
    """The Lambda entry point of a REST function: error handlers registered, Logger with
    API Gateway's request id as correlation id, Tracer, EMF metrics with a ``Route``
    dimension.

    Examples
    --------
    >>> handler = rest_handler(app, logger=logger, tracer=tracer, metrics=metrics,
    ...                        route="feedback")  # doctest: +SKIP
    """
    register_error_handlers(app, logger=logger, metrics=metrics)

    @logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
    )
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        metrics.add_dimension("Route", route)
        return app.resolve(event, context)

    return cast("Handler", handler)


def scheduled_handler(
    run: Callable[[], Callable[[str], MonitorRun]],
    models: Callable[[], list[str]],
    *,
    logger: Logger,
    tracer: Tracer,
    metrics: Metrics,
    emit: Callable[[Any], None],
    name: str,
    exclude: frozenset[str],
) -> Handler:
    """The entry point of a scheduled monitor: ``{"models": [...]}`` or every configured
    model, each run logged (``name`` run, without ``exclude``) and its metrics emitted
    (:func:`flywheel.monitoring.runs.run_models`).

    ``run`` and ``models`` are called per invocation (composition roots, cached by the
    caller), so nothing is built at import time.
    """
    from flywheel.monitoring.runs import run_models

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def monitor(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
        return run_models(
            event.get("models") or models(),
            run(),
            log=lambda done: logger.info(
                f"{name} run", extra={"run": done.model_dump(exclude=set(exclude))}
            ),
            emit=emit,
            exclude=exclude,
        )

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # A run with nothing to score (no champion, an empty window) emits no metrics
        # and is logged with its reason; Powertools would add a UserWarning to every
        # such invocation's log.  Its documented way out is a warnings filter.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
            answer: dict[str, Any] = monitor(event, context)
        return answer

    return cast("Handler", handler)
