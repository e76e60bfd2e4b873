"""Scheduled drift scorer: each model's captured traffic against its reference profile."""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.monitoring.drift_monitor import DriftMonitor

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@functools.cache
def _monitor() -> DriftMonitor:
    """Composition root, built once per execution environment."""
    from flywheel.adapters.aws_workflows import EventBridgePublisher
    from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
    from flywheel.adapters.s3_artifacts import S3ArtifactStore
    from flywheel.adapters.s3_capture import S3CaptureSink
    from flywheel.adapters.wiring import AwsClients
    from flywheel.clock import default_clock
    from flywheel.monitoring.drift_monitor import DriftMonitor
    from flywheel.registry.service import RegistryService

    settings = Settings()
    clients = AwsClients.from_settings(settings)
    clock = default_clock()
    audit = DynamoDbAuditLog(settings.audit_table, client=clients.client("dynamodb"), clock=clock)
    registry = DynamoDbModelRegistry(
        settings.registry_table, audit, client=clients.client("dynamodb"), clock=clock
    )
    return DriftMonitor(
        registry=RegistryService(registry, audit),
        artifacts=S3ArtifactStore(settings.artifacts_bucket, client=clients.client("s3")),
        capture=S3CaptureSink(settings.features_bucket, client=clients.client("s3")),
        events=EventBridgePublisher(
            settings.event_bus or "default",
            source=os.environ.get("FLYWHEEL_EVENT_SOURCE", "flywheel.monitoring"),
            client=clients.client("events"),
        ),
        clock=clock,
        capture_prefix=os.environ.get("FLYWHEEL_CAPTURE_PREFIX", "capture/"),
        reports_prefix=os.environ.get("FLYWHEEL_REPORTS_PREFIX", "reports/"),
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    models = event.get("models") or json.loads(os.environ.get("FLYWHEEL_MODELS", "[]"))
    runs = []
    for model in models:
        run = _monitor().run(str(model))
        logger.info("drift run", extra={"run": run.model_dump(exclude={"result"})})
        if run.result is not None:
            metrics.add_dimension("Model", run.model)
            metrics.add_metric("ShareDrifted", MetricUnit.Percent, 100 * run.share_drifted)
            metrics.add_metric("DriftedFeatures", MetricUnit.Count, len(run.drifted))
            metrics.add_metric("DriftWindowRows", MetricUnit.Count, run.rows)
        runs.append(run.model_dump(mode="json", exclude={"result"}))
    return {"runs": runs}
