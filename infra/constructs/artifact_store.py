"""S3: the artifacts and features buckets (from ``flywheel.resources``) plus their access logs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from flywheel.resources import ANCHORS_BUCKET, BUCKETS
from infra.nag import acknowledge

if TYPE_CHECKING:
    from flywheel.resources import BucketDef
    from infra.context import StageContext


class ArtifactStore(Construct):
    """Versioned, KMS-encrypted, TLS-only, private buckets with server access logging.

    The CloudFormation logical ids are the ones in ``flywheel.resources`` (stable across
    refactors, so a moved construct never replaces a bucket).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = ctx.config
        # S3 delivers server access logs only to SSE-S3 buckets, hence no CMK here.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogsBucket",
            bucket_name=ctx.naming.bucket("accesslogs"),
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(cfg.access_log_retention_days),
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=ctx.removal_policy,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This bucket is the server-access-log target of the data buckets; logging it "
            "into itself would create a feedback loop. It holds logs only, no data.",
        )
        self.buckets: dict[str, s3.Bucket] = {}
        for bucket in BUCKETS:
            created = s3.Bucket(
                self,
                bucket.logical_id,
                bucket_name=ctx.naming.bucket(bucket),
                encryption=s3.BucketEncryption.KMS,
                encryption_key=key,
                bucket_key_enabled=True,
                enforce_ssl=True,
                minimum_tls_version=1.2,
                versioned=True,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                server_access_logs_bucket=self.access_logs,
                server_access_logs_prefix=f"{bucket.logical_id}/",
                lifecycle_rules=[
                    s3.LifecycleRule(
                        id="expire-noncurrent-versions",
                        noncurrent_version_expiration=Duration.days(
                            cfg.noncurrent_version_retention_days
                        ),
                        abort_incomplete_multipart_upload_after=Duration.days(7),
                    )
                ],
                removal_policy=ctx.removal_policy,
                object_lock_enabled=bucket.object_lock or None,
                object_lock_default_retention=self._retention(ctx, bucket),
            )
            created.node.default_child.override_logical_id(bucket.logical_id)  # type: ignore[union-attr]
            self.buckets[bucket.logical_id] = created

    @staticmethod
    def _retention(ctx: StageContext, bucket: BucketDef) -> s3.ObjectLockRetention | None:
        """Write-once buckets lock every new object version by default (mode by stage)."""
        if not bucket.object_lock:
            return None
        cfg = ctx.config
        days = Duration.days(
            cfg.anchor_retention_days
            if bucket.logical_id == ANCHORS_BUCKET.logical_id
            else cfg.artifact_retention_days
        )
        if cfg.object_lock_mode == "COMPLIANCE":
            return s3.ObjectLockRetention.compliance(days)
        return s3.ObjectLockRetention.governance(days)
