"""``POST /v1/models/{name}/retrain``: ask for a training run of a configured model.

Body ``{"reason": "...", "code_version": "<git sha>"?}``. Puts ``RetrainRequested`` (source
``flywheel.operator``) on the project bus with ``detail`` ``{"model_name", "requested_by",
"reason"}`` (plus ``code_version`` when given); the requester is
the authenticated caller (IAM ``userArn`` or Cognito claims), never a field of the body.
Answers 202 with the event id: the training workflow starts asynchronously. Errors: 400
invalid body or name, 401 no identity, 404 model not configured, 502 bus unavailable.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.adapters.lambda_entry import caller_identity, rest_handler
from flywheel.composition import AwsPlatform, check_environment
from flywheel.serving import http
from flywheel.settings import Settings

# Runtime import: Powertools reads the route's annotations to validate the body.
from flywheel.workflows.retrain import RetrainReceipt, RetrainRequest  # noqa: TC001

if TYPE_CHECKING:
    from flywheel.workflows.retrain import RetrainRequests

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=http.parse_json_body)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
ModelName = Annotated[str, Path(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]


check_environment(Settings)


@functools.cache
def _service() -> RetrainRequests:
    """Composition root, built once per execution environment from ``FLYWHEEL_*`` settings."""
    return AwsPlatform(Settings()).retrain_requests()


@app.post("/v1/models/<model_name>/retrain", summary="Ask for a training run")
def retrain(model_name: ModelName, body: RetrainRequest) -> tuple[RetrainReceipt, int]:
    receipt = _service().request(
        model_name,
        requested_by=caller_identity(app),
        reason=body.reason,
        code_version=body.code_version,
    )
    metrics.add_dimension("Model", receipt.model_name)
    metrics.add_metric("RetrainRequested", MetricUnit.Count, 1)
    return receipt, 202


handler = rest_handler(app, logger=logger, tracer=tracer, metrics=metrics, route="retrain")
