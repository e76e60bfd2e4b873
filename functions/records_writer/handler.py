"""The records writer: the only function that writes the registry and the audit trail.

Invoked synchronously through one alias per capability (``workflows``, ``approvals``,
``operations``, ``features``); IAM grants each caller its alias only.  The answer is a
:class:`~flywheel.workflows.writer.WriteResponse`: what was stored, or the domain error
that refused the change (the caller re-raises it).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from flywheel.composition import AwsPlatform, check_environment
from flywheel.errors import FlywheelError, InvalidRequestError
from flywheel.settings import Settings
from flywheel.workflows.writer import WriteRequest, WriteResponse, capability_of

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.workflows.writer import RecordsWriter

logger = Logger()
tracer = Tracer()
metrics = Metrics()

check_environment(Settings)


@functools.cache
def _writer() -> RecordsWriter:
    """Composition root, built once per execution environment from ``FLYWHEEL_*`` settings."""
    return AwsPlatform(Settings()).records_writer()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        capability = capability_of(context.invoked_function_arn)
        request = WriteRequest.model_validate(event)
    except ValidationError as err:
        refused: FlywheelError = InvalidRequestError(
            f"not a write request ({err.error_count()} problems)", field="request"
        )
        return WriteResponse(error=refused.to_dict()).model_dump(mode="json")
    except FlywheelError as err:
        return WriteResponse(error=err.to_dict()).model_dump(mode="json")
    metrics.add_dimension("Capability", str(capability))
    response = _writer().handle(request, capability)
    outcome = "Refused" if response.error is not None else "Written"
    metrics.add_metric(f"Records{outcome}", MetricUnit.Count, 1)
    if response.error is not None:
        logger.warning(
            "write refused",
            extra={"capability": str(capability), "op": str(request.op), "error": response.error},
        )
    return response.model_dump(mode="json")
