"""Copy each chain's signed head outside the database, with every link since the last copy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flywheel.audit.chain import verify_chain
from flywheel.audit.models import Anchor
from flywheel.clock import isoformat

if TYPE_CHECKING:
    from flywheel.audit.ports import AnchorStore, AuditLog, HeadSigner
    from flywheel.clock import Clock

__all__ = ["AnchorOutcome", "Anchoring"]


class AnchorOutcome(BaseModel):
    """What one anchoring pass did for one chain."""

    model_config = ConfigDict(frozen=True)

    stream: str
    #: ``anchored``, ``unchanged`` (nothing new since the last anchor) or ``tampered``.
    result: str
    seq: int = 0
    problem: str | None = None


class Anchoring:
    """The scheduled anchor job: verify each chain, then anchor its signed head.

    A chain that fails verification (against its signature and its earlier anchors) is
    not anchored: the outcome says ``tampered`` and names the first problem, so the
    last good anchor stays the reference.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> platform = InMemoryPlatform()
    >>> from flywheel.audit.models import AuditAction, AuditDraft
    >>> _ = platform.audit.append(AuditDraft(model="churn", action=AuditAction.ARCHIVED, actor="a"))
    >>> [(o.stream, o.result, o.seq) for o in platform.anchoring().run()]
    [('churn', 'anchored', 1)]
    >>> [o.result for o in platform.anchoring().run()]
    ['unchanged']
    """

    def __init__(
        self,
        *,
        audit: AuditLog,
        anchors: AnchorStore,
        clock: Clock,
        verifier: HeadSigner | None = None,
    ) -> None:
        self._audit = audit
        self._anchors = anchors
        self._clock = clock
        self._verifier = verifier

    def run(self, streams: list[str] | None = None) -> list[AnchorOutcome]:
        """Anchor ``streams`` (default: every chain in the log)."""
        return [self.anchor(name) for name in (streams or list(self._audit.streams()))]

    def anchor(self, stream: str) -> AnchorOutcome:
        head = self._audit.head(stream)
        if head is None:
            return AnchorOutcome(stream=stream, result="unchanged")
        earlier = self._anchors.anchors(stream)
        if earlier and earlier[-1].head.seq == head.seq and earlier[-1].head.hash == head.hash:
            return AnchorOutcome(stream=stream, result="unchanged", seq=head.seq)
        entries = list(self._audit.entries(stream))
        report = verify_chain(
            stream, entries, recorded_head=head, verifier=self._verifier, anchors=earlier
        )
        if not report.ok:
            first = report.problems[0]
            return AnchorOutcome(
                stream=stream, result="tampered", seq=first.seq, problem=first.message
            )
        since = earlier[-1].head.seq if earlier else 0
        links = tuple((e.seq, e.hash) for e in entries if since < e.seq < head.seq)
        self._anchors.put(Anchor(head=head, links=links, anchored_at=isoformat(self._clock.now())))
        return AnchorOutcome(stream=stream, result="anchored", seq=head.seq)
