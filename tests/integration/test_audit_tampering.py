"""Tampering done directly on the DynamoDB audit table is detected, and pinpointed."""

from __future__ import annotations

from typing import Any

import pytest

from flywheel.adapters.dynamodb import DynamoDbAuditLog
from flywheel.audit.chain import ProblemKind, verify_chain
from flywheel.audit.models import AuditAction, AuditDraft


@pytest.fixture
def chain(local_names: dict[str, str], dynamodb_client: Any) -> DynamoDbAuditLog:
    log = DynamoDbAuditLog(local_names["FLYWHEEL_AUDIT_TABLE"], client=dynamodb_client)
    for i in range(1, 6):
        log.append(
            AuditDraft(
                model="churn",
                action=AuditAction.APPROVED,
                actor=f"user-{i}",
                version=i,
                reason=f"reason {i}",
                details={"score": i / 10},
            )
        )
    return log


def _verify(log: DynamoDbAuditLog, **kwargs: Any) -> Any:
    return verify_chain("churn", log.entries("churn"), recorded_head=log.head("churn"), **kwargs)


def _key(seq: int) -> dict[str, Any]:
    return {"pk": {"S": "churn"}, "seq": {"N": str(seq)}}


def test_untouched_chain_verifies(chain: DynamoDbAuditLog) -> None:
    report = _verify(chain)
    assert report.ok
    assert report.entries_checked == 5


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("reason", {"S": "nothing to see"}), ("actor", {"S": "mallory"}), ("version", {"N": "9"})],
)
def test_an_edited_entry_is_reported_by_sequence_number(
    chain: DynamoDbAuditLog, attribute: str, value: dict[str, str]
) -> None:
    chain.client.update_item(
        TableName=chain.table_name,
        Key=_key(3),
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": value},
    )
    report = _verify(chain)
    assert not report.ok
    assert report.first_problem is not None
    assert (report.first_problem.seq, report.first_problem.kind) == (3, ProblemKind.EDITED)


def test_an_edit_that_also_recomputes_the_hash_breaks_the_next_link(
    chain: DynamoDbAuditLog,
) -> None:
    # A careful attacker recomputes entry 3's hash; entry 4 no longer links to it.
    entries = list(chain.entries("churn"))
    forged = entries[2].model_copy(update={"reason": "forged"})
    forged = forged.model_copy(update={"hash": forged.computed_hash()})
    chain.client.update_item(
        TableName=chain.table_name,
        Key=_key(3),
        UpdateExpression="SET reason = :r, #h = :h",
        ExpressionAttributeNames={"#h": "hash"},
        ExpressionAttributeValues={":r": {"S": "forged"}, ":h": {"S": forged.hash}},
    )
    report = _verify(chain)
    kinds = {(p.seq, p.kind) for p in report.problems}
    assert (4, ProblemKind.BROKEN_LINK) in kinds


def test_a_deleted_entry_is_reported(chain: DynamoDbAuditLog) -> None:
    chain.client.delete_item(TableName=chain.table_name, Key=_key(2))
    report = _verify(chain)
    kinds = {(p.seq, p.kind) for p in report.problems}
    assert (2, ProblemKind.MISSING) in kinds
    assert (3, ProblemKind.BROKEN_LINK) in kinds


def test_reordered_entries_are_reported(chain: DynamoDbAuditLog) -> None:
    # Swap the contents of entries 2 and 4, keeping their keys.
    items = {
        seq: chain.client.get_item(TableName=chain.table_name, Key=_key(seq))["Item"]
        for seq in (2, 4)
    }
    for seq, other in ((2, 4), (4, 2)):
        swapped = dict(items[other])
        swapped["seq"] = {"N": str(seq)}
        chain.client.put_item(TableName=chain.table_name, Item=swapped)
    report = _verify(chain)
    assert not report.ok
    assert report.first_problem is not None
    assert report.first_problem.seq == 2


def test_a_truncated_tail_is_reported_against_the_head(chain: DynamoDbAuditLog) -> None:
    for seq in (4, 5):
        chain.client.delete_item(TableName=chain.table_name, Key=_key(seq))
    report = _verify(chain)
    assert report.first_problem is not None
    assert report.first_problem.kind is ProblemKind.TRUNCATED
    assert report.first_problem.seq == 4


def test_truncation_with_a_rewritten_head_is_caught_by_an_external_anchor(
    chain: DynamoDbAuditLog,
) -> None:
    anchor = chain.head("churn")
    assert anchor is not None
    entries = list(chain.entries("churn"))
    for seq in (4, 5):
        chain.client.delete_item(TableName=chain.table_name, Key=_key(seq))
    chain.client.update_item(
        TableName=chain.table_name,
        Key=_key(0),
        UpdateExpression="SET head_seq = :s, head_hash = :h",
        ExpressionAttributeValues={":s": {"N": "3"}, ":h": {"S": entries[2].hash}},
    )
    assert _verify(chain).ok  # the table alone is now self-consistent...
    report = _verify(chain, anchor=anchor)  # ...but not with the head recorded elsewhere
    assert report.first_problem is not None
    assert report.first_problem.kind is ProblemKind.TRUNCATED
    assert report.first_problem.seq == 5


def test_a_garbled_item_is_reported_as_edited_not_crashing(chain: DynamoDbAuditLog) -> None:
    chain.client.update_item(
        TableName=chain.table_name,
        Key=_key(2),
        UpdateExpression="SET details = :d",
        ExpressionAttributeValues={":d": {"S": "{not json"}},
    )
    report = _verify(chain)
    assert report.first_problem is not None
    assert (report.first_problem.seq, report.first_problem.kind) == (2, ProblemKind.EDITED)
