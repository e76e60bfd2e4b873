"""The stage's customer-managed KMS key for data at rest (buckets, tables, queues, topic)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

if TYPE_CHECKING:
    from infra.context import StageContext


class DataKey(Construct):
    """A symmetric CMK with yearly rotation, addressed by other stacks through its alias."""

    def __init__(self, scope: Construct, construct_id: str, *, ctx: StageContext) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=ctx.naming.data_key_alias,
            description=f"{ctx.config.prefix}: data at rest (S3, DynamoDB, SQS)",
            enable_key_rotation=True,
            rotation_period=Duration.days(365),
            pending_window=Duration.days(30 if ctx.config.retain_data else 7),
            removal_policy=ctx.removal_policy,
        )
        # EventBridge writes undeliverable events into KMS-encrypted SQS dead-letter queues.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeDeadLetterQueues",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        # The notifications topic is encrypted with this key: alarms (CloudWatch), rules
        # (EventBridge) and the stage's budget (AWS Budgets) of this account publish to it.
        publishers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
        if ctx.config.llm.monthly_budget is not None:
            publishers.append("budgets.amazonaws.com")
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="NotificationsTopicPublishers",
                principals=[iam.ServicePrincipal(service) for service in publishers],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        if ctx.config.notifications.emails:
            # Email subscriptions keep undeliverable messages in an encrypted queue.
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="NotificationsDeadLetters",
                    principals=[iam.ServicePrincipal("sns.amazonaws.com")],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                )
            )


class AuditKey(Construct):
    """The audit writer's HMAC-SHA256 key: it signs every audit chain head.

    Verifiers (the CLI, the anchor job) need ``kms:VerifyMac``; only the audit writer is
    granted ``kms:GenerateMac``.  HMAC keys cannot rotate automatically; a new key means
    a new alias target, and anchors keep the old heads verifiable while it exists.
    """

    def __init__(self, scope: Construct, construct_id: str, *, ctx: StageContext) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            alias=ctx.naming.audit_key_alias,
            description=f"{ctx.config.prefix}: signs audit chain heads (audit writer only)",
            key_spec=kms.KeySpec.HMAC_256,
            key_usage=kms.KeyUsage.GENERATE_VERIFY_MAC,
            pending_window=Duration.days(30 if ctx.config.retain_data else 7),
            removal_policy=ctx.removal_policy,
        )
        # Whatever IAM policies say elsewhere, only the records writer's role signs.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheAuditWriterSigns",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["kms:GenerateMac"],
                resources=["*"],
                conditions={
                    "ArnNotEquals": {"aws:PrincipalArn": ctx.naming.role_arn("records-writer")}
                },
            )
        )
