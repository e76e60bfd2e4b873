"""``POST /v1/feedback``: delayed ground truth for captured predictions.

Body: one label ``{"model", "request_id", "row"?, "label"}`` or a batch
``{"model", "labels": [{"request_id", "row"?, "label"}, ...]}`` (at most 100); see
:mod:`flywheel.monitoring.feedback`. Answers 200 with each label ``stored`` or
``duplicate`` (the same label was sent before: nothing written). Errors: 400 invalid
body, 404 unknown model, 409 a prediction already has a different label (nothing
stored), 413 more than 100 labels, 422 a label the model cannot produce.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.adapters.lambda_entry import rest_handler
from flywheel.composition import AwsPlatform, check_environment

# Runtime imports: Powertools reads the route's annotations to validate and document it.
from flywheel.monitoring.feedback import FeedbackReceipt, FeedbackRequest  # noqa: TC001
from flywheel.monitoring.settings import MonitoringSettings
from flywheel.serving import http

if TYPE_CHECKING:
    from flywheel.monitoring.feedback import FeedbackService

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=http.parse_json_body)
logger = Logger()
tracer = Tracer()
metrics = Metrics()


check_environment(MonitoringSettings)


@functools.cache
def _service() -> FeedbackService:
    """Composition root, built once per execution environment from ``FLYWHEEL_*`` settings."""
    return AwsPlatform(MonitoringSettings()).feedback_service()


@app.post("/v1/feedback", summary="Label captured predictions")
def feedback(body: FeedbackRequest) -> FeedbackReceipt:
    receipt = _service().submit(body)
    metrics.add_dimension("Model", receipt.model)
    metrics.add_metric("LabelsStored", MetricUnit.Count, receipt.stored)
    metrics.add_metric("LabelsDuplicate", MetricUnit.Count, receipt.duplicates)
    return receipt


handler = rest_handler(app, logger=logger, tracer=tracer, metrics=metrics, route="feedback")
