"""Composition of the monitoring services from :class:`MonitoringSettings`.

The feedback, drift scorer and performance monitor handlers call these once per
execution environment (``@functools.cache``); tests pass their own ``session`` and
``clock``. Nothing here runs at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel.adapters.aws_workflows import EventBridgePublisher
from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
from flywheel.adapters.dynamodb_labels import DynamoDbLabelClaims
from flywheel.adapters.s3_artifacts import S3ArtifactStore
from flywheel.adapters.s3_capture import S3CaptureSink
from flywheel.adapters.wiring import AwsClients
from flywheel.clock import default_clock
from flywheel.registry.service import RegistryService

if TYPE_CHECKING:
    import boto3

    from flywheel.clock import Clock
    from flywheel.monitoring.drift_monitor import DriftMonitor
    from flywheel.monitoring.feedback import FeedbackService
    from flywheel.monitoring.performance_monitor import PerformanceMonitor
    from flywheel.monitoring.reports import ReportIndex
    from flywheel.monitoring.settings import MonitoringSettings

__all__ = ["drift_monitor", "feedback_service", "performance_monitor", "report_index"]


class _Wired:
    """Clients, clock and the (read-only) registry shared by the three services."""

    def __init__(
        self, settings: MonitoringSettings, session: boto3.Session | None, clock: Clock | None
    ) -> None:
        self.settings = settings
        self.clients = AwsClients.from_settings(settings, session)
        self.clock = clock or default_clock()
        dynamodb = self.clients.client("dynamodb")
        audit = DynamoDbAuditLog(settings.audit_table, client=dynamodb, clock=self.clock)
        self.store = DynamoDbModelRegistry(
            settings.registry_table, audit, client=dynamodb, clock=self.clock
        )
        self.registry = RegistryService(self.store, audit)
        self.s3 = self.clients.client("s3")

    def features(self) -> S3CaptureSink:
        return S3CaptureSink(self.settings.features_bucket, client=self.s3)

    def artifacts(self) -> S3ArtifactStore:
        return S3ArtifactStore(self.settings.artifacts_bucket, client=self.s3)

    def events(self) -> EventBridgePublisher:
        return EventBridgePublisher(
            self.settings.event_bus or "default",
            source=self.settings.event_source,
            client=self.clients.client("events"),
        )


def feedback_service(
    settings: MonitoringSettings,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
) -> FeedbackService:
    """What ``feedback.handler`` runs: registry (read), idempotency table, features bucket."""
    from flywheel.monitoring.feedback import FeedbackService

    wired = _Wired(settings, session, clock)
    return FeedbackService(
        registry=wired.registry,
        claims=DynamoDbLabelClaims(
            settings.idempotency_table, client=wired.clients.client("dynamodb")
        ),
        sink=wired.features(),
        clock=wired.clock,
        prefix=settings.labels_prefix,
    )


def drift_monitor(
    settings: MonitoringSettings,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
) -> DriftMonitor:
    """What ``drift_scorer.handler`` runs: registry, artifacts, capture, the bus."""
    from flywheel.monitoring.drift_monitor import DriftMonitor
    from flywheel.workflows.config import ModelConfigStore

    wired = _Wired(settings, session, clock)
    return DriftMonitor(
        registry=wired.registry,
        artifacts=wired.artifacts(),
        capture=wired.features(),
        events=wired.events(),
        clock=wired.clock,
        capture_prefix=settings.capture_prefix,
        reports_prefix=settings.reports_prefix,
        configs=ModelConfigStore(wired.registry, wired.store),
        prediction_psi=settings.prediction_psi,
    )


def performance_monitor(
    settings: MonitoringSettings,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
) -> PerformanceMonitor:
    """What ``performance_monitor.handler`` runs: registry, capture + labels, reports, bus."""
    from flywheel.monitoring.performance_monitor import PerformanceMonitor
    from flywheel.workflows.config import ModelConfigStore

    wired = _Wired(settings, session, clock)
    return PerformanceMonitor(
        registry=wired.registry,
        configs=ModelConfigStore(wired.registry, wired.store),
        artifacts=wired.artifacts(),
        capture=wired.features(),
        labels=wired.features(),
        events=wired.events(),
        clock=wired.clock,
        capture_prefix=settings.capture_prefix,
        labels_prefix=settings.labels_prefix,
        reports_prefix=settings.reports_prefix,
    )


def report_index(
    settings: MonitoringSettings, *, session: boto3.Session | None = None
) -> ReportIndex:
    """The monitors' reports in the artifacts bucket (``flywheel monitor``)."""
    from flywheel.monitoring.reports import ReportIndex

    clients = AwsClients.from_settings(settings, session)
    bucket = S3CaptureSink(settings.artifacts_bucket, client=clients.client("s3"))
    return ReportIndex(bucket, prefix=settings.reports_prefix)
