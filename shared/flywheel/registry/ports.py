"""The model registry port."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from flywheel.registry.models import RegistryKind

if TYPE_CHECKING:
    from flywheel.audit.models import AuditDraft, AuditEntry
    from flywheel.registry.models import (
        Model,
        ModelVersion,
        Page,
        RecordKey,
        RecordWrite,
        RegistryChange,
        StoredRecord,
        VersionDraft,
    )


class ModelRegistry(Protocol):
    """Models, versions and aliases. Every write carries its audit entry.

    Implementations apply the registry write and the audit append atomically: both
    happen or neither does.
    """

    def create_version(
        self, draft: VersionDraft, *, actor: str, audit: AuditDraft
    ) -> tuple[ModelVersion, AuditEntry]:
        """Allocate the next version number atomically and store the version as a candidate."""
        ...

    def apply(self, change: RegistryChange, *, actor: str, audit: AuditDraft) -> AuditEntry:
        """Apply status and alias changes, each conditional on its expected current value."""
        ...

    def get_model(self, name: str) -> Model: ...

    def get_version(self, name: str, version: int) -> ModelVersion: ...

    def list_models(
        self,
        *,
        limit: int = 50,
        page_token: str | None = None,
        kind: RegistryKind = RegistryKind.MODEL,
    ) -> Page[Model]:
        """The names holding ``kind`` versions (models, or prompts), by name."""
        ...

    def list_versions(
        self, name: str, *, limit: int = 50, page_token: str | None = None
    ) -> Page[ModelVersion]: ...


class RecordStore(Protocol):
    """Auxiliary records kept next to the registry (run locks, approvals, model configs).

    Records live in the registry's storage so that a record write can join a
    :class:`~flywheel.registry.models.RegistryChange` (one transaction with the version
    status and the audit entry). Writes are conditional on the revision the writer read.
    """

    def get_record(self, key: RecordKey) -> StoredRecord | None:
        """The record at ``key`` (strongly consistent), or ``None``."""
        ...

    def list_records(
        self, partition: str, sort_prefix: str, *, limit: int = 50, page_token: str | None = None
    ) -> Page[StoredRecord]:
        """The records of ``partition`` whose sort key starts with ``sort_prefix``, by sort key."""
        ...

    def put_record(self, write: RecordWrite) -> StoredRecord:
        """Write one record on its own (no audit entry).

        Raises
        ------
        ConcurrentModificationError
            The record's revision is not ``write.expected_revision`` (or it exists when
            it should not); re-read and decide again.
        """
        ...


class RegistryStorage(ModelRegistry, RecordStore, Protocol):
    """Versions, aliases and workflow records in one store (what the adapters implement)."""
