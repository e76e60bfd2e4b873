"""The registry/audit behaviour suite runs once per backend: in memory and DynamoDB (moto)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
from flywheel.registry.service import RegistryService


@dataclass
class Backend:
    kind: str
    service: RegistryService
    audit: Any
    registry: Any
    names: dict[str, str] | None = None


@pytest.fixture(params=["memory", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        audit = InMemoryAuditLog()
        registry = InMemoryModelRegistry(audit)
        return Backend("memory", RegistryService(registry, audit), audit, registry)
    names = request.getfixturevalue("local_names")
    client = request.getfixturevalue("dynamodb_client")
    from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry

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
