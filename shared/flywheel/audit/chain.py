"""Verification of a hash chain and questions answered from it."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flywheel.audit.models import GENESIS_HASH, Anchor, AuditEntry, ChainHead
from flywheel.clock import isoformat

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from flywheel.audit.ports import HeadSigner


class ProblemKind(StrEnum):
    EDITED = "edited"
    BROKEN_LINK = "broken_link"
    MISSING = "missing"
    OUT_OF_ORDER = "out_of_order"
    TRUNCATED = "truncated"
    HEAD_MISMATCH = "head_mismatch"
    ANCHOR_MISMATCH = "anchor_mismatch"
    FOREIGN_ENTRY = "foreign_entry"
    UNSIGNED_HEAD = "unsigned_head"
    FORGED_HEAD = "forged_head"
    FORGED_ANCHOR = "forged_anchor"
    REGISTRY_MISMATCH = "registry_mismatch"
    ARTIFACT_ALTERED = "artifact_altered"


class ChainProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    kind: ProblemKind
    message: str


class VerifyReport(BaseModel):
    """Outcome of :func:`verify_chain`; ``ok`` only when no problem was found."""

    model_config = ConfigDict(frozen=True)

    model: str
    entries_checked: int
    head: ChainHead | None
    problems: tuple[ChainProblem, ...]
    #: Whether the head's signature was checked (and found valid when ``ok``).
    signature_checked: bool = False
    #: The latest anchor the chain was checked against, if any.
    anchor: ChainHead | None = None
    anchors_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None

    @property
    def evidence(self) -> str:
        """What the chain was checked against, in one line (the CLI and the demo print it).

        Examples
        --------
        >>> VerifyReport(model="m", entries_checked=0, head=None, problems=()).evidence
        'head not signed; no anchor yet (the anchor job has not copied this chain)'
        """
        signed = "signed by the audit writer" if self.signature_checked else "not signed"
        against = (
            f"checked against {self.anchors_checked} anchor(s), the latest at entry "
            f"{self.anchor.seq} ({self.anchor.hash[:12]}…)"
            if self.anchor is not None
            else "no anchor yet (the anchor job has not copied this chain)"
        )
        return f"head {signed}; {against}"


def verify_chain(
    model: str,
    entries: Iterable[AuditEntry],
    *,
    recorded_head: ChainHead | None = None,
    anchor: ChainHead | None = None,
    verifier: HeadSigner | None = None,
    anchors: Sequence[Anchor] = (),
) -> VerifyReport:
    """Check every link of a model's chain, its signed head and its anchors.

    Detects an edited entry, a deleted entry, reordered entries and a truncated tail
    (the chain must reach ``recorded_head`` and contain ``anchor``).  With a
    ``verifier``, the recorded head must carry the audit writer's signature: a chain
    rewritten and re-hashed by anyone else fails here.  Each of ``anchors`` (signed
    heads copied outside the database) must be signed and every link it lists must be
    in the chain unchanged: the first that differs is named.

    Examples
    --------
    >>> from flywheel.audit.models import AuditAction, AuditDraft, seal
    >>> d = AuditDraft(model="m", action=AuditAction.APPROVED, actor="ana", reason="ok")
    >>> e1 = seal(d, seq=1, timestamp="t1", prev_hash=GENESIS_HASH)
    >>> verify_chain("m", [e1]).ok
    True
    """
    problems: list[ChainProblem] = []
    checked = 0
    expected_seq = 1
    prev_hash = GENESIS_HASH
    last: AuditEntry | None = None
    by_seq: dict[int, str] = {}
    for entry in entries:
        checked += 1
        if entry.model != model:
            problems.append(
                ChainProblem(
                    seq=entry.seq,
                    kind=ProblemKind.FOREIGN_ENTRY,
                    message=f"entry {entry.seq} belongs to model {entry.model!r}",
                )
            )
        if entry.seq < expected_seq:
            problems.append(
                ChainProblem(
                    seq=entry.seq,
                    kind=ProblemKind.OUT_OF_ORDER,
                    message=f"entry {entry.seq} appears after entry {expected_seq - 1}",
                )
            )
        elif entry.seq > expected_seq:
            missing = (
                f"{expected_seq}"
                if entry.seq == expected_seq + 1
                else f"{expected_seq}-{entry.seq - 1}"
            )
            problems.append(
                ChainProblem(
                    seq=expected_seq,
                    kind=ProblemKind.MISSING,
                    message=f"entries {missing} are missing (deleted?)",
                )
            )
        if entry.computed_hash() != entry.hash:
            problems.append(
                ChainProblem(
                    seq=entry.seq,
                    kind=ProblemKind.EDITED,
                    message=(
                        f"entry {entry.seq} was modified: its content no longer matches its hash"
                    ),
                )
            )
        if entry.prev_hash != prev_hash:
            problems.append(
                ChainProblem(
                    seq=entry.seq,
                    kind=ProblemKind.BROKEN_LINK,
                    message=f"entry {entry.seq} does not link to the entry before it",
                )
            )
        by_seq[entry.seq] = entry.hash
        prev_hash = entry.hash
        expected_seq = max(expected_seq, entry.seq) + 1
        last = entry
    last_seq = last.seq if last else 0
    last_hash = last.hash if last else GENESIS_HASH
    if recorded_head is not None:
        if recorded_head.seq > last_seq:
            problems.append(
                ChainProblem(
                    seq=last_seq + 1,
                    kind=ProblemKind.TRUNCATED,
                    message=(
                        f"chain ends at entry {last_seq} but its head says {recorded_head.seq}: "
                        "entries were removed from the tail"
                    ),
                )
            )
        elif recorded_head.seq < last_seq or recorded_head.hash != last_hash:
            problems.append(
                ChainProblem(
                    seq=recorded_head.seq,
                    kind=ProblemKind.HEAD_MISMATCH,
                    message=f"head record ({recorded_head.seq}) does not match the last entry",
                )
            )
    if anchor is not None:
        found = by_seq.get(anchor.seq)
        if found is None:
            problems.append(
                ChainProblem(
                    seq=anchor.seq,
                    kind=ProblemKind.TRUNCATED,
                    message=f"anchored entry {anchor.seq} is not in the chain (truncated)",
                )
            )
        elif found != anchor.hash:
            problems.append(
                ChainProblem(
                    seq=anchor.seq,
                    kind=ProblemKind.ANCHOR_MISMATCH,
                    message=f"entry {anchor.seq} differs from the anchored hash",
                )
            )
    if verifier is not None and recorded_head is not None:
        problems.extend(_signature_problems(recorded_head, verifier))
    for anchored in anchors:
        problems.extend(_anchor_problems(anchored, by_seq, verifier))
    head = ChainHead(model=model, seq=last_seq, hash=last_hash) if last else recorded_head
    return VerifyReport(
        model=model,
        entries_checked=checked,
        head=head,
        problems=tuple(problems),
        signature_checked=verifier is not None and recorded_head is not None,
        anchor=anchors[-1].head if anchors else None,
        anchors_checked=len(anchors),
    )


def _signature_problems(head: ChainHead, verifier: HeadSigner) -> list[ChainProblem]:
    if head.mac is None:
        return [
            ChainProblem(
                seq=head.seq,
                kind=ProblemKind.UNSIGNED_HEAD,
                message=f"the head ({head.seq}) carries no signature of the audit writer",
            )
        ]
    if not verifier.verify(head.message(), head.mac):
        return [
            ChainProblem(
                seq=head.seq,
                kind=ProblemKind.FORGED_HEAD,
                message=(
                    f"the head ({head.seq}) is not signed by the audit writer: the chain was "
                    "written or re-sealed outside it"
                ),
            )
        ]
    return []


def _anchor_problems(
    anchored: Anchor, by_seq: dict[int, str], verifier: HeadSigner | None
) -> list[ChainProblem]:
    head = anchored.head
    if verifier is not None and (head.mac is None or not verifier.verify(head.message(), head.mac)):
        return [
            ChainProblem(
                seq=head.seq,
                kind=ProblemKind.FORGED_ANCHOR,
                message=f"the anchor of entry {head.seq} is not signed by the audit writer",
            )
        ]
    for seq, digest in (*anchored.links, (head.seq, head.hash)):
        found = by_seq.get(seq)
        if found is None:
            return [
                ChainProblem(
                    seq=seq,
                    kind=ProblemKind.TRUNCATED,
                    message=f"entry {seq}, anchored at {anchored.anchored_at}, is gone",
                )
            ]
        if found != digest:
            return [
                ChainProblem(
                    seq=seq,
                    kind=ProblemKind.ANCHOR_MISMATCH,
                    message=(
                        f"entry {seq} differs from what was anchored at {anchored.anchored_at}"
                    ),
                )
            ]
    return []


def champion_at(entries: Iterable[AuditEntry], when: datetime) -> int | None:
    """Which version was ``champion`` at ``when``, replayed from the trail.

    Every entry that moves an alias records the aliases after the change in
    ``details["aliases"]``.

    Examples
    --------
    >>> from datetime import datetime
    >>> champion_at([], datetime(2026, 1, 1))
    """
    cutoff = isoformat(when)
    champion: int | None = None
    for entry in entries:
        if entry.timestamp > cutoff:
            break
        aliases = entry.details.get("aliases")
        if isinstance(aliases, dict):
            value = aliases.get("champion")
            champion = int(value) if value is not None else None
    return champion
