"""Separation of duties that binds: who may approve, four eyes on principals (not strings),
the config's author for runs nobody asked for, and approvers told what waits for them."""

from __future__ import annotations

from typing import Any

import pytest

from flywheel.errors import ApproverNotAllowedError
from flywheel.workflows.approvals import Decision
from flywheel.workflows.records import ApprovalDoc
from tests.unit.workflows.conftest import World, approval_request
from tests.workflow_support import MODEL

ACCOUNT = "123456789012"
DS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/data-scientist"
APPROVER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/team/approver"


def session(role: str, name: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{name}"


def pending(world: World, **kwargs: Any) -> ApprovalDoc:
    return world.approvals.request(approval_request(world, **kwargs))


def decide(world: World, doc: ApprovalDoc, approver: str) -> ApprovalDoc:
    return world.approvals.decide(
        doc.approval_id, decision=Decision.APPROVE, approver=approver, reason="reviewed"
    )


def test_two_sessions_of_one_role_are_one_principal(world: World) -> None:
    # Given Ana (data-scientist role) asked for the run
    doc = pending(world, requested_by=session("data-scientist", "ana"))

    # Then Bo, in the same role, is the same principal as far as four eyes go
    with pytest.raises(ApproverNotAllowedError, match="principal that requested this run"):
        decide(world, doc, session("data-scientist", "bo"))
    assert world.actions()[-1] == "approval_refused"
    # and someone in another role decides
    assert decide(world, doc, session("approver", "cy")).decided_by == session("approver", "cy")


def test_the_policy_may_tell_sessions_apart(world: World) -> None:
    doc = pending(world, requested_by=session("shared", "ana"), distinct_sessions=True)

    with pytest.raises(ApproverNotAllowedError):
        decide(world, doc, session("shared", "ana"))
    assert decide(world, doc, session("shared", "bo")).status == "approved"


def test_only_the_models_approvers_may_decide(world: World) -> None:
    doc = pending(world, requested_by=DS_ROLE, approvers=(APPROVER_ROLE,))

    with pytest.raises(ApproverNotAllowedError, match="not one of the model's approvers"):
        decide(world, doc, session("ml-engineer", "sam"))
    refused = list(world.audit.entries(MODEL))[-1]
    assert refused.reason == "the approver is not one of the model's approvers"
    # An approver-role session is one of them (paths do not matter)
    assert decide(world, doc, session("approver", "cy")).status == "approved"


def test_a_run_nobody_asked_for_may_not_be_approved_by_the_configs_author(world: World) -> None:
    author = session("ml-engineer", "sam")
    doc = pending(world, requested_by="workflow:run-1", excluded=(author,))

    with pytest.raises(ApproverNotAllowedError, match="last changed this model's config"):
        decide(world, doc, session("ml-engineer", "sam"))
    assert decide(world, doc, session("approver", "cy")).status == "approved"


def test_approvers_are_told_what_waits_for_them_once(world: World) -> None:
    request = approval_request(world, requested_by=DS_ROLE)
    doc = world.approvals.request(request)
    world.approvals.request(request.model_copy(update={"task_token": "token-2"}))  # a retry

    announced = [d for t, d in world.events.events if t == "ApprovalRequested"]
    assert len(announced) == 1
    detail = announced[0]
    assert detail["approval_id"] == doc.approval_id
    assert detail["requested_by"] == DS_ROLE
    assert detail["decide"]["cli"].startswith(f"flywheel approve {MODEL} {doc.version} -r")
    assert detail["decide"]["api"].startswith(f"POST /v1/approvals/{doc.approval_id}")
    assert world.approvals.find_for_version(MODEL, doc.version)[0].announced  # type: ignore[index]


def test_an_announcement_that_failed_is_sent_by_the_retried_step(world: World) -> None:
    request = approval_request(world, requested_by=DS_ROLE)
    publish = world.events.publish

    def down(detail_type: str, detail: dict[str, Any]) -> str:
        raise RuntimeError("the bus is down")

    world.events.publish = down  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.approvals.request(request)
    world.events.publish = publish  # type: ignore[method-assign]

    doc = world.approvals.request(request)

    assert [t for t, _ in world.events.events] == ["ApprovalRequested"]
    assert doc.announced
