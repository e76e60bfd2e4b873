"""Audit-trail behaviour for every backend: chaining, tamper detection, atomicity."""

from __future__ import annotations

import itertools
import threading

import pytest

from flywheel.audit.chain import ProblemKind
from flywheel.audit.models import GENESIS_HASH, AuditAction, AuditDraft, ChainHead
from flywheel.errors import ConcurrentModificationError, ReasonRequiredError
from flywheel.registry.models import Alias, AliasChange, RegistryChange, StatusChange, VersionStatus
from tests.contract.conftest import Backend
from tests.factories import version_draft


def _draft(i: int, model: str = "churn") -> AuditDraft:
    return AuditDraft(
        model=model, action=AuditAction.RETRAIN_SUPPRESSED, actor=f"writer-{i}", reason="cooldown"
    )


def test_entries_link_into_one_chain(backend: Backend) -> None:
    for i in range(4):
        backend.audit.append(_draft(i))
    entries = list(backend.audit.entries("churn"))
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    head = backend.audit.head("churn")
    assert head == ChainHead(model="churn", seq=4, hash=entries[-1].hash)
    assert backend.service.verify("churn").ok


def test_chains_are_per_model(backend: Backend) -> None:
    backend.audit.append(_draft(1, "a"))
    backend.audit.append(_draft(2, "b"))
    backend.audit.append(_draft(3, "a"))
    assert [e.seq for e in backend.audit.entries("a")] == [1, 2]
    assert [e.seq for e in backend.audit.entries("b")] == [1]


def test_concurrent_appends_never_fork_or_skip(backend: Backend, atomic_writes: None) -> None:
    # Given 6 writers appending 8 entries each to the same chain at the same time
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for _ in range(8):
                backend.audit.append(_draft(i))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every append landed exactly once, in one unbroken chain
    assert errors == []
    entries = list(backend.audit.entries("churn"))
    assert [e.seq for e in entries] == list(range(1, 49))
    assert sorted(e.actor for e in entries) == sorted(
        f"writer-{i}" for i in range(6) for _ in range(8)
    )
    report = backend.service.verify("churn")
    assert report.ok, report.problems


def test_concurrent_registrations_get_distinct_versions(
    backend: Backend, atomic_writes: None
) -> None:
    numbers: list[int] = []
    lock = threading.Lock()

    def register(i: int) -> None:
        v = backend.service.register(version_draft(seed=i), actor=f"ci-{i}")
        with lock:
            numbers.append(v.version)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == list(range(1, 9))
    assert backend.service.verify("churn").ok
    assert len(list(backend.audit.entries("churn"))) == 8


def test_a_failed_change_leaves_no_half_state(backend: Backend) -> None:
    # Given a version awaiting approval and a stale view of the aliases
    svc = backend.service
    v = svc.register(version_draft(), actor="ci")
    svc.request_approval("churn", v.version, actor="ci")
    svc.approve("churn", v.version, actor="alice", reason="ok")
    before = list(backend.audit.entries("churn"))
    stale = RegistryChange(
        model="churn",
        statuses=(
            StatusChange(
                version=v.version, expected=VersionStatus.APPROVED, target=VersionStatus.PRODUCTION
            ),
        ),
        aliases=(AliasChange(alias=Alias.CHAMPION, expected=42, target=v.version),),
    )
    # When the change is applied, its alias condition fails
    with pytest.raises(ConcurrentModificationError):
        backend.registry.apply(
            stale,
            actor="alice",
            audit=AuditDraft(
                model="churn", action=AuditAction.PROMOTED, actor="alice", reason="go"
            ),
        )
    # Then neither the status, nor the alias, nor the audit trail moved
    assert svc.get_version("churn", v.version).status is VersionStatus.APPROVED
    assert svc.get_model("churn").aliases == {}
    assert list(backend.audit.entries("churn")) == before


def test_record_requires_reason_for_governed_actions(backend: Backend) -> None:
    with pytest.raises(ReasonRequiredError):
        backend.service.record(AuditDraft(model="churn", action=AuditAction.ROLLED_BACK, actor="x"))
    assert list(backend.audit.entries("churn")) == []


def test_anchor_outside_the_table_detects_a_rewritten_tail(backend: Backend) -> None:
    for i in range(3):
        backend.audit.append(_draft(i))
    anchor = backend.audit.head("churn")
    assert anchor is not None
    assert backend.service.verify("churn", anchor=anchor).ok
    bogus = ChainHead(model="churn", seq=2, hash="a" * 64)
    problem = backend.service.verify("churn", anchor=bogus).first_problem
    assert problem is not None
    assert problem.kind is ProblemKind.ANCHOR_MISMATCH
    assert problem.seq == 2
