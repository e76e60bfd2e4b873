"""The audit trail port."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator

    from flywheel.audit.models import Anchor, AuditDraft, AuditEntry, ChainHead


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

    def streams(self) -> Iterator[str]:
        """The name of every chain in the log (models, feature views)."""
        ...


class HeadSigner(Protocol):
    """The audit writer's key: authenticates chain heads (KMS HMAC in AWS).

    Only the audit writer may :meth:`sign`; anyone who verifies the trail may
    :meth:`verify`.
    """

    def sign(self, message: bytes) -> str:
        """The MAC of ``message`` (base64)."""
        ...

    def verify(self, message: bytes, mac: str) -> bool:
        """Whether ``mac`` is the key's MAC of ``message``."""
        ...


class AnchorStore(Protocol):
    """Signed heads kept outside the database (S3 with Object Lock in AWS): write-once."""

    def put(self, anchor: Anchor) -> str:
        """Store ``anchor`` under :attr:`Anchor.key`; an existing key is never replaced."""
        ...

    def anchors(self, model: str) -> list[Anchor]:
        """Every anchor of ``model``, oldest first."""
        ...
