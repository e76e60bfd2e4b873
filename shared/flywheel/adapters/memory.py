"""In-memory registry and audit log with the DynamoDB adapters' semantics (tests, demos)."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from flywheel.audit.models import GENESIS_HASH, AuditDraft, AuditEntry, ChainHead, seal
from flywheel.clock import Clock, SystemClock, isoformat
from flywheel.errors import (
    ConcurrentModificationError,
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

if TYPE_CHECKING:
    from collections.abc import Iterator

    from flywheel.audit.ports import HeadSigner


class InMemoryAuditLog:
    """Hash-chained audit entries kept in a dict; thread-safe.

    Examples
    --------
    >>> from flywheel.audit.models import AuditAction
    >>> log = InMemoryAuditLog()
    >>> log.append(AuditDraft(model="m", action=AuditAction.ARCHIVED, actor="a")).seq
    1
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        lock: threading.RLock | None = None,
        signer: HeadSigner | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self.lock = lock or threading.RLock()
        self.chains: dict[str, list[AuditEntry]] = {}
        self.heads: dict[str, ChainHead] = {}
        #: The audit writer's key: every new head is signed with it (``None``: unsigned).
        self.signer = signer

    def prepare(self, draft: AuditDraft) -> AuditEntry:
        head = self.heads.get(draft.model)
        seq = head.seq + 1 if head else 1
        prev = head.hash if head else GENESIS_HASH
        return seal(draft, seq=seq, timestamp=isoformat(self._clock.now()), prev_hash=prev)

    def commit(self, entry: AuditEntry) -> None:
        head = self.heads.get(entry.model)
        if (head.seq if head else 0) != entry.seq - 1:
            raise ConcurrentModificationError("audit chain moved on; retry")
        self.chains.setdefault(entry.model, []).append(entry)
        head = ChainHead(model=entry.model, seq=entry.seq, hash=entry.hash)
        if self.signer is not None:
            head = head.model_copy(update={"mac": self.signer.sign(head.message())})
        self.heads[entry.model] = head

    def append(self, draft: AuditDraft) -> AuditEntry:
        with self.lock:
            entry = self.prepare(draft)
            self.commit(entry)
            return entry

    def entries(self, model: str) -> Iterator[AuditEntry]:
        with self.lock:
            snapshot = list(self.chains.get(model, []))
        yield from snapshot

    def head(self, model: str) -> ChainHead | None:
        with self.lock:
            return self.heads.get(model)

    def streams(self) -> Iterator[str]:
        """Every chain in the log."""
        with self.lock:
            names = sorted(self.heads)
        yield from names


class InMemoryModelRegistry:
    """A registry in dicts, applying each change and its audit entry under one lock.

    It is also the in-memory :class:`~flywheel.registry.ports.RecordStore`: auxiliary
    records join a change atomically, as they do in the DynamoDB adapter.
    """

    def __init__(self, audit: InMemoryAuditLog, *, clock: Clock | None = None) -> None:
        self._audit = audit
        self._clock = clock or SystemClock()
        self._lock = audit.lock
        self._models: dict[str, Model] = {}
        self._versions: dict[tuple[str, int], ModelVersion] = {}
        self._records: dict[tuple[str, str], StoredRecord] = {}

    def create_version(
        self, draft: VersionDraft, *, actor: str, audit: AuditDraft
    ) -> tuple[ModelVersion, AuditEntry]:
        with self._lock:
            now = self._clock.now()
            model = self._models.get(draft.name) or Model(
                name=draft.name, kind=draft.kind, created_at=now, created_by=actor
            )
            if model.kind is not draft.kind:
                raise RegistryKindError.of(draft.name, model.kind, draft.kind)
            number = model.latest_version + 1
            version = ModelVersion(
                **draft.model_dump(),
                version=number,
                status=VersionStatus.CANDIDATE,
                created_by=actor,
                created_at=now,
                updated_at=now,
                updated_by=actor,
            )
            entry = self._audit.prepare(audit.model_copy(update={"version": number}))
            self._audit.commit(entry)
            self._models[draft.name] = model.model_copy(update={"latest_version": number})
            self._versions[(draft.name, number)] = version
            return version, entry

    def apply(self, change: RegistryChange, *, actor: str, audit: AuditDraft) -> AuditEntry:
        with self._lock:
            model = self.get_model(change.model) if change.touches_model else None
            for status in change.statuses:
                current = self.get_version(change.model, status.version).status
                if current != status.expected:
                    raise status.conflict(change.model, current)
            for write in change.records:
                self._check_record(write)
            aliases: dict[Alias, int] = dict(model.aliases) if model else {}
            for alias in change.aliases:
                if aliases.get(alias.alias) != alias.expected:
                    raise ConcurrentModificationError(
                        f"alias {alias.alias} of {change.model!r} changed concurrently",
                        field="alias",
                    )
                if alias.target is None:
                    aliases.pop(alias.alias, None)
                else:
                    aliases[alias.alias] = alias.target
            entry = self._audit.prepare(audit)
            self._audit.commit(entry)
            now = self._clock.now()
            for status in change.statuses:
                key = (change.model, status.version)
                self._versions[key] = self._versions[key].model_copy(
                    update={"status": status.target, "updated_at": now, "updated_by": actor}
                )
            if model is not None:
                update: dict[str, object] = {"aliases": aliases}
                if change.champion_history is not None:
                    update["champion_history"] = change.champion_history
                self._models[change.model] = model.model_copy(update=update)
            for write in change.records:
                self._store_record(write)
            return entry

    # -- auxiliary records -------------------------------------------------------------------
    def get_record(self, key: RecordKey) -> StoredRecord | None:
        with self._lock:
            return self._records.get((key.partition, key.sort))

    def list_records(
        self, partition: str, sort_prefix: str, *, limit: int = 50, page_token: str | None = None
    ) -> Page[StoredRecord]:
        check_limit(limit)
        scope = f"records:{partition}:{sort_prefix}"
        after = str(decode_token(scope, page_token)["after"]) if page_token else ""
        with self._lock:
            keys = sorted(
                sort
                for part, sort in self._records
                if part == partition and sort.startswith(sort_prefix) and sort > after
            )
            items = [self._records[(partition, sort)] for sort in keys[:limit]]
        token = encode_token(scope, {"after": keys[limit - 1]}) if len(keys) > limit else None
        return Page[StoredRecord](items=items, next_token=token)

    def put_record(self, write: RecordWrite) -> StoredRecord:
        with self._lock:
            self._check_record(write)
            return self._store_record(write)

    def _check_record(self, write: RecordWrite) -> None:
        current = self._records.get((write.key.partition, write.key.sort))
        revision = current.revision if current else None
        if revision != write.expected_revision:
            raise write.conflict()

    def _store_record(self, write: RecordWrite) -> StoredRecord:
        # A JSON round trip, as DynamoDB stores it: no aliasing of the caller's dicts.
        doc = json.loads(json.dumps(write.doc, allow_nan=False))
        record = StoredRecord(key=write.key, doc=doc, revision=write.next_revision)
        self._records[(write.key.partition, write.key.sort)] = record
        return record

    def get_model(self, name: str) -> Model:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise ModelNotFoundError(f"model {name!r} does not exist", field="name")
        return model

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._lock:
            found = self._versions.get((name, version))
            known = name in self._models
        if found is None:
            if not known:
                raise ModelNotFoundError(f"model {name!r} does not exist", field="name")
            raise VersionNotFoundError(f"model {name!r} has no version {version}", field="version")
        return found

    def list_models(
        self,
        *,
        limit: int = 50,
        page_token: str | None = None,
        kind: RegistryKind = RegistryKind.MODEL,
    ) -> Page[Model]:
        check_limit(limit)
        scope = "models" if kind is RegistryKind.MODEL else f"{kind}s"
        after = decode_token(scope, page_token)["after"] if page_token else ""
        with self._lock:
            names = sorted(n for n, m in self._models.items() if m.kind is kind and n > after)
            items = [self._models[n] for n in names[:limit]]
        token = encode_token(scope, {"after": names[limit - 1]}) if len(names) > limit else None
        return Page[Model](items=items, next_token=token)

    def list_versions(
        self, name: str, *, limit: int = 50, page_token: str | None = None
    ) -> Page[ModelVersion]:
        check_limit(limit)
        self.get_model(name)
        scope = f"versions:{name}"
        after = int(decode_token(scope, page_token)["after"]) if page_token else 0
        with self._lock:
            numbers = sorted(v for (n, v) in self._versions if n == name and v > after)
            items = [self._versions[(name, v)] for v in numbers[:limit]]
        token = encode_token(scope, {"after": numbers[limit - 1]}) if len(numbers) > limit else None
        return Page[ModelVersion](items=items, next_token=token)
