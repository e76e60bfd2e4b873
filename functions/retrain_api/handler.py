"""The operator's requests: the only producer of ``flywheel.operator`` events.

``POST /v1/models/{name}/retrain`` (body ``{"reason", "code_version"?}``) puts
``RetrainRequested``: a training run of a configured model. ``POST
/v1/models/{name}/promotions`` (body ``{"version", "reason"}``) puts
``PromotionRequested``: the promotion workflow for an approved version (404 unknown
version, 409 not approved, or a canary or experiment running). The requester is the
authenticated caller (IAM ``userArn`` or Cognito claims), never a field of the body.
Both answer 202 with the event id (the workflows start asynchronously). ``POST
/v1/models/{name}/config`` (body ``{"config", "reason"}``) stores a model's workflow config
when it differs from the stored one, as the caller (``model_configured``; what CI runs
after a deploy) and answers 200 with the revision. Errors: 400 invalid body, name or
config, 401 no identity, 404 model not configured, 502 bus unavailable.
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

# Runtime imports: Powertools reads the routes' annotations to validate the bodies.
from flywheel.workflows.config import (
    ConfigReceipt,
    ConfigRequest,
    store_requested_config,
)
from flywheel.workflows.promotion_requests import (  # noqa: TC001
    PromotionReceipt,
    PromotionRequest,
)
from flywheel.workflows.retrain import RetrainReceipt, RetrainRequest  # noqa: TC001

if TYPE_CHECKING:
    from flywheel.workflows.config import ModelConfigStore
    from flywheel.workflows.promotion_requests import PromotionRequests
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


@functools.cache
def _promotions() -> PromotionRequests:
    """Composition root of the promotions route (the same platform settings)."""
    return AwsPlatform(Settings()).promotion_requests()


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


@app.post("/v1/models/<model_name>/promotions", summary="Ask for a version's promotion")
def promotions(model_name: ModelName, body: PromotionRequest) -> tuple[PromotionReceipt, int]:
    receipt = _promotions().request(
        model_name, version=body.version, requested_by=caller_identity(app), reason=body.reason
    )
    metrics.add_dimension("Model", receipt.model_name)
    metrics.add_metric("PromotionRequested", MetricUnit.Count, 1)
    return receipt, 202


@functools.cache
def _configs() -> ModelConfigStore:
    """Composition root of the config route: writes through the records writer's
    ``configs`` capability, which may record ``model_configured`` and nothing else."""
    return AwsPlatform(Settings()).configs


@app.post("/v1/models/<model_name>/config", summary="Store a model's workflow config")
def config(model_name: ModelName, body: ConfigRequest) -> tuple[ConfigReceipt, int]:
    receipt = store_requested_config(
        _configs(), model_name, body, requested_by=caller_identity(app)
    )
    metrics.add_dimension("Model", receipt.model_name)
    metrics.add_metric("ConfigStored", MetricUnit.Count, int(receipt.changed))
    return receipt, 200


handler = rest_handler(app, logger=logger, tracer=tracer, metrics=metrics, route="retrain")
