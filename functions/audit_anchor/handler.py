"""Scheduled anchor job: each audit chain verified, its signed head copied to the anchors bucket.

Metrics: ``ChainsAnchored``, ``ChainsUnchanged`` and ``ChainsTampered``.  A chain that fails
verification is not anchored; ``AuditTamperDetected`` goes to the project bus with the
chain and the first problem, and the metric's alarm notifies the stage's topic.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.composition import AwsPlatform, check_environment
from flywheel.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer()
metrics = Metrics()

check_environment(Settings)


@functools.cache
def _platform() -> AwsPlatform:
    """Composition root, built once per execution environment."""
    return AwsPlatform(Settings())


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    platform = _platform()
    outcomes = platform.anchoring().run(event.get("streams") or None)
    counts = {"anchored": 0, "unchanged": 0, "tampered": 0}
    for outcome in outcomes:
        counts[outcome.result] += 1
        if outcome.result == "tampered":
            logger.error("audit chain tampered", extra=outcome.model_dump())
            platform.events().publish("AuditTamperDetected", outcome.model_dump(mode="json"))
    for result, count in counts.items():
        metrics.add_metric(f"Chains{result.title()}", MetricUnit.Count, count)
    return {"outcomes": [o.model_dump(mode="json") for o in outcomes]}
