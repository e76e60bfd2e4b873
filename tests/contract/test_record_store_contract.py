"""Workflow records behave the same in memory and on DynamoDB: conditional, transactional."""

from __future__ import annotations

import pytest

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.errors import ConcurrentModificationError, IllegalTransitionError
from flywheel.registry.models import RecordKey, RecordWrite, VersionStatus
from tests.contract.conftest import Backend
from tests.factories import version_draft

KEY = RecordKey(partition="MODEL#churn", sort="RUNLOCK")


def test_a_record_is_written_once_then_only_on_the_revision_read(backend: Backend) -> None:
    store = backend.registry
    first = store.put_record(RecordWrite(key=KEY, doc={"holder": "a"}))

    assert (first.revision, store.get_record(KEY).doc) == (1, {"holder": "a"})
    with pytest.raises(ConcurrentModificationError):
        store.put_record(RecordWrite(key=KEY, doc={"holder": "b"}))  # must not exist
    with pytest.raises(ConcurrentModificationError):
        store.put_record(RecordWrite(key=KEY, doc={"holder": "b"}, expected_revision=7))
    second = store.put_record(RecordWrite(key=KEY, doc={"holder": None}, expected_revision=1))
    assert second.revision == 2
    assert store.get_record(KEY).doc == {"holder": None}
    assert store.get_record(RecordKey(partition="MODEL#churn", sort="OTHER")) is None


def test_records_join_the_registry_change_and_its_audit_entry(backend: Backend) -> None:
    service = backend.service
    service.register(version_draft(), actor="ana")
    approval = RecordKey(partition="APPROVAL#a1", sort="APPROVAL")

    service.request_approval(
        "churn", 1, actor="wf", records=(RecordWrite(key=approval, doc={"status": "pending"}),)
    )

    assert backend.registry.get_record(approval).doc == {"status": "pending"}
    assert service.get_version("churn", 1).status is VersionStatus.PENDING_APPROVAL


def test_a_failed_condition_on_a_record_writes_nothing(backend: Backend) -> None:
    service = backend.service
    service.register(version_draft(), actor="ana")
    service.request_approval("churn", 1, actor="wf")
    approval = RecordKey(partition="APPROVAL#a1", sort="APPROVAL")
    backend.registry.put_record(RecordWrite(key=approval, doc={"status": "approved"}))
    entries = len(list(backend.audit.entries("churn")))

    # A stale decision (it read revision 0 = "absent") loses against the one recorded.
    with pytest.raises(ConcurrentModificationError):
        service.approve(
            "churn",
            1,
            actor="bo",
            reason="ok",
            records=(RecordWrite(key=approval, doc={"status": "approved-again"}),),
        )

    assert service.get_version("churn", 1).status is VersionStatus.PENDING_APPROVAL
    assert backend.registry.get_record(approval).doc == {"status": "approved"}
    assert len(list(backend.audit.entries("churn"))) == entries


def test_a_records_only_change_needs_no_registered_model(backend: Backend) -> None:
    entry = backend.service.record(
        AuditDraft(model="brand-new", action=AuditAction.RETRAIN_TRIGGERED, actor="wf"),
        records=(RecordWrite(key=RecordKey(partition="MODEL#brand-new", sort="RUNLOCK"), doc={}),),
    )

    assert entry.seq == 1
    assert backend.service.verify("brand-new").ok


def test_a_failed_promotion_rolls_back_its_canary_in_the_audited_write(backend: Backend) -> None:
    service = backend.service
    service.register(version_draft(), actor="ana")
    service.request_approval("churn", 1, actor="wf")
    service.approve("churn", 1, actor="bo", reason="ok")
    service.start_canary("churn", 1, actor="wf")

    entry = service.fail_promotion("churn", 1, actor="wf", reason="ShiftAlias failed: boom")

    assert service.get_version("churn", 1).status is VersionStatus.ROLLED_BACK
    assert service.get_model("churn").challenger is None
    assert (entry.action, entry.details["status_before"]) == (
        AuditAction.PROMOTION_FAILED,
        "canary",
    )
    with pytest.raises(IllegalTransitionError):
        service.withdraw("churn", 1, actor="wf", reason="late")
