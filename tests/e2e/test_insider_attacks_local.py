"""An insider with plain write access to the audit table and the artifacts bucket, on the
local runtime: every rewrite is detected by ``verify`` and named, and the artifacts the
registry pins survive an overwrite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from flywheel.adapters.dynamodb import DynamoDbAuditLog
from flywheel.audit.chain import ProblemKind
from flywheel.audit.models import AuditDraft, seal
from flywheel.local.lifecycle import MODEL, OPERATOR, InProcessDriver, Lifecycle
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime


@pytest.fixture
def life(aws_env: dict[str, str]) -> Iterator[Lifecycle]:
    """The synthesized app on moto, one model released through the real workflows, anchored."""
    from moto import mock_aws

    with mock_aws(config=MOTO_CONFIG), LocalRuntime() as runtime:
        life = Lifecycle(InProcessDriver(runtime))
        life.seed()
        arn, _, approval_id = life.train_until_approval(
            lambda: life.put_event("flywheel.operator", "RetrainRequested", {"model_name": MODEL})
        )
        assert life.approve(approval_id, "reviewed")[0] == 200
        life.wait(arn)
        promotion = life.wait_for_new_execution("promotion", 0)
        assert life.wait(promotion["executionArn"])[0] == "SUCCEEDED"
        assert {o.result for o in life.sdk(OPERATOR).anchor()} >= {"anchored"}
        yield life


def _problems(life: Lifecycle) -> list[tuple[int, ProblemKind]]:
    return [(p.seq, p.kind) for p in life.sdk(OPERATOR).verify(MODEL).problems]


def _table(life: Lifecycle) -> tuple[Any, str]:
    return boto3.client("dynamodb"), life.settings.resource("audit_table")


def _item(client: Any, table: str, seq: int) -> dict[str, Any]:
    key = {"pk": {"S": MODEL}, "seq": {"N": str(seq)}}
    item: dict[str, Any] = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    return item


def test_the_chain_is_verified_signed_and_anchored(life: Lifecycle) -> None:
    report = life.sdk(OPERATOR).verify(MODEL)

    assert report.ok, report.problems
    assert report.signature_checked
    assert report.anchor is not None
    assert report.anchor.seq == report.head.seq  # type: ignore[union-attr]


def test_rewrite_and_reseal_a_forged_head_and_a_deleted_tail_are_each_detected(
    life: Lifecycle,
) -> None:
    client, table = _table(life)
    log = DynamoDbAuditLog(table, client=client)
    entries = list(log.entries(MODEL))
    original = {e.seq: _item(client, table, e.seq) for e in entries}
    original_head = _item(client, table, 0)
    last = entries[-1].seq

    def restore() -> None:
        for item in (*original.values(), original_head):
            client.put_item(TableName=table, Item=item)
        assert _problems(life) == []

    # 1. Rewrite-and-reseal: entry 3 gets another actor; every later link and the head are
    #    re-hashed with plain PutItem calls (the insider has no use of the writer's key).
    prev = entries[1].hash
    for entry in entries[2:]:
        draft = AuditDraft(
            model=MODEL,
            action=entry.action,
            actor="mallory@example.com" if entry.seq == 3 else entry.actor,
            version=entry.version,
            reason=entry.reason,
            details=entry.details,
        )
        forged = seal(draft, seq=entry.seq, timestamp=entry.timestamp, prev_hash=prev)
        prev = forged.hash
        item = dict(original[entry.seq])
        item.update(actor={"S": forged.actor}, prev_hash={"S": forged.prev_hash})
        item["hash"] = {"S": forged.hash}
        client.put_item(TableName=table, Item=item)
    head = dict(original_head)
    head["head_hash"] = {"S": prev}
    client.put_item(TableName=table, Item=head)
    problems = _problems(life)
    assert (last, ProblemKind.FORGED_HEAD) in problems
    assert (3, ProblemKind.ANCHOR_MISMATCH) in problems  # the first entry that differs
    restore()

    # 2. A forged head: the signature is replaced
    head = dict(original_head)
    head["head_mac"] = {"S": "Zm9yZ2VkIGJ5IG1hbGxvcnk="}
    client.put_item(TableName=table, Item=head)
    assert _problems(life) == [(last, ProblemKind.FORGED_HEAD)]
    restore()

    # 3. A deleted tail: two more entries are appended and anchored, then deleted, and the
    #    earlier (genuinely signed) head item is put back
    operator = life.sdk(OPERATOR)
    operator.configure_model(MODEL, operator.model_config(MODEL).config, reason="re-read")
    operator.configure_model(MODEL, operator.model_config(MODEL).config, reason="re-read")
    assert [o.result for o in operator.anchor() if o.stream == MODEL] == ["anchored"]
    for seq in (last + 1, last + 2):
        client.delete_item(TableName=table, Key={"pk": {"S": MODEL}, "seq": {"N": str(seq)}})
    client.put_item(TableName=table, Item=original_head)
    problems = _problems(life)
    assert (last + 1, ProblemKind.TRUNCATED) in problems
    assert all(kind is not ProblemKind.FORGED_HEAD for _, kind in problems)


def test_an_overwritten_artifact_keeps_the_pinned_bytes_and_a_removed_one_is_named(
    life: Lifecycle,
) -> None:
    operator = life.sdk(OPERATOR)
    version = operator.get_version(MODEL, 1)
    bucket, _, key = version.artifact.uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")

    # When an insider writes other bytes under the model's key
    s3.put_object(Bucket=bucket, Key=key, Body=b"a different model")
    # and tries to delete the version the registry pins
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version.artifact.version_id)

    # Then Object Lock refuses, and the registry's version still loads and verifies
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert operator.verify(MODEL).ok
    status, body = life.predict([dict.fromkeys(_features(operator), 1.0)])
    assert (status, body["version"]) == (200, 1)

    # And where governance mode can be bypassed (dev), a removed version is named
    s3.delete_object(
        Bucket=bucket,
        Key=key,
        VersionId=version.artifact.version_id,
        BypassGovernanceRetention=True,
    )
    problems = operator.verify(MODEL).problems
    assert [p.kind for p in problems] == [ProblemKind.ARTIFACT_ALTERED]
    assert "version 1's model is gone" in problems[0].message


def _features(operator: Any) -> list[str]:
    return list(operator.get_version(MODEL, 1).input_schema.feature_names)
