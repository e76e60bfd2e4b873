"""Composition of the workflow services from :class:`~flywheel.settings.Settings`.

The Lambda handlers call these once per container (``@functools.cache``); the local
runtime and tests call them with their own ``session`` (e.g. one whose botocore events
inject faults) and ``clock`` (a simulated one). Nothing here runs at import time.

Examples
--------
>>> from flywheel.settings import Settings
>>> steps = promotion_steps(Settings(backend="aws"))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from flywheel.adapters.aws_workflows import (
    CloudWatchCanaryHealth,
    EventBridgePublisher,
    LambdaServingControl,
    StepFunctionsTaskTokens,
)
from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
from flywheel.adapters.s3_artifacts import S3ArtifactStore
from flywheel.adapters.s3_capture import S3CaptureSink
from flywheel.clock import Clock, default_clock
from flywheel.errors import DatasetError
from flywheel.registry.service import RegistryService
from flywheel.workflows.approvals import ApprovalService
from flywheel.workflows.failures import WorkflowFailures
from flywheel.workflows.promotion import PromotionSteps

if TYPE_CHECKING:
    from flywheel.settings import Settings
    from flywheel.workflows.training import TrainingSteps

#: Control-plane calls retry throttling and transient errors before failing the step.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@dataclass(frozen=True)
class AwsClients:
    """Makes boto3 clients for one settings object (endpoint, region, local credentials).

    One client per service: a composition root that wires several adapters on the same
    service (registry, approvals, feature store) creates it once (clients are
    thread-safe; each creation costs milliseconds of a cold start).
    """

    session: boto3.Session
    kwargs: dict[str, Any]
    _made: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, session: boto3.Session | None = None) -> AwsClients:
        kwargs: dict[str, Any] = {"config": CLIENT_CONFIG}
        if settings.backend == "local":
            from flywheel.local import server

            kwargs["endpoint_url"] = settings.endpoint_url or server.endpoint(settings.local_port)
            if session is None:
                session = boto3.Session(
                    region_name=settings.region,
                    aws_access_key_id=server.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=server.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=server.LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
                )
        elif settings.endpoint_url:
            kwargs["endpoint_url"] = settings.endpoint_url
        return cls(session or boto3.Session(region_name=settings.region), kwargs)

    def client(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self.session.client(service, **self.kwargs)  # type: ignore[call-overload]
        return self._made[service]


@dataclass(frozen=True)
class _Registry:
    service: RegistryService
    store: DynamoDbModelRegistry


def _registry(settings: Settings, clients: AwsClients, clock: Clock) -> _Registry:
    dynamodb = clients.client("dynamodb")
    audit = DynamoDbAuditLog(settings.audit_table, client=dynamodb, clock=clock)
    store = DynamoDbModelRegistry(settings.registry_table, audit, client=dynamodb, clock=clock)
    return _Registry(RegistryService(store, audit), store)


def _approvals(
    settings: Settings, clients: AwsClients, clock: Clock, registry: _Registry
) -> ApprovalService:
    return ApprovalService(
        registry=registry.service,
        records=registry.store,
        tokens=StepFunctionsTaskTokens(client=clients.client("stepfunctions")),
        events=EventBridgePublisher(
            settings.event_bus or "default",
            source=settings.event_source,
            client=clients.client("events"),
        ),
        clock=clock,
        max_timeout_seconds=settings.approval_timeout_seconds,
        rejected_error=settings.approval_rejected_error,
    )


def approval_service(
    settings: Settings, *, session: boto3.Session | None = None, clock: Clock | None = None
) -> ApprovalService:
    """What ``approval_api.handler`` runs: DynamoDB, Step Functions, EventBridge."""
    clients = AwsClients.from_settings(settings, session)
    clock = clock or default_clock()
    return _approvals(settings, clients, clock, _registry(settings, clients, clock))


def training_steps(
    settings: Settings, *, session: boto3.Session | None = None, clock: Clock | None = None
) -> TrainingSteps:
    """What ``training_steps.handler`` runs: DynamoDB, S3 (artifacts and dataset sources).

    The feature store (offline store in the features bucket, view catalog in the
    registry table) builds training sets for configs with ``dataset.feature_view``.
    """
    from flywheel.adapters.feature_wiring import feature_store
    from flywheel.workflows.training import TrainingSteps

    clients = AwsClients.from_settings(settings, session)
    clock = clock or default_clock()
    registry = _registry(settings, clients, clock)
    s3 = clients.client("s3")

    def fetch(uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket) as err:
            raise DatasetError(f"no object at {uri}", field="dataset.source") from err
        return body

    return TrainingSteps(
        registry=registry.service,
        records=registry.store,
        artifacts=S3ArtifactStore(settings.artifacts_bucket, client=s3),
        approvals=_approvals(settings, clients, clock, registry),
        fetch=fetch,
        clock=clock,
        lock_ttl_seconds=settings.run_lock_ttl_seconds,
        max_approval_timeout_seconds=settings.approval_timeout_seconds,
        features=feature_store(settings, clients=clients, clock=clock),
    )


def promotion_steps(
    settings: Settings, *, session: boto3.Session | None = None, clock: Clock | None = None
) -> PromotionSteps:
    """What ``promotion_steps.handler`` runs: DynamoDB, Lambda, CloudWatch."""
    clients = AwsClients.from_settings(settings, session)
    registry = _registry(settings, clients, clock or default_clock())
    return _promotion(settings, clients, registry)


def _promotion(settings: Settings, clients: AwsClients, registry: _Registry) -> PromotionSteps:
    return PromotionSteps(
        registry=registry.service,
        records=registry.store,
        serving=LambdaServingControl(
            settings.inference_functions,
            alias=settings.live_alias,
            client=clients.client("lambda"),
        ),
        health=CloudWatchCanaryHealth(settings.canary_alarms, client=clients.client("cloudwatch")),
        default_canary_weight=settings.canary_weight,
        capture=S3CaptureSink(settings.features_bucket, client=clients.client("s3")),
        prediction_psi=settings.canary_prediction_psi,
        prediction_min_rows=settings.canary_prediction_min_rows,
        artifacts=S3ArtifactStore(settings.artifacts_bucket, client=clients.client("s3")),
    )


def workflow_failures(
    settings: Settings, *, session: boto3.Session | None = None, clock: Clock | None = None
) -> WorkflowFailures:
    """What ``record_failure`` runs (both workflows share the function)."""
    clients = AwsClients.from_settings(settings, session)
    clock = clock or default_clock()
    registry = _registry(settings, clients, clock)
    return WorkflowFailures(
        registry=registry.service,
        approvals=_approvals(settings, clients, clock, registry),
        promotion=_promotion(settings, clients, registry),
    )
