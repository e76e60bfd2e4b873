"""The audit trail port."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator

    from flywheel.audit.models import AuditDraft, AuditEntry, ChainHead


class AuditLog(Protocol):
    """An append-only store of hash-chained entries, one chain per model."""

    def append(self, draft: AuditDraft) -> AuditEntry:
        """Seal ``draft`` as the next link; concurrent appends never fork or skip."""
        ...

    def entries(self, model: str) -> Iterator[AuditEntry]:
        """All entries of a model's chain, in sequence order, as stored."""
        ...

    def head(self, model: str) -> ChainHead | None:
        """The head record written with the last entry (``None`` for an empty chain)."""
        ...
