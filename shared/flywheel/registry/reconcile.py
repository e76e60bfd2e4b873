"""What the audit trail says the registry should hold, compared with what it holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel.audit.chain import ChainProblem, ProblemKind
from flywheel.audit.models import AuditAction

if TYPE_CHECKING:
    from collections.abc import Iterable

    from flywheel.audit.models import AuditEntry
    from flywheel.registry.models import Model, ModelVersion

__all__ = ["reconcile"]


def reconcile(
    entries: Iterable[AuditEntry], model: Model | None, versions: Iterable[ModelVersion]
) -> list[ChainProblem]:
    """Replay the chain (registrations, status transitions, aliases) and list every way the
    registry differs: a status, an alias or an artifact digest the trail does not explain.

    Examples
    --------
    >>> reconcile([], None, [])
    []
    """
    statuses: dict[int, tuple[str, int]] = {}
    digests: dict[int, tuple[str, int]] = {}
    aliases: dict[str, int] | None = None
    alias_seq = 0
    for entry in entries:
        details: dict[str, Any] = entry.details
        if entry.action is AuditAction.VERSION_REGISTERED and entry.version is not None:
            statuses[entry.version] = ("candidate", entry.seq)
            if "artifact_sha256" in details:
                digests[entry.version] = (str(details["artifact_sha256"]), entry.seq)
        for move in details.get("transitions") or ():
            statuses[int(move["version"])] = (str(move["to"]), entry.seq)
        if isinstance(details.get("aliases"), dict):
            aliases = {str(k): int(v) for k, v in details["aliases"].items()}
            alias_seq = entry.seq
    problems: list[ChainProblem] = []
    held = {v.version: v for v in versions}
    for number, version in sorted(held.items()):
        replayed = statuses.get(number)
        if replayed is None:
            problems.append(
                _problem(0, f"version {number} is in the registry but was never registered")
            )
            continue
        if str(version.status) != replayed[0]:
            problems.append(
                _problem(
                    replayed[1],
                    f"version {number} is {version.status} in the registry but "
                    f"{replayed[0]} in the audit trail",
                )
            )
        digest = digests.get(number)
        if digest is not None and version.artifact.sha256 != digest[0]:
            problems.append(
                _problem(
                    digest[1],
                    f"version {number}'s artifact digest in the registry is not the one "
                    "the audit trail registered",
                )
            )
    for number in sorted(set(statuses) - set(held)):
        problems.append(
            _problem(
                statuses[number][1],
                f"version {number} is in the audit trail but missing from the registry",
            )
        )
    if model is not None and aliases is not None:
        held_aliases = {str(k): v for k, v in model.aliases.items()}
        if held_aliases != aliases:
            problems.append(
                _problem(
                    alias_seq,
                    f"the registry's aliases {held_aliases} are not the ones the audit trail "
                    f"last recorded {aliases}",
                )
            )
    return problems


def _problem(seq: int, message: str) -> ChainProblem:
    return ChainProblem(seq=seq, kind=ProblemKind.REGISTRY_MISMATCH, message=message)
