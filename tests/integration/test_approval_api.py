"""``POST /v1/approvals/{id}`` on moto through API Gateway proxy events.

moto accepts any task token, so everything below (binding, expiry, replays, the
four-eyes rule) is enforced by Flywheel's own code.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from flywheel.registry.models import VersionStatus
from flywheel.workflows.records import ApprovalDoc
from functions.approval_api import handler as approval_handler
from tests.aws_workflows import AwsWorkflows, provision
from tests.factories import version_draft
from tests.workflow_support import MODEL, approval_request_for

REVIEWER = "arn:aws:iam::123456789012:user/reviewer"
REQUESTER = "arn:aws:iam::123456789012:user/data-scientist"
APPROVE = {"decision": "approve", "reason": "holdout metrics reviewed"}


@pytest.fixture
def aws(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AwsWorkflows:
    return provision(local_names, monkeypatch, serving=False)


def request_approval(aws: AwsWorkflows, **kwargs: Any) -> ApprovalDoc:
    """A registered candidate waiting for approval, as RequestApproval leaves it."""
    version = aws.registry.register(version_draft(name=MODEL), actor="workflow")
    kwargs.setdefault("requested_by", REQUESTER)
    kwargs.setdefault("timeout_seconds", 3600)
    return approval_handler._service().request(approval_request_for(version, **kwargs))


def test_approving_records_the_decision_resumes_the_run_and_announces_it(
    aws: AwsWorkflows,
) -> None:
    pending = request_approval(aws, token="token-abc")

    status, body = aws.decide(pending.approval_id, APPROVE)

    assert status == 200
    assert body == {
        "approval_id": pending.approval_id,
        "model_name": MODEL,
        "version": 1,
        "status": "approved",
        "decided_by": REVIEWER,
        "decided_at": body["decided_at"],
        "artifact_sha256": pending.artifact_sha256,
        "workflow_resumed": True,
        "event_published": True,
    }
    # The version, the approval record and the audit entry changed together ...
    assert aws.registry.get_version(MODEL, 1).status is VersionStatus.APPROVED
    entry = aws.last_entry()
    assert (str(entry.action), entry.actor, entry.reason) == (
        "approved",
        REVIEWER,
        "holdout metrics reviewed",
    )
    assert entry.details["approval_id"] == pending.approval_id
    # ... then the paused run got its token back ...
    [(kind, sent)] = aws.sent_task_results()
    assert (kind, sent["taskToken"]) == ("SendTaskSuccess", "token-abc")
    assert json.loads(sent["output"])["approval_id"] == pending.approval_id
    # ... and VersionApproved reached the promotion rule's target on the project bus.
    [approved] = aws.version_approved_events()
    assert approved["source"] == "flywheel.approvals"
    assert {
        k: approved["detail"][k] for k in ("model_name", "version", "approval_id", "approver")
    } == {
        "model_name": MODEL,
        "version": 1,
        "approval_id": pending.approval_id,
        "approver": REVIEWER,
    }


def test_rejecting_fails_the_waiting_task_with_approval_rejected(aws: AwsWorkflows) -> None:
    pending = request_approval(aws)

    status, body = aws.decide(pending.approval_id, {"decision": "reject", "reason": "too slow"})

    assert (status, body["status"]) == (200, "rejected")
    [(kind, sent)] = aws.sent_task_results()
    assert (kind, sent["error"], sent["cause"]) == (
        "SendTaskFailure",
        "ApprovalRejected",
        "too slow",
    )
    assert aws.registry.get_version(MODEL, 1).status is VersionStatus.REJECTED
    assert aws.version_approved_events() == []


def test_an_unknown_approval_is_404(aws: AwsWorkflows) -> None:
    status, body = aws.decide("f" * 32, APPROVE)

    assert status == 404
    assert body["error"]["code"] == "approval_not_found"
    assert body["error"]["message"] == f"approval '{'f' * 32}' does not exist"


def test_a_replayed_request_is_409_and_resumes_the_run_only_once(aws: AwsWorkflows) -> None:
    pending = request_approval(aws)
    assert aws.decide(pending.approval_id, APPROVE)[0] == 200

    status, body = aws.decide(pending.approval_id, APPROVE)
    other = aws.decide(
        pending.approval_id,
        {"decision": "reject", "reason": "late"},
        identity={"userArn": "arn:aws:iam::123456789012:user/other"},
    )

    assert status == 409
    assert body["error"]["code"] == "approval_already_decided"
    assert other[0] == 409
    assert len(aws.sent_task_results()) == 1
    assert len(aws.version_approved_events()) == 1


def test_an_expired_approval_is_410(aws: AwsWorkflows) -> None:
    pending = request_approval(aws)
    aws.clock.advance(timedelta(hours=1, minutes=1))

    status, body = aws.decide(pending.approval_id, APPROVE)

    assert status == 410
    assert body["error"]["code"] == "approval_expired"
    assert aws.registry.get_version(MODEL, 1).status is VersionStatus.REJECTED
    assert aws.last_entry().action == "approval_expired"
    [(kind, sent)] = aws.sent_task_results()
    assert (kind, sent["error"]) == ("SendTaskFailure", "ApprovalExpired")


def test_the_requester_cannot_approve_their_own_candidate(aws: AwsWorkflows) -> None:
    pending = request_approval(aws)

    status, body = aws.decide(pending.approval_id, APPROVE, identity={"userArn": REQUESTER})

    assert status == 403
    assert body["error"]["code"] == "approver_not_allowed"
    assert aws.registry.get_version(MODEL, 1).status is VersionStatus.PENDING_APPROVAL
    assert (aws.last_entry().action, aws.last_entry().actor) == ("approval_refused", REQUESTER)
    assert aws.sent_task_results() == []


def test_the_token_is_bound_to_the_artifact(aws: AwsWorkflows) -> None:
    pending = request_approval(aws)

    # The approver names the artifact they reviewed: another one is refused ...
    status, body = aws.decide(pending.approval_id, {**APPROVE, "artifact_sha256": "a" * 64})
    assert (status, body["error"]["code"]) == (409, "approval_artifact_mismatch")

    # ... and so is a version whose registered artifact was swapped in the table.
    table = aws.names["FLYWHEEL_REGISTRY_TABLE"]
    dynamodb = boto3.client("dynamodb")
    key = {"pk": {"S": f"MODEL#{MODEL}"}, "sk": {"S": "V#0000000001"}}
    doc = json.loads(dynamodb.get_item(TableName=table, Key=key)["Item"]["doc"]["S"])
    doc["artifact"]["sha256"] = "b" * 64
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET doc = :d",
        ExpressionAttributeValues={":d": {"S": json.dumps(doc)}},
    )
    status, body = aws.decide(
        pending.approval_id, {**APPROVE, "artifact_sha256": pending.artifact_sha256}
    )
    assert (status, body["error"]["code"]) == (409, "approval_artifact_mismatch")
    assert aws.sent_task_results() == []
    assert aws.actions()[-2:] == ["approval_refused", "approval_refused"]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"decision": "approve"}, "reason", "is required"),
        ({"decision": "approve", "reason": "   "}, "reason", "must not be empty"),
        ({"decision": "maybe", "reason": "x"}, "decision", "is invalid"),
        ({**APPROVE, "approver": "me"}, "approver", "is not a known field"),
        ("{not json", "body", "is not valid JSON"),
    ],
    ids=["no-reason", "blank-reason", "bad-decision", "extra-field", "not-json"],
)
def test_invalid_bodies_are_400_naming_the_field(
    aws: AwsWorkflows, body: dict[str, Any] | str, field: str, reason: str
) -> None:
    pending = request_approval(aws)

    status, response = aws.decide(pending.approval_id, body)

    assert status == 400
    error = response["error"]
    assert error["code"] == "invalid_request"
    assert {"row": None, "field": field, "reason": reason} in error["errors"]
    assert aws.registry.get_version(MODEL, 1).status is VersionStatus.PENDING_APPROVAL


def test_a_request_without_a_caller_identity_is_401(aws: AwsWorkflows) -> None:
    pending = request_approval(aws)

    status, body = aws.decide(pending.approval_id, APPROVE, identity={"userArn": None})

    assert (status, body["error"]["code"]) == (401, "unauthenticated")


def test_cognito_users_are_identified_by_their_claims(aws: AwsWorkflows) -> None:
    pending = request_approval(aws)

    status, body = aws.decide(
        pending.approval_id,
        APPROVE,
        identity={"userArn": None},
        claims={"sub": "1234", "cognito:username": "rita"},
    )

    assert (status, body["decided_by"]) == (200, "cognito:rita")


def test_service_failures_are_500_without_the_services_text(aws: AwsWorkflows) -> None:
    pending = request_approval(aws)
    aws.faults.fail("dynamodb", "GetItem", code="AccessDeniedException", status=400)

    status, body = aws.decide(pending.approval_id, APPROVE)

    assert status == 500
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["message"] == "internal error"
    assert "AccessDenied" not in json.dumps(body)
