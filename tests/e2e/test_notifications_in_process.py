"""Notifications on the local runtime: what the stage's topic receives from the synthesized
rules when the domain publishes ``ApprovalRequested`` or the anchor job finds tampering."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from flywheel.local.lifecycle import MODEL, InProcessDriver, Lifecycle
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime, readable

TOPIC = "flywheel-dev-notifications"


@pytest.fixture
def setup(aws_env: dict[str, str]) -> Iterator[tuple[Lifecycle, LocalRuntime]]:
    from moto import mock_aws

    with mock_aws(config=MOTO_CONFIG), LocalRuntime() as runtime:
        life = Lifecycle(InProcessDriver(runtime))
        life.seed()
        yield life, runtime


def test_a_requested_approval_tells_the_approvers_how_to_decide_it(
    setup: tuple[Lifecycle, LocalRuntime],
) -> None:
    life, runtime = setup
    # Given nothing has notified anyone yet
    assert runtime.notifications() == []

    # When a training run stops to wait for approval
    _, version, approval_id = life.train_until_approval(
        lambda: life.put_event("flywheel.operator", "RetrainRequested", {"model_name": MODEL})
    )

    # Then the topic got one message naming what waits and how to decide it
    notice = life.notification("ApprovalRequested", approval_id)
    assert notice["topic"] == TOPIC
    text = readable(notice["message"])
    assert text.splitlines()[0] == f"Flywheel: {MODEL} version {version} waits for approval"
    assert f"Approval {approval_id}, requested by " in text
    assert f"flywheel approve {MODEL} {version} -r REASON" in text
    assert f'POST /v1/approvals/{approval_id} {{"decision": "approve" | "reject"' in text
    assert [n["detail_type"] for n in runtime.notifications()] == ["ApprovalRequested"]

    # And the approver can act on it at once (the notification is not the request's last write)
    status, body = life.approve(approval_id, "reviewed after the notification")
    assert status == 200, body


def test_a_tampered_audit_chain_is_reported_to_the_topic_by_the_anchor_job(
    setup: tuple[Lifecycle, LocalRuntime],
) -> None:
    life, runtime = setup
    # Given someone edits the model's first audit entry in the table
    table = life.settings.resource("audit_table")
    boto3.client("dynamodb").update_item(
        TableName=table,
        Key={"pk": {"S": MODEL}, "seq": {"N": "1"}},
        UpdateExpression="SET actor = :a",
        ExpressionAttributeValues={":a": {"S": "mallory@example.com"}},
    )

    # When the hourly anchor job runs
    fired = runtime.advance(3600 + 60)

    # Then the topic says which chain failed and how to look at it
    assert any(name.endswith("audit-anchor-schedule") for name in fired)
    notice = life.notification("AuditTamperDetected", MODEL)
    text = readable(notice["message"])
    assert text.splitlines()[0].startswith(f"Flywheel: the audit chain {MODEL} failed verification")
    assert "entry 1" in text
    assert f"flywheel audit verify {MODEL}" in text
