"""Stateful resources: the key, buckets, tables and the project bus."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Stack

from infra.constructs.artifact_store import ArtifactStore
from infra.constructs.encryption import AuditKey, DataKey
from infra.constructs.project_bus import ProjectBus
from infra.constructs.registry_tables import RegistryTables

if TYPE_CHECKING:
    from constructs import Construct

    from infra.context import StageContext


class DataStack(Stack):
    """Everything that holds state. Other stacks address it by name, never by export,
    so compute stacks can be redeployed or destroyed without touching it."""

    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.key = DataKey(self, "Encryption", ctx=ctx).key
        self.audit_key = AuditKey(self, "AuditKey", ctx=ctx).key
        self.store = ArtifactStore(self, "ArtifactStore", ctx=ctx, key=self.key)
        self.tables = RegistryTables(self, "RegistryTables", ctx=ctx, key=self.key)
        self.bus = ProjectBus(self, "ProjectBus", ctx=ctx).bus
