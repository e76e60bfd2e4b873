"""Build an :class:`InferenceService` for AWS from settings (used by composition roots).

The adapters (and with them boto3) are imported inside :func:`build_inference_service`,
so importing this module stays cheap and boto3-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel.errors import ConfigError, FlywheelError, ModelUnavailableError
from flywheel.serving.metrics import MetricLabels
from flywheel.serving.service import InferenceService

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from flywheel.serving.metrics import ServingMetrics
    from flywheel.serving.service import FeatureLookup
    from flywheel.serving.settings import ServingSettings

__all__ = ["build_inference_service"]


def _feature_lookup(settings: ServingSettings, service: InferenceService) -> FeatureLookup:
    """Entity -> the served version's features from the online store (no pyarrow).

    Raises
    ------
    ConfigError
        The view lacks features the model needs (checked once, at start).
    """
    from flywheel.adapters.feature_wiring import feature_store

    view, version = settings.feature_view, settings.feature_view_version
    assert view is not None
    store = feature_store(settings, offline=False)
    available = set(store.view(view, version).view.feature_names)
    needed = service.primary.version.input_schema.feature_names
    missing = [name for name in needed if name not in available]
    if missing:
        raise ConfigError(
            f"feature view {view!r} lacks feature(s) the model needs: {', '.join(missing)}",
            field="feature_view",
        )

    def lookup(entity_id: str, names: Sequence[str]) -> Sequence[Any]:
        return store.online_vector(view, entity_id, version=version, features=names)

    return lookup


def build_inference_service(
    settings: ServingSettings, *, metrics: ServingMetrics
) -> InferenceService:
    """DynamoDB registry, S3 artifacts and S3 capture (features bucket), wired from settings.

    The registry is read-only here: the inference function never writes it.

    Raises
    ------
    ModelUnavailableError
        The pinned model could not be loaded (HTTP 503); the cause is chained and
        logged, never shown to callers.  Counted as ``Errors`` with
        ``Variant=unavailable`` (the registry may be what failed).

    Examples
    --------
    >>> from flywheel.adapters.memory_metrics import InMemoryServingMetrics
    >>> service = build_inference_service(  # doctest: +SKIP
    ...     ServingSettings(), metrics=InMemoryServingMetrics()
    ... )
    """
    from flywheel.adapters.aws_clients import aws_clients
    from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
    from flywheel.adapters.s3_artifacts import S3ArtifactStore
    from flywheel.adapters.s3_capture import S3CaptureSink

    clients = aws_clients(settings)
    audit = DynamoDbAuditLog(settings.audit_table, client=clients.dynamodb)
    registry = DynamoDbModelRegistry(settings.registry_table, audit, client=clients.dynamodb)
    try:
        service = InferenceService.start(
            settings,
            registry=registry,
            artifacts=S3ArtifactStore(settings.artifacts_bucket, client=clients.s3),
            metrics=metrics,
            sink=S3CaptureSink(settings.features_bucket, client=clients.s3),
        )
        if settings.feature_view is not None:
            service.features = _feature_lookup(settings, service)
        return service
    except FlywheelError as err:
        pinned = settings.model_version
        labels = MetricLabels(
            settings.model_name or "unknown", int(pinned) if pinned.isdigit() else 0, "unavailable"
        )
        metrics.request_failed(labels, code=ModelUnavailableError.code)
        raise ModelUnavailableError(
            f"model {settings.model_name!r} version {settings.model_version} could not be "
            f"loaded ({err.code})",
            details={"cause": err.code},
        ) from err
