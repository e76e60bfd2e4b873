"""Composition of the feature store from :class:`~flywheel.settings.Settings`.

The training workflow calls :func:`feature_store` (offline and online); the
inference function calls it with ``offline=False`` and keeps the result for the
life of its container, so a request costs one ``BatchGetItem`` (view definitions
are cached). Nothing here runs at import time.

Examples
--------
>>> from flywheel.settings import Settings
>>> store = feature_store(Settings(backend="aws"))  # doctest: +SKIP
>>> store.online_vector("customer-stats", "c-42")  # doctest: +SKIP
[12.5, 3, True]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
from flywheel.adapters.dynamodb_features import DynamoDbOnlineStore
from flywheel.adapters.s3_features import S3BlobStore
from flywheel.adapters.wiring import AwsClients
from flywheel.clock import default_clock
from flywheel.features.registry import FeatureRegistry
from flywheel.features.store import FeatureStore
from flywheel.registry.service import RegistryService

if TYPE_CHECKING:
    import boto3

    from flywheel.clock import Clock
    from flywheel.settings import Settings


def feature_store(
    settings: Settings,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
    offline: bool = True,
    write_workers: int = 8,
    clients: AwsClients | None = None,
) -> FeatureStore:
    """A :class:`FeatureStore` on the deployment's tables and features bucket.

    ``clients``: share a composition root's clients instead of making new ones.
    """
    clients = clients or AwsClients.from_settings(settings, session)
    clock = clock or default_clock()
    dynamodb = clients.client("dynamodb")
    audit = DynamoDbAuditLog(settings.audit_table, client=dynamodb, clock=clock)
    records = DynamoDbModelRegistry(settings.registry_table, audit, client=dynamodb, clock=clock)
    return FeatureStore(
        registry=FeatureRegistry(RegistryService(records, audit), records, clock=clock),
        online=DynamoDbOnlineStore(
            settings.online_features_table, client=dynamodb, max_workers=write_workers
        ),
        records=records,
        blobs=S3BlobStore(settings.features_bucket, client=clients.client("s3"))
        if offline
        else None,
        clock=clock,
    )
