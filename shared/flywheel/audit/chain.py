"""Verification of a hash chain and questions answered from it."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from flywheel.audit.models import GENESIS_HASH, AuditEntry, ChainHead
from flywheel.clock import isoformat

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime


class ProblemKind(StrEnum):
    EDITED = "edited"
    BROKEN_LINK = "broken_link"
    MISSING = "missing"
    OUT_OF_ORDER = "out_of_order"
    TRUNCATED = "truncated"
    HEAD_MISMATCH = "head_mismatch"
    ANCHOR_MISMATCH = "anchor_mismatch"
    FOREIGN_ENTRY = "foreign_entry"


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

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None


def verify_chain(
    model: str,
    entries: Iterable[AuditEntry],
    *,
    recorded_head: ChainHead | None = None,
    anchor: ChainHead | None = None,
) -> VerifyReport:
    """Check every link of a model's chain.

    Detects an edited entry (its hash no longer matches its content), a deleted
    entry (a gap in sequence numbers and a broken ``prev_hash`` link), reordered
    entries (sequence numbers out of order or links that do not follow), and a
    truncated tail: the chain must reach ``recorded_head`` (the head item written
    in the same transaction as every entry) and contain ``anchor`` (a head that
    was recorded outside the table, e.g. printed by ``flywheel audit head``).

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
    head = ChainHead(model=model, seq=last_seq, hash=last_hash) if last else recorded_head
    return VerifyReport(model=model, entries_checked=checked, head=head, problems=tuple(problems))


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
