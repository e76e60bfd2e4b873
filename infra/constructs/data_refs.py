"""The data stack's resources as seen from another stack: imported by name, no exports.

Every name is deterministic (``infra.naming``), and the KMS key is addressed through its
alias, so the compute stacks hold no CloudFormation references into the data stack and
can be changed, replaced or destroyed without touching it. ``infra.app`` still orders
deployments with explicit stack dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from flywheel.resources import (
    ANCHORS_BUCKET,
    ARTIFACTS_BUCKET,
    AUDIT_TABLE,
    FEATURES_BUCKET,
    IDEMPOTENCY_TABLE,
    LLM_USAGE_TABLE,
    ONLINE_FEATURES_TABLE,
    REGISTRY_TABLE,
    TABLES,
)

if TYPE_CHECKING:
    from infra.context import StageContext

AUDIT_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable")
#: The records writer's function key (``infra.catalog``) and fixed role name.
RECORDS_WRITER = "records-writer"


class DataRefs(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, ctx: StageContext) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.IKey = kms.Alias.from_alias_name(self, "DataKey", ctx.naming.data_key_alias)
        self.artifacts = s3.Bucket.from_bucket_attributes(
            self,
            "Artifacts",
            bucket_name=ctx.naming.bucket(ARTIFACTS_BUCKET),
            encryption_key=self.key,
        )
        self.features = s3.Bucket.from_bucket_attributes(
            self,
            "Features",
            bucket_name=ctx.naming.bucket(FEATURES_BUCKET),
            encryption_key=self.key,
        )
        tables = {}
        for table in TABLES:
            tables[table.logical_id] = dynamodb.Table.from_table_attributes(
                self,
                table.logical_id,
                table_name=ctx.naming.table(table),
                encryption_key=self.key,
                global_indexes=[index.name for index in table.indexes] or None,
            )
        self.registry = tables[REGISTRY_TABLE.logical_id]
        self.audit = tables[AUDIT_TABLE.logical_id]
        self.online_features = tables[ONLINE_FEATURES_TABLE.logical_id]
        self.idempotency = tables[IDEMPOTENCY_TABLE.logical_id]
        #: The LLM gateway's budget spend and usage counters (only the gateway writes it).
        self.llm_usage = tables[LLM_USAGE_TABLE.logical_id]
        self.bus = events.EventBus.from_event_bus_name(self, "Bus", ctx.naming.event_bus)
        self.anchors = s3.Bucket.from_bucket_attributes(
            self,
            "Anchors",
            bucket_name=ctx.naming.bucket(ANCHORS_BUCKET),
            encryption_key=self.key,
        )
        #: The audit writer's HMAC key (signs audit heads; everyone else only verifies).
        self.audit_key: kms.IKey = kms.Alias.from_alias_name(
            self, "AuditKey", ctx.naming.audit_key_alias
        )
        self._naming = ctx.naming

    def grant_registry_read(self, grantee: iam.IGrantable) -> None:
        """Read models, versions, aliases and the audit trail."""
        self.registry.grant_read_data(grantee)
        self.audit.grant(grantee, *AUDIT_READ_ACTIONS)
        self.key.grant_decrypt(grantee)

    def grant_verify(self, grantee: iam.IGrantable) -> None:
        """Read the audit trail and check the writer's signatures on its heads."""
        self.grant_registry_read(grantee)
        self.audit_key.grant_verify_mac(grantee)

    def grant_records_writer(self, fn: lambda_.Function, capability: str) -> None:
        """Read the registry, and change it only through the records writer's ``capability``
        alias (``FLYWHEEL_RECORDS_WRITER`` / ``FLYWHEEL_RECORDS_CAPABILITY``)."""
        self.grant_registry_read(fn)
        self.grant_writer_capability(fn, capability)
        fn.add_environment("FLYWHEEL_RECORDS_WRITER", self._naming.function(RECORDS_WRITER))
        fn.add_environment("FLYWHEEL_RECORDS_CAPABILITY", capability)

    def grant_writer_capability(self, grantee: iam.IGrantable, capability: str) -> None:
        """``lambda:InvokeFunction`` on the records writer's ``capability`` alias only."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["lambda:InvokeFunction"],
            resource_arns=[self._naming.function_arn(RECORDS_WRITER, capability)],
        )

    def grant_table_writes(self, grantee: iam.IGrantable) -> None:
        """What only the records writer holds: the registry and the audit table.

        The audit table gets no UpdateItem, DeleteItem or BatchWriteItem: entries are only
        ever added (conditional puts), and the signed hash chain exposes any overwrite.
        """
        self.registry.grant_read_write_data(grantee)
        self.audit.grant(grantee, *AUDIT_READ_ACTIONS, "dynamodb:PutItem")
        self.key.grant_encrypt_decrypt(grantee)
