"""The storage resources Flywheel needs, described once.

The CDK app (``infra/``) and the local runtime both build tables and buckets
from these definitions, so the two can never disagree on keys or indexes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

KeyType = Literal["S", "N", "B"]


@dataclass(frozen=True)
class Key:
    name: str
    type: KeyType = "S"


@dataclass(frozen=True)
class IndexDef:
    name: str
    partition_key: Key
    sort_key: Key | None = None


@dataclass(frozen=True)
class TableDef:
    """A DynamoDB table: keys, global secondary indexes and an optional TTL attribute.

    Examples
    --------
    >>> REGISTRY_TABLE.partition_key.name, REGISTRY_TABLE.sort_key.name
    ('pk', 'sk')
    """

    logical_id: str
    env_var: str
    partition_key: Key
    sort_key: Key | None = None
    indexes: tuple[IndexDef, ...] = field(default_factory=tuple)
    ttl_attribute: str | None = None


@dataclass(frozen=True)
class BucketDef:
    logical_id: str
    env_var: str
    #: Objects are write-once: Object Lock with a default retention (mode by stage).
    object_lock: bool = False


REGISTRY_TABLE = TableDef(
    logical_id="RegistryTable",
    env_var="FLYWHEEL_REGISTRY_TABLE",
    partition_key=Key("pk"),
    sort_key=Key("sk"),
    indexes=(IndexDef("models-index", Key("gsi1pk"), Key("gsi1sk")),),
)

#: The audit table's sparse index: only chain heads carry its key, so it lists every chain.
AUDIT_HEADS_INDEX = "heads-index"

AUDIT_TABLE = TableDef(
    logical_id="AuditTable",
    env_var="FLYWHEEL_AUDIT_TABLE",
    partition_key=Key("pk"),
    sort_key=Key("seq", "N"),
    indexes=(IndexDef(AUDIT_HEADS_INDEX, Key("head_index"), Key("pk")),),
)

ONLINE_FEATURES_TABLE = TableDef(
    logical_id="OnlineFeaturesTable",
    env_var="FLYWHEEL_ONLINE_FEATURES_TABLE",
    partition_key=Key("pk"),
    sort_key=Key("sk"),
)

IDEMPOTENCY_TABLE = TableDef(
    logical_id="IdempotencyTable",
    env_var="FLYWHEEL_IDEMPOTENCY_TABLE",
    partition_key=Key("id"),
    ttl_attribute="expiration",
)

#: The LLM gateway's own table: budget spend and usage counters (ADR 79). Only the gateway
#: writes it; the registry table stays the records writer's alone.
LLM_USAGE_TABLE = TableDef(
    logical_id="LlmUsageTable",
    env_var="FLYWHEEL_LLM_USAGE_TABLE",
    partition_key=Key("pk"),
    sort_key=Key("sk"),
)

ARTIFACTS_BUCKET = BucketDef(
    logical_id="ArtifactsBucket", env_var="FLYWHEEL_ARTIFACTS_BUCKET", object_lock=True
)
FEATURES_BUCKET = BucketDef(logical_id="FeaturesBucket", env_var="FLYWHEEL_FEATURES_BUCKET")
#: Signed audit heads, copied out of DynamoDB by the anchor job (compliance-mode lock).
ANCHORS_BUCKET = BucketDef(
    logical_id="AnchorsBucket", env_var="FLYWHEEL_ANCHORS_BUCKET", object_lock=True
)

TABLES: tuple[TableDef, ...] = (
    REGISTRY_TABLE,
    AUDIT_TABLE,
    ONLINE_FEATURES_TABLE,
    IDEMPOTENCY_TABLE,
    LLM_USAGE_TABLE,
)
BUCKETS: tuple[BucketDef, ...] = (ARTIFACTS_BUCKET, FEATURES_BUCKET, ANCHORS_BUCKET)
