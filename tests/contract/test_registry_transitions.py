"""The one-version transitions, from every status, identical for every backend.

For each public transition: the statuses it starts from, the status it leads to, the
audit entry it writes (action, actor, reason, ``details``), whether it needs a reason,
and that a refused one writes nothing (no status, no audit entry, no record).
"""

from __future__ import annotations

from typing import Any

import pytest

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.errors import IllegalTransitionError, ReasonRequiredError
from flywheel.registry.models import (
    RecordKey,
    RecordWrite,
    RegistryChange,
    StatusChange,
    VersionStatus,
)
from tests.contract.conftest import Backend
from tests.factories import version_draft

S = VersionStatus

# method -> (statuses it starts from, status it leads to, audit action, reason required)
EXPECTED: dict[str, tuple[set[VersionStatus], VersionStatus, AuditAction, bool]] = {
    "request_approval": ({S.CANDIDATE}, S.PENDING_APPROVAL, AuditAction.APPROVAL_REQUESTED, False),
    # The lifecycle also allows canary -> approved, so approve() accepts a canary version.
    "approve": ({S.PENDING_APPROVAL, S.CANARY}, S.APPROVED, AuditAction.APPROVED, True),
    "reject": ({S.CANDIDATE, S.PENDING_APPROVAL}, S.REJECTED, AuditAction.REJECTED, True),
    "withdraw": ({S.CANDIDATE, S.PENDING_APPROVAL}, S.REJECTED, AuditAction.TRAINING_FAILED, True),
    "expire_approval": (
        {S.CANDIDATE, S.PENDING_APPROVAL},
        S.REJECTED,
        AuditAction.APPROVAL_EXPIRED,
        True,
    ),
    "archive": (
        {S.CANDIDATE, S.APPROVED, S.PRODUCTION, S.ROLLED_BACK},
        S.ARCHIVED,
        AuditAction.ARCHIVED,
        False,
    ),
}


def _one_version_per_status(backend: Backend) -> dict[VersionStatus, int]:
    """Register versions of ``churn`` and move one into each status of the lifecycle."""
    svc = backend.service

    def approved(seed: int) -> int:
        v = svc.register(version_draft(seed=seed), actor="ci").version
        svc.request_approval("churn", v, actor="ci")
        svc.approve("churn", v, actor="alice", reason="ok")
        return v

    versions = {S.CANDIDATE: svc.register(version_draft(seed=1), actor="ci").version}
    versions[S.PENDING_APPROVAL] = svc.register(version_draft(seed=2), actor="ci").version
    svc.request_approval("churn", versions[S.PENDING_APPROVAL], actor="ci")
    versions[S.APPROVED] = approved(3)
    versions[S.REJECTED] = svc.register(version_draft(seed=4), actor="ci").version
    svc.reject("churn", versions[S.REJECTED], actor="bob", reason="no")
    versions[S.ARCHIVED] = approved(5)
    svc.promote("churn", versions[S.ARCHIVED], actor="alice", reason="first")
    versions[S.PRODUCTION] = approved(6)
    svc.promote("churn", versions[S.PRODUCTION], actor="alice", reason="second")
    versions[S.ROLLED_BACK] = approved(7)
    svc.start_canary("churn", versions[S.ROLLED_BACK], actor="wf")
    svc.abort_canary("churn", versions[S.ROLLED_BACK], actor="wf", reason="alarm")
    versions[S.CANARY] = approved(8)
    svc.start_canary("churn", versions[S.CANARY], actor="wf")
    assert {s: svc.get_version("churn", v).status for s, v in versions.items()} == {
        s: s for s in VersionStatus
    }
    return versions


def _record(version: int) -> RecordWrite:
    return RecordWrite(key=RecordKey(partition="MODEL#churn", sort=f"NOTE#{version}"), doc={})


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_a_transition_moves_only_from_its_statuses_and_audits_exactly_that(
    backend: Backend, method: str
) -> None:
    sources, target, action, _ = EXPECTED[method]
    versions = _one_version_per_status(backend)
    svc = backend.service
    for status, number in versions.items():
        writes: dict[str, Any] = {}
        if method != "archive":  # archive takes no records and no extra details
            writes = {"records": (_record(number),), "extra": {"ticket": "T-1"}}
        before = list(backend.audit.entries("churn"))
        transition = getattr(svc, method)

        if status not in sources:
            with pytest.raises(IllegalTransitionError) as refused:
                transition("churn", number, actor="ops", reason="because", **writes)
            assert (refused.value.current, refused.value.target) == (status, target)
            assert f"is {status}; it cannot become {target}" in str(refused.value)
            assert svc.get_version("churn", number).status is status
            assert list(backend.audit.entries("churn")) == before
            assert backend.registry.get_record(_record(number).key) is None
            continue

        moved = transition("churn", number, actor="ops", reason="because", **writes)

        assert moved.status is target
        assert (moved.updated_by, svc.get_version("churn", number).status) == ("ops", target)
        entry = list(backend.audit.entries("churn"))[-1]
        assert entry.seq == len(before) + 1
        assert (entry.action, entry.actor, entry.reason, entry.version) == (
            action,
            "ops",
            "because",
            number,
        )
        expected_details: dict[str, Any] = {
            "transitions": [{"version": number, "from": str(status), "to": str(target)}],
        }
        if writes:
            expected_details["ticket"] = "T-1"
            assert backend.registry.get_record(_record(number).key) is not None
        assert entry.details == expected_details
    assert svc.verify("churn").ok


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_a_transition_needs_a_reason_when_its_action_does(backend: Backend, method: str) -> None:
    sources, target, _, reason_required = EXPECTED[method]
    svc = backend.service
    for reason in (None, "", "  "):
        number = svc.register(version_draft(), actor="ci").version
        if S.CANDIDATE not in sources:
            svc.request_approval("churn", number, actor="ci")
        entries = len(list(backend.audit.entries("churn")))
        status = svc.get_version("churn", number).status

        if reason_required:
            with pytest.raises(ReasonRequiredError) as refused:
                getattr(svc, method)("churn", number, actor="ops", reason=reason)
            assert refused.value.field == "reason"
            assert svc.get_version("churn", number).status is status
            assert len(list(backend.audit.entries("churn"))) == entries
        else:
            moved = getattr(svc, method)("churn", number, actor="ops", reason=reason)
            assert moved.status is target
            assert list(backend.audit.entries("churn"))[-1].reason == reason


def test_withdraw_is_audited_as_the_action_the_workflow_names(backend: Backend) -> None:
    svc = backend.service
    number = svc.register(version_draft(), actor="ci").version

    svc.withdraw(
        "churn", number, actor="wf", reason="gate failed", action=AuditAction.GATE_REJECTED
    )

    entry = list(backend.audit.entries("churn"))[-1]
    assert (entry.action, entry.reason) == (AuditAction.GATE_REJECTED, "gate failed")
    assert svc.get_version("churn", number).status is S.REJECTED


def test_a_change_read_before_another_writer_moved_the_version_writes_nothing(
    backend: Backend,
) -> None:
    # Given a caller that read "pending_approval", and another writer who approved meanwhile
    svc = backend.service
    number = svc.register(version_draft(), actor="ci").version
    svc.request_approval("churn", number, actor="ci")
    stale = RegistryChange(
        model="churn",
        statuses=(StatusChange(version=number, expected=S.PENDING_APPROVAL, target=S.REJECTED),),
        records=(_record(number),),
    )
    svc.approve("churn", number, actor="alice", reason="ok")
    before = list(backend.audit.entries("churn"))

    # When the stale change is applied, the store refuses it and names the current status
    with pytest.raises(IllegalTransitionError) as refused:
        backend.registry.apply(
            stale,
            actor="bob",
            audit=AuditDraft(model="churn", action=AuditAction.REJECTED, actor="bob", reason="x"),
        )

    # Then nothing was written: not the status, not the record, not the audit entry
    assert (refused.value.current, refused.value.target) == (S.APPROVED, S.REJECTED)
    assert "is approved, expected pending_approval" in str(refused.value)
    assert svc.get_version("churn", number).status is S.APPROVED
    assert backend.registry.get_record(_record(number).key) is None
    assert list(backend.audit.entries("churn")) == before
