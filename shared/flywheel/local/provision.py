"""Create the tables and buckets of :mod:`flywheel.resources` on moto (or any endpoint).

The CDK app builds the same resources from the same definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from flywheel.resources import BUCKETS, TABLES, BucketDef, TableDef

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_s3.client import S3Client


def table_spec(table: TableDef, name: str) -> dict[str, Any]:
    """``CreateTable`` arguments for a table definition (on-demand billing)."""
    keys = [table.partition_key] + ([table.sort_key] if table.sort_key else [])
    attributes = {k.name: k.type for k in keys}
    schema = [{"AttributeName": table.partition_key.name, "KeyType": "HASH"}]
    if table.sort_key:
        schema.append({"AttributeName": table.sort_key.name, "KeyType": "RANGE"})
    indexes = []
    for index in table.indexes:
        index_schema = [{"AttributeName": index.partition_key.name, "KeyType": "HASH"}]
        attributes[index.partition_key.name] = index.partition_key.type
        if index.sort_key:
            index_schema.append({"AttributeName": index.sort_key.name, "KeyType": "RANGE"})
            attributes[index.sort_key.name] = index.sort_key.type
        indexes.append(
            {
                "IndexName": index.name,
                "KeySchema": index_schema,
                "Projection": {"ProjectionType": "ALL"},
            }
        )
    spec: dict[str, Any] = {
        "TableName": name,
        "KeySchema": schema,
        "AttributeDefinitions": [
            {"AttributeName": k, "AttributeType": t} for k, t in sorted(attributes.items())
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if indexes:
        spec["GlobalSecondaryIndexes"] = indexes
    return spec


def default_names(prefix: str = "flywheel-local") -> dict[str, str]:
    """Resource names for a local environment, keyed by each resource's env var."""
    names = {t.env_var: f"{prefix}-{t.logical_id}" for t in TABLES}
    names.update({b.env_var: f"{prefix}-{b.logical_id.lower()}" for b in BUCKETS})
    names[AUDIT_KEY_VARIABLE] = f"alias/{prefix}-audit"
    return names


#: The audit writer's HMAC key (an alias), named like the other resources.
AUDIT_KEY_VARIABLE = "FLYWHEEL_AUDIT_KEY"


def provision(
    dynamodb: DynamoDBClient,
    s3: S3Client,
    names: Mapping[str, str],
    *,
    tables: tuple[TableDef, ...] = TABLES,
    buckets: tuple[BucketDef, ...] = BUCKETS,
    kms: KMSClient | None = None,
) -> None:
    """Create every table, versioned bucket (write-once where the definition says so) and,
    with ``kms``, the audit writer's HMAC key that does not exist yet (idempotent)."""
    if kms is not None and AUDIT_KEY_VARIABLE in names:
        ensure_hmac_key(kms, names[AUDIT_KEY_VARIABLE])
    for table in tables:
        try:
            dynamodb.create_table(**table_spec(table, names[table.env_var]))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
        if table.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=names[table.env_var],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
    for bucket in buckets:
        name = names[bucket.env_var]
        try:
            s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=bucket.object_lock)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in {
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            }:
                raise
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if bucket.object_lock:
            s3.put_object_lock_configuration(
                Bucket=name,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
                },
            )


def ensure_hmac_key(kms: KMSClient, alias: str) -> str:
    """The HMAC-SHA256 key behind ``alias``, created (with the alias) if there is none."""
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
    key_id = kms.create_key(
        KeySpec="HMAC_256",
        KeyUsage="GENERATE_VERIFY_MAC",
        Description="Flywheel audit writer: signs audit chain heads",
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id
