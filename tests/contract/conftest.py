"""The registry/audit behaviour suite runs once per backend: in memory and DynamoDB (moto)."""

from __future__ import annotations

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
    registry_db = DynamoDbModelRegistry(
        names["FLYWHEEL_REGISTRY_TABLE"], audit_log, client=client
    )
    return Backend(
        "dynamodb", RegistryService(registry_db, audit_log), audit_log, registry_db, names
    )
