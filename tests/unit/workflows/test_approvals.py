"""Approvals: tokens bound to model + version + SHA-256; 404/409/410/403; replays; audit."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from flywheel.errors import (
    ApprovalAlreadyDecidedError,
    ApprovalArtifactMismatchError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    ApproverNotAllowedError,
    FlywheelError,
    http_status_for,
)
from flywheel.registry.models import VersionStatus
from flywheel.workflows.approvals import Decision
from flywheel.workflows.records import ApprovalDoc, ApprovalStatus, approval_key, write
from tests.unit.workflows.conftest import REQUESTER, REVIEWER, World, approval_request
from tests.workflow_support import MODEL


def pending(world: World, **kwargs: Any) -> ApprovalDoc:
    return world.approvals.request(approval_request(world, **kwargs))


def decide(world: World, approval_id: str, decision: str = "approve", **kwargs: Any) -> ApprovalDoc:
    values: dict[str, Any] = {"approver": REVIEWER, "reason": "metrics reviewed", **kwargs}
    return world.approvals.decide(approval_id, decision=Decision(decision), **values)


def test_requesting_binds_the_token_to_the_version_and_its_artifact(world: World) -> None:
    doc = pending(world)

    assert doc.status is ApprovalStatus.PENDING
    assert doc.version == 1
    assert doc.artifact_sha256 == world.registry.get_version(MODEL, 1).artifact.sha256
    assert doc.expires_at - doc.requested_at == timedelta(hours=1)
    assert "task_token" not in doc.public()
    assert world.registry.get_version(MODEL, 1).status is VersionStatus.PENDING_APPROVAL
    entry = list(world.audit.entries(MODEL))[-1]
    assert entry.details["approval_id"] == doc.approval_id


def test_a_retried_request_returns_the_same_approval_with_the_new_token(world: World) -> None:
    request = approval_request(world)
    first = world.approvals.request(request)

    again = world.approvals.request(request.model_copy(update={"task_token": "token-2"}))

    assert again.approval_id == first.approval_id
    assert again.task_token == "token-2"
    assert world.actions().count("approval_requested") == 1


def test_a_request_for_another_artifact_than_the_registered_one_is_refused(world: World) -> None:
    with pytest.raises(ApprovalArtifactMismatchError):
        pending(world, artifact_sha256="f" * 64)


def test_approving_resumes_the_run_and_announces_the_version(world: World) -> None:
    doc = pending(world)

    decided = decide(world, doc.approval_id)

    assert decided.status is ApprovalStatus.APPROVED
    assert decided.decided_by == REVIEWER
    assert (decided.workflow_notified, decided.event_published) == (True, True)
    assert world.registry.get_version(MODEL, 1).status is VersionStatus.APPROVED
    kind, token, output = world.tokens.sent[-1]
    assert (kind, token) == ("success", "token-1")
    assert output["approval_id"] == doc.approval_id
    detail_type, detail = world.events.events[-1]
    assert detail_type == "VersionApproved"
    assert {k: detail[k] for k in ("model_name", "version", "approval_id", "approver")} == {
        "model_name": MODEL,
        "version": 1,
        "approval_id": doc.approval_id,
        "approver": REVIEWER,
    }
    entry = list(world.audit.entries(MODEL))[-1]
    assert (str(entry.action), entry.actor, entry.reason) == (
        "approved",
        REVIEWER,
        "metrics reviewed",
    )
    assert entry.details["approval_id"] == doc.approval_id


def test_an_unknown_approval_is_404(world: World) -> None:
    with pytest.raises(ApprovalNotFoundError) as caught:
        decide(world, "0" * 32)
    assert http_status_for(caught.value) == 404


def test_a_replayed_decision_is_409_and_resumes_nothing_twice(world: World) -> None:
    doc = pending(world)
    decide(world, doc.approval_id)

    with pytest.raises(ApprovalAlreadyDecidedError) as caught:
        decide(world, doc.approval_id)
    with pytest.raises(ApprovalAlreadyDecidedError):
        decide(world, doc.approval_id, "reject", approver="arn:aws:iam::1:user/other")

    assert http_status_for(caught.value) == 409
    assert "already approved by" in caught.value.message
    assert len(world.tokens.sent) == 1
    assert len(approved_events(world)) == 1
    assert world.actions().count("approved") == 1


def test_an_expired_approval_is_410_and_rejects_the_version(world: World) -> None:
    doc = pending(world)
    world.clock.advance(timedelta(hours=1, seconds=1))

    with pytest.raises(ApprovalExpiredError) as caught:
        decide(world, doc.approval_id)
    with pytest.raises(ApprovalExpiredError):
        decide(world, doc.approval_id)

    assert http_status_for(caught.value) == 410
    assert world.registry.get_version(MODEL, 1).status is VersionStatus.REJECTED
    assert world.actions()[-1] == "approval_expired"
    [(kind, token, failure)] = world.tokens.sent  # the waiting run is told once
    assert (kind, token, failure["error"]) == ("failure", "token-1", "ApprovalExpired")
    assert approved_events(world) == []


def test_the_requester_cannot_approve_their_own_run(world: World) -> None:
    doc = pending(world)

    with pytest.raises(ApproverNotAllowedError) as caught:
        decide(world, doc.approval_id, approver=REQUESTER.upper())

    assert http_status_for(caught.value) == 403
    assert world.registry.get_version(MODEL, 1).status is VersionStatus.PENDING_APPROVAL
    entry = list(world.audit.entries(MODEL))[-1]
    assert (str(entry.action), entry.reason) == (
        "approval_refused",
        "the approver is the principal that requested this run",
    )
    # Someone else still can.
    assert decide(world, doc.approval_id).status is ApprovalStatus.APPROVED


def test_the_four_eyes_rule_can_be_switched_off_per_model(world: World) -> None:
    doc = pending(world, distinct=False)

    assert decide(world, doc.approval_id, approver=REQUESTER).status is ApprovalStatus.APPROVED


def test_approving_another_artifact_than_the_bound_one_is_refused(world: World) -> None:
    doc = pending(world)

    with pytest.raises(ApprovalArtifactMismatchError) as caught:
        decide(world, doc.approval_id, artifact_sha256="a" * 64)

    assert http_status_for(caught.value) == 409
    assert world.registry.get_version(MODEL, 1).status is VersionStatus.PENDING_APPROVAL
    assert decide(world, doc.approval_id, artifact_sha256=doc.artifact_sha256.upper()).status == (
        ApprovalStatus.APPROVED
    )


def test_a_version_whose_artifact_changed_cannot_be_approved(world: World) -> None:
    doc = pending(world)
    # Someone rewrites the registered version's artifact behind the registry's back.
    key = (MODEL, 1)
    version = world.store._versions[key]
    swapped = version.artifact.model_copy(update={"sha256": "b" * 64})
    world.store._versions[key] = version.model_copy(update={"artifact": swapped})

    with pytest.raises(ApprovalArtifactMismatchError, match="no longer holds the artifact"):
        decide(world, doc.approval_id)
    assert world.actions()[-1] == "approval_refused"
    assert world.tokens.sent == []


def test_an_interrupted_decision_is_finished_by_the_replay(world: World) -> None:
    doc = pending(world)
    calls: list[str] = []
    original = world.tokens.succeed

    def unreachable_once(token: str, output: dict[str, Any]) -> None:
        calls.append(token)
        if len(calls) == 1:
            raise FlywheelError("Step Functions could not be reached; try again")
        original(token, output)

    world.tokens.succeed = unreachable_once  # type: ignore[method-assign]

    with pytest.raises(FlywheelError, match="could not be reached"):
        decide(world, doc.approval_id)
    # The decision is recorded, the run not yet resumed ...
    assert world.approvals.get(doc.approval_id).status is ApprovalStatus.APPROVED
    assert world.tokens.sent == []
    # ... and the client's retry (409: already decided) finishes the side effects.
    with pytest.raises(ApprovalAlreadyDecidedError):
        decide(world, doc.approval_id)
    stored = world.approvals.get(doc.approval_id)
    assert (stored.workflow_notified, stored.event_published) == (True, True)
    assert [kind for kind, _, _ in world.tokens.sent] == ["success"]
    assert len(approved_events(world)) == 1


def test_a_token_the_workflow_no_longer_accepts_is_recorded(world: World) -> None:
    doc = pending(world)
    world.tokens.dead.add("token-1")  # the task timed out a moment ago

    decided = decide(world, doc.approval_id)

    assert decided.workflow_notified is True
    assert decided.workflow_error is not None
    assert approved_events(world)  # the approved version can still be promoted


def test_concurrent_decisions_have_exactly_one_winner(world: World) -> None:
    doc = pending(world)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            decision = "approve" if i % 2 else "reject"
            decide(world, doc.approval_id, decision, approver=f"arn:aws:iam::1:user/r{i}")
            outcomes.append("won")
        except ApprovalAlreadyDecidedError:
            outcomes.append("409")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["409"] * 5 + ["won"]
    assert len(world.tokens.sent) == 1
    assert world.registry.verify(MODEL).ok


def test_a_decision_survives_a_change_of_the_pending_approval_under_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the request step rewrites the pending approval (its announcement, a new token)
    # after the approver's decision read it and before the decision is written
    doc = pending(world)
    read_version = world.registry.get_version
    rewrites: list[int] = []

    def get_version(model: str, version: int) -> Any:
        if not rewrites:
            current, revision = world.approvals.find_for_version(model, version) or (doc, 0)
            changed = current.model_copy(update={"task_token": "token-2"})
            rewrites.append(world.store.put_record(
                write(approval_key(current.approval_id), changed, revision)
            ).revision)  # fmt: skip
        return read_version(model, version)

    monkeypatch.setattr(world.registry, "get_version", get_version)

    # When the approver decides, Then the decision is taken (not a 409) on the new revision
    decided = decide(world, doc.approval_id)

    assert rewrites
    assert decided.status is ApprovalStatus.APPROVED
    [(kind, token, _)] = world.tokens.sent  # the run resumes once, with the newer token
    assert (kind, token) == ("success", "token-2")
    assert world.actions().count("approved") == 1


def approved_events(world: World) -> list[tuple[str, dict[str, object]]]:
    """The events that start a promotion (``ApprovalRequested`` only notifies people)."""
    return [e for e in world.events.events if e[0] == "VersionApproved"]
