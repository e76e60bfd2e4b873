"""The registry/audit behaviour suite runs once per backend: in memory and DynamoDB (moto)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
from flywheel.registry.service import RegistryService
from flywheel.resources import TABLES


@dataclass
class Backend:
    kind: str
    service: RegistryService
    audit: Any
    registry: Any
    names: dict[str, str] | None = None


REGISTRY_TABLES = tuple(
    t for t in TABLES if t.env_var in {"FLYWHEEL_REGISTRY_TABLE", "FLYWHEEL_AUDIT_TABLE"}
)


@functools.cache
def boto3_session() -> boto3.session.Session:
    """One boto3 session for the run; clients made from it inside ``mock_aws`` are mocked.

    ``mock_aws`` resets boto3's default session, and a fresh session loads the service
    models again (about 0.5 s a test); each mock still starts with no tables or buckets.
    """
    return boto3.session.Session(region_name="us-east-1")


@pytest.fixture(params=["memory", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        audit = InMemoryAuditLog()
        registry = InMemoryModelRegistry(audit)
        return Backend("memory", RegistryService(registry, audit), audit, registry)
    request.getfixturevalue("moto_aws")
    from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
    from flywheel.local.provision import default_names, provision

    # Only the two tables these adapters use, from the same definitions as the app's.
    names = default_names("test")
    client = boto3_session().client("dynamodb")
    provision(client, boto3_session().client("s3"), names, tables=REGISTRY_TABLES, buckets=())

    audit_log = DynamoDbAuditLog(names["FLYWHEEL_AUDIT_TABLE"], client=client)
    registry_db = DynamoDbModelRegistry(names["FLYWHEEL_REGISTRY_TABLE"], audit_log, client=client)
    return Backend(
        "dynamodb", RegistryService(registry_db, audit_log), audit_log, registry_db, names
    )


@pytest.fixture
def atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's DynamoDB write calls atomic, as DynamoDB's are.

    moto checks a condition and then writes without a lock, so two threads can both
    pass the same condition; real DynamoDB serializes writes to an item. With this
    fixture the threaded tests exercise *our* conditional writes, not moto's race.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def atomic(method: Callable[..., object]) -> Callable[..., object]:
        @functools.wraps(method)
        def wrapper(*args: object, **kwargs: object) -> object:
            with lock:
                return method(*args, **kwargs)

        return wrapper

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        monkeypatch.setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))
