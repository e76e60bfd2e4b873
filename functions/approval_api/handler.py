"""``POST /v1/approvals/{id}``: approve or reject a candidate; the training run resumes.

The approver is the authenticated caller (IAM ``userArn`` or Cognito claims), never a
field of the body. Errors: 400 invalid body, 401 no identity, 403 approver is the
requester, 404 unknown approval, 409 already decided or artifact mismatch, 410 expired.
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
from flywheel.workflows.approvals import DecisionRequest, DecisionResponse

if TYPE_CHECKING:
    from flywheel.workflows.approvals import ApprovalService

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=http.parse_json_body)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
ApprovalId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


check_environment(Settings)


@functools.cache
def _service() -> ApprovalService:
    """Composition root, built once per execution environment from ``FLYWHEEL_*`` settings."""
    return AwsPlatform(Settings()).approval_service()


@app.post("/v1/approvals/<approval_id>")
def decide(approval_id: ApprovalId, body: DecisionRequest) -> DecisionResponse:
    doc = _service().decide(
        approval_id,
        decision=body.decision,
        approver=caller_identity(app),
        reason=body.reason,
        artifact_sha256=body.artifact_sha256,
    )
    metrics.add_metric(f"Approval{body.decision.title()}d", MetricUnit.Count, 1)
    return DecisionResponse(
        approval_id=doc.approval_id,
        model_name=doc.model,
        version=doc.version,
        status=str(doc.status),
        decided_by=doc.decided_by,
        decided_at=doc.decided_at.isoformat() if doc.decided_at else None,
        artifact_sha256=doc.artifact_sha256,
        workflow_resumed=doc.workflow_notified and doc.workflow_error is None,
        event_published=doc.event_published,
    )


handler = rest_handler(app, logger=logger, tracer=tracer, metrics=metrics, route="decide")
