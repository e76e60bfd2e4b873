"""DynamoDB adapters for the registry and the audit trail.

Both tables are written in one ``TransactWriteItems`` call per change: the
registry items (each conditional on its expected current value), the next audit
entry (conditional on its sequence number being free) and the chain head
(conditional on the previous head).  Two writers can therefore never fork the
chain, skip a number, or record a change without its audit entry.
"""

from __future__ import annotations

import json
import random
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from flywheel.audit.models import GENESIS_HASH, AuditAction, AuditDraft, AuditEntry, ChainHead, seal
from flywheel.clock import Clock, SystemClock, isoformat
from flywheel.errors import (
    ConcurrentModificationError,
    FlywheelError,
    ModelNotFoundError,
    RegistryKindError,
    VersionNotFoundError,
)
from flywheel.registry.models import (
    Alias,
    Model,
    ModelVersion,
    Page,
    RecordKey,
    RecordWrite,
    RegistryChange,
    RegistryKind,
    StoredRecord,
    VersionDraft,
    VersionStatus,
)
from flywheel.registry.pagination import check_limit, decode_token, encode_token
from flywheel.resources import AUDIT_HEADS_INDEX as HEADS_INDEX

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from flywheel.audit.ports import HeadSigner

_SER = TypeSerializer()
_DESER = TypeDeserializer()
MODELS_INDEX = "models-index"
#: The models index's partition of each kind: prompts are listed apart from models.
INDEX_PARTITION = {RegistryKind.MODEL: "MODEL", RegistryKind.PROMPT: "PROMPT"}


class StorageError(FlywheelError):
    code = "storage_error"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _SER.serialize(v) for k, v in values.items()}


def _load(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESER.deserialize(v)) for k, v in item.items()}


def _cancellation_codes(error: ClientError) -> list[str]:
    reasons = error.response.get("CancellationReasons") or []
    return [str(r.get("Code", "None")) for r in reasons]


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))


#: The value of ``head_index`` on every head item.
HEADS_INDEX_KEY = "HEAD"


class DynamoDbAuditLog:
    """Audit chains in a table keyed ``(pk=model, seq)``; ``seq = 0`` holds the chain head.

    Examples
    --------
    >>> log = DynamoDbAuditLog("audit", client=client)  # doctest: +SKIP
    >>> log.append(draft).seq  # doctest: +SKIP
    1
    """

    HEAD_SEQ = 0

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        clock: Clock | None = None,
        max_attempts: int = 60,
        signer: HeadSigner | None = None,
    ) -> None:
        self.table_name = table_name
        self.client: DynamoDBClient = client or boto3.client("dynamodb")
        self._clock = clock or SystemClock()
        self._max_attempts = max_attempts
        #: The audit writer's key: every new head is signed with it (``None``: unsigned).
        self.signer = signer

    # -- transaction building (used by the registry adapter too) -----------------------------
    def prepare(self, draft: AuditDraft) -> tuple[AuditEntry, list[TransactWriteItemTypeDef]]:
        head = self.head(draft.model)
        prev_seq = head.seq if head else 0
        prev_hash = head.hash if head else GENESIS_HASH
        entry = seal(
            draft, seq=prev_seq + 1, timestamp=isoformat(self._clock.now()), prev_hash=prev_hash
        )
        put_entry: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self.table_name,
                "Item": _item(self._entry_values(entry)),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        head_values: dict[str, Any] = {
            "pk": entry.model,
            "seq": self.HEAD_SEQ,
            "head_seq": entry.seq,
            "head_hash": entry.hash,
            "updated_at": entry.timestamp,
            # Only head items carry this attribute: the sparse index lists every chain.
            "head_index": HEADS_INDEX_KEY,
        }
        if self.signer is not None:
            new_head = ChainHead(model=entry.model, seq=entry.seq, hash=entry.hash)
            head_values["head_mac"] = self.signer.sign(new_head.message())
        put_head: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self.table_name,
                "Item": _item(head_values),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        if head is not None:
            put_head["Put"]["ConditionExpression"] = "head_seq = :prev"
            put_head["Put"]["ExpressionAttributeValues"] = {":prev": {"N": str(prev_seq)}}
        return entry, [put_entry, put_head]

    @staticmethod
    def _entry_values(entry: AuditEntry) -> dict[str, Any]:
        return {
            "pk": entry.model,
            "seq": entry.seq,
            "timestamp": entry.timestamp,
            "action": str(entry.action),
            "actor": entry.actor,
            "version": entry.version,
            "reason": entry.reason,
            "details": json.dumps(entry.details, sort_keys=True, separators=(",", ":")),
            "prev_hash": entry.prev_hash,
            "hash": entry.hash,
        }

    def append(self, draft: AuditDraft) -> AuditEntry:
        for attempt in range(self._max_attempts):
            entry, items = self.prepare(draft)
            try:
                self.client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise StorageError("could not write the audit entry") from exc
                _backoff(attempt)
                continue
            return entry
        raise ConcurrentModificationError(
            f"audit chain of {draft.model!r} is too busy; gave up after {self._max_attempts} tries"
        )

    # -- reads -------------------------------------------------------------------------------
    def head(self, model: str) -> ChainHead | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": model}, "seq": {"N": str(self.HEAD_SEQ)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        values = _load(item)
        mac = values.get("head_mac")
        return ChainHead(
            model=model,
            seq=int(values["head_seq"]),
            hash=str(values["head_hash"]),
            mac=str(mac) if mac is not None else None,
        )

    def streams(self) -> Iterator[str]:
        """Every chain in the table (from the sparse index of head items)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": HEADS_INDEX,
            "KeyConditionExpression": "head_index = :h",
            "ExpressionAttributeValues": {":h": {"S": HEADS_INDEX_KEY}},
            "ProjectionExpression": "pk",
        }
        while True:
            response = self.client.query(**kwargs)
            for item in response.get("Items", []):
                yield str(item["pk"]["S"])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def entries(self, model: str) -> Iterator[AuditEntry]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND seq > :zero",
            "ExpressionAttributeValues": {":pk": {"S": model}, ":zero": {"N": "0"}},
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            for item in response.get("Items", []):
                yield self._to_entry(_load(item))
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    @staticmethod
    def _to_entry(values: dict[str, Any]) -> AuditEntry:
        """Rebuild an entry as stored. Damage that breaks parsing still shows up as an edit."""
        try:
            return AuditEntry(
                model=values["pk"],
                seq=int(values["seq"]),
                timestamp=values["timestamp"],
                action=AuditAction(values["action"]),
                actor=values["actor"],
                version=values.get("version"),
                reason=values.get("reason"),
                details=json.loads(values["details"]),
                prev_hash=values["prev_hash"],
                hash=values["hash"],
            )
        except (KeyError, ValueError, TypeError):
            return AuditEntry(
                model=str(values.get("pk", "")),
                seq=max(1, int(values.get("seq", 1))),
                timestamp=str(values.get("timestamp", "")),
                action=AuditAction.ANCHOR_RECORDED,
                actor="<unreadable>",
                details={"unreadable_item": {k: str(v) for k, v in values.items()}},
                prev_hash=GENESIS_HASH,
                hash=GENESIS_HASH,
            )


class DynamoDbModelRegistry:
    """Models and versions in one table (``pk = MODEL#name``; ``sk = META`` or ``V#0000000001``).

    ``META`` holds the name's kind (no attribute: ``model``, as stored before prompts); the
    models index lists each kind in its own partition (``gsi1pk``).
    """

    def __init__(
        self,
        table_name: str,
        audit: DynamoDbAuditLog,
        *,
        client: DynamoDBClient | None = None,
        clock: Clock | None = None,
        max_attempts: int = 60,
    ) -> None:
        self.table_name = table_name
        self._audit = audit
        self.client: DynamoDBClient = client or audit.client
        self._clock = clock or SystemClock()
        self._max_attempts = max_attempts

    @staticmethod
    def _pk(name: str) -> dict[str, Any]:
        return {"S": f"MODEL#{name}"}

    @staticmethod
    def _version_sk(version: int) -> dict[str, Any]:
        return {"S": f"V#{version:010d}"}

    # -- writes ------------------------------------------------------------------------------
    def create_version(
        self, draft: VersionDraft, *, actor: str, audit: AuditDraft
    ) -> tuple[ModelVersion, AuditEntry]:
        for attempt in range(self._max_attempts):
            now = isoformat(self._clock.now())
            meta = self._get_meta(draft.name)
            if meta is not None:
                held = RegistryKind(meta.get("kind", RegistryKind.MODEL))
                if held is not draft.kind:
                    raise RegistryKindError.of(draft.name, held, draft.kind)
            previous = int(meta["latest_version"]) if meta else 0
            number = previous + 1
            meta_op: TransactWriteItemTypeDef
            if meta is None:
                meta_op = {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": _item(
                            {
                                "pk": f"MODEL#{draft.name}",
                                "sk": "META",
                                "gsi1pk": INDEX_PARTITION[draft.kind],
                                "gsi1sk": draft.name,
                                "name": draft.name,
                                "kind": str(draft.kind),
                                "latest_version": number,
                                "aliases": {},
                                "champion_history": [],
                                "created_at": now,
                                "created_by": actor,
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            else:
                meta_op = {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": {"pk": self._pk(draft.name), "sk": {"S": "META"}},
                        "UpdateExpression": "SET latest_version = :next",
                        "ConditionExpression": "latest_version = :prev",
                        "ExpressionAttributeValues": {
                            ":next": {"N": str(number)},
                            ":prev": {"N": str(previous)},
                        },
                    }
                }
            version_values = {
                "pk": f"MODEL#{draft.name}",
                "sk": f"V#{number:010d}",
                "version": number,
                "status": str(VersionStatus.CANDIDATE),
                "doc": draft.model_dump_json(),
                "created_at": now,
                "created_by": actor,
                "updated_at": now,
                "updated_by": actor,
            }
            put_version: TransactWriteItemTypeDef = {
                "Put": {
                    "TableName": self.table_name,
                    "Item": _item(version_values),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            entry, audit_ops = self._audit.prepare(audit.model_copy(update={"version": number}))
            try:
                self.client.transact_write_items(TransactItems=[meta_op, put_version, *audit_ops])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise StorageError("could not register the version") from exc
                _backoff(attempt)
                continue
            return self._to_version(_load(_item(version_values))), entry
        raise ConcurrentModificationError(
            f"could not allocate a version of {draft.name!r}: too many concurrent writers"
        )

    def apply(self, change: RegistryChange, *, actor: str, audit: AuditDraft) -> AuditEntry:
        for attempt in range(self._max_attempts):
            now = isoformat(self._clock.now())
            ops: list[TransactWriteItemTypeDef] = []
            for status in change.statuses:
                ops.append(
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": {
                                "pk": self._pk(change.model),
                                "sk": self._version_sk(status.version),
                            },
                            "UpdateExpression": (
                                "SET #st = :to, updated_at = :now, updated_by = :by"
                            ),
                            "ConditionExpression": "#st = :from",
                            "ExpressionAttributeNames": {"#st": "status"},
                            "ExpressionAttributeValues": {
                                ":to": {"S": str(status.target)},
                                ":from": {"S": str(status.expected)},
                                ":now": {"S": now},
                                ":by": {"S": actor},
                            },
                        }
                    }
                )
            meta_op = self._meta_update(change)
            if meta_op is not None:
                ops.append(meta_op)
            ops.extend(self._record_put(write, now) for write in change.records)
            entry, audit_ops = self._audit.prepare(audit)
            try:
                self.client.transact_write_items(TransactItems=[*ops, *audit_ops])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise StorageError("could not apply the registry change") from exc
                codes = _cancellation_codes(exc)
                self._raise_for_registry_conflict(change, codes, has_meta=meta_op is not None)
                _backoff(attempt)
                continue
            return entry
        raise ConcurrentModificationError(
            f"audit chain of {change.model!r} is too busy; gave up after {self._max_attempts} tries"
        )

    def _meta_update(self, change: RegistryChange) -> TransactWriteItemTypeDef | None:
        if not change.aliases and change.champion_history is None:
            return None
        sets: list[str] = []
        removes: list[str] = []
        conditions = ["attribute_exists(pk)"]
        names: dict[str, str] = {"#al": "aliases"}
        values: dict[str, Any] = {}
        for i, alias in enumerate(change.aliases):
            names[f"#a{i}"] = str(alias.alias)
            if alias.target is None:
                removes.append(f"#al.#a{i}")
            else:
                sets.append(f"#al.#a{i} = :t{i}")
                values[f":t{i}"] = {"N": str(alias.target)}
            if alias.expected is None:
                conditions.append(f"attribute_not_exists(#al.#a{i})")
            else:
                conditions.append(f"#al.#a{i} = :e{i}")
                values[f":e{i}"] = {"N": str(alias.expected)}
        if change.champion_history is not None:
            sets.append("champion_history = :h")
            values[":h"] = _SER.serialize(list(change.champion_history))
        expression = ""
        if sets:
            expression += "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": self._pk(change.model), "sk": {"S": "META"}},
            "UpdateExpression": expression.strip(),
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
        }
        if values:
            update["ExpressionAttributeValues"] = values
        op: TransactWriteItemTypeDef = {"Update": update}  # type: ignore[typeddict-item]
        return op

    def _raise_for_registry_conflict(
        self, change: RegistryChange, codes: list[str], *, has_meta: bool
    ) -> None:
        """Turn a cancelled transaction into the error a caller can act on (or return to retry)."""
        failed = {i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"}
        for i, status in enumerate(change.statuses):
            if i in failed:
                current = self.get_version(change.model, status.version).status
                raise status.conflict(change.model, current)
        if has_meta and len(change.statuses) in failed:
            self.get_model(change.model)  # raises ModelNotFoundError when it is gone
            raise ConcurrentModificationError(
                f"aliases of {change.model!r} changed concurrently; re-read and retry",
                field="alias",
            )
        first_record = len(change.statuses) + (1 if has_meta else 0)
        for i, write in enumerate(change.records, start=first_record):
            if i in failed:
                raise write.conflict()
        # Otherwise the audit head moved: the caller retries with a fresh head.

    # -- auxiliary records -------------------------------------------------------------------
    def _record_put(self, write: RecordWrite, now: str) -> TransactWriteItemTypeDef:
        put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": _item(
                {
                    "pk": write.key.partition,
                    "sk": write.key.sort,
                    "doc": json.dumps(write.doc, sort_keys=True, allow_nan=False),
                    "rev": write.next_revision,
                    "updated_at": now,
                }
            ),
        }
        if write.expected_revision is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "rev = :rev"
            put["ExpressionAttributeValues"] = {":rev": {"N": str(write.expected_revision)}}
        op: TransactWriteItemTypeDef = {"Put": put}  # type: ignore[typeddict-item]
        return op

    def get_record(self, key: RecordKey) -> StoredRecord | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": key.partition}, "sk": {"S": key.sort}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        values = _load(item)
        return StoredRecord(key=key, doc=json.loads(values["doc"]), revision=int(values["rev"]))

    def list_records(
        self, partition: str, sort_prefix: str, *, limit: int = 50, page_token: str | None = None
    ) -> Page[StoredRecord]:
        check_limit(limit)
        scope = f"records:{partition}:{sort_prefix}"
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": partition},
                ":prefix": {"S": sort_prefix},
            },
            "Limit": limit,
            "ConsistentRead": True,
        }
        if page_token:
            kwargs["ExclusiveStartKey"] = self._start_key(scope, page_token)
        response = self.client.query(**kwargs)
        items = []
        for item in response.get("Items", []):
            values = _load(item)
            key = RecordKey(partition=values["pk"], sort=values["sk"])
            items.append(
                StoredRecord(key=key, doc=json.loads(values["doc"]), revision=int(values["rev"]))
            )
        return Page[StoredRecord](items=items, next_token=self._token(scope, response))

    def put_record(self, write: RecordWrite) -> StoredRecord:
        op = self._record_put(write, isoformat(self._clock.now()))["Put"]
        try:
            self.client.put_item(**op)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise write.conflict() from exc
            raise StorageError("could not write the record") from exc
        return StoredRecord(key=write.key, doc=write.doc, revision=write.next_revision)

    # -- reads -------------------------------------------------------------------------------
    def _get_meta(self, name: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": self._pk(name), "sk": {"S": "META"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _load(item) if item else None

    @staticmethod
    def _to_model(values: dict[str, Any]) -> Model:
        return Model(
            name=values["name"],
            kind=RegistryKind(values.get("kind", RegistryKind.MODEL)),
            latest_version=int(values["latest_version"]),
            aliases={Alias(k): int(v) for k, v in (values.get("aliases") or {}).items()},
            champion_history=tuple(int(v) for v in values.get("champion_history") or []),
            created_at=values["created_at"],
            created_by=values["created_by"],
        )

    @staticmethod
    def _to_version(values: dict[str, Any]) -> ModelVersion:
        doc = json.loads(values["doc"])
        return ModelVersion(
            **doc,
            version=int(values["version"]),
            status=VersionStatus(values["status"]),
            created_by=values["created_by"],
            created_at=values["created_at"],
            updated_at=values["updated_at"],
            updated_by=values["updated_by"],
        )

    def get_model(self, name: str) -> Model:
        meta = self._get_meta(name)
        if meta is None:
            raise ModelNotFoundError(f"model {name!r} does not exist", field="name")
        return self._to_model(meta)

    def get_version(self, name: str, version: int) -> ModelVersion:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": self._pk(name), "sk": self._version_sk(version)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            self.get_model(name)
            raise VersionNotFoundError(f"model {name!r} has no version {version}", field="version")
        return self._to_version(_load(item))

    def list_models(
        self,
        *,
        limit: int = 50,
        page_token: str | None = None,
        kind: RegistryKind = RegistryKind.MODEL,
    ) -> Page[Model]:
        check_limit(limit)
        scope = "models" if kind is RegistryKind.MODEL else f"{kind}s"
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": MODELS_INDEX,
            "KeyConditionExpression": "gsi1pk = :m",
            "ExpressionAttributeValues": {":m": {"S": INDEX_PARTITION[kind]}},
            "Limit": limit,
        }
        if page_token:
            kwargs["ExclusiveStartKey"] = self._start_key(scope, page_token)
        response = self.client.query(**kwargs)
        items = [self._to_model(_load(i)) for i in response.get("Items", [])]
        return Page[Model](items=items, next_token=self._token(scope, response))

    def list_versions(
        self, name: str, *, limit: int = 50, page_token: str | None = None
    ) -> Page[ModelVersion]:
        check_limit(limit)
        self.get_model(name)
        scope = f"versions:{name}"
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :v)",
            "ExpressionAttributeValues": {":pk": self._pk(name), ":v": {"S": "V#"}},
            "Limit": limit,
            "ConsistentRead": True,
        }
        if page_token:
            kwargs["ExclusiveStartKey"] = self._start_key(scope, page_token)
        response = self.client.query(**kwargs)
        items = [self._to_version(_load(i)) for i in response.get("Items", [])]
        return Page[ModelVersion](items=items, next_token=self._token(scope, response))

    @staticmethod
    def _token(scope: str, response: Any) -> str | None:
        last = response.get("LastEvaluatedKey")
        if not last:
            return None
        return encode_token(scope, {k: v["S"] for k, v in last.items()})

    @staticmethod
    def _start_key(scope: str, token: str) -> dict[str, Any]:
        position = decode_token(scope, token)
        if not all(isinstance(v, str) for v in position.values()):
            from flywheel.errors import InvalidPageTokenError

            raise InvalidPageTokenError("page token is not valid", field="page_token")
        return {k: {"S": v} for k, v in position.items()}
