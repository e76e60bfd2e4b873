"""DynamoDB: registry, audit, online-feature and idempotency tables (``flywheel.resources``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from flywheel.resources import TABLES, Key, TableDef

if TYPE_CHECKING:
    from infra.context import StageContext

_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def attribute(key: Key) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_TYPES[key.type])


class RegistryTables(Construct):
    """On-demand tables with PITR, the stage CMK and (stage-configurable) deletion protection.

    Keys and indexes come from ``flywheel.resources`` (the local runtime builds its tables
    from the same definitions); logical ids are the definitions' ``logical_id``.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, dynamodb.Table] = {
            table.logical_id: self._table(table, ctx, key) for table in TABLES
        }

    def _table(self, table: TableDef, ctx: StageContext, key: kms.IKey) -> dynamodb.Table:
        created = dynamodb.Table(
            self,
            table.logical_id,
            table_name=ctx.naming.table(table),
            partition_key=attribute(table.partition_key),
            sort_key=attribute(table.sort_key) if table.sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True, recovery_period_in_days=35
            ),
            deletion_protection=ctx.config.deletion_protection,
            time_to_live_attribute=table.ttl_attribute,
            removal_policy=ctx.removal_policy,
        )
        for index in table.indexes:
            created.add_global_secondary_index(
                index_name=index.name,
                partition_key=attribute(index.partition_key),
                sort_key=attribute(index.sort_key) if index.sort_key else None,
                projection_type=dynamodb.ProjectionType.ALL,
            )
        created.node.default_child.override_logical_id(table.logical_id)  # type: ignore[union-attr]
        return created
