"""Least privilege for records: one writer of registry and audit, one signer, write-once
anchors and artifacts (synthesized templates, both stages)."""

from __future__ import annotations

import re
from typing import Any

from infra.config import load_stage_config
from tests.infra.synth import Synth, actions_of, allowed, resources_text, role_statements

GOVERNANCE = "FlywheelGovernance"
WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}


def _roles_allowed(synth: Synth, actions: set[str], resource_part: str) -> set[str]:
    roles: set[str] = set()
    for name, policy in synth.resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            text = resources_text(statement)
            if (
                statement["Effect"] == "Allow"
                and set(actions_of(statement)) & actions
                and resource_part in text
                and "/index/" not in text.split(resource_part, 1)[1][:8]
            ):
                stack = name.split("/")[0]
                roles |= {f"{stack}/{r['Ref']}" for r in policy["Properties"]["Roles"]}
    return roles


def test_only_the_records_writer_writes_the_registry_and_the_audit_table(synth: Synth) -> None:
    for table in ("-RegistryTable", "-AuditTable"):
        writers = _roles_allowed(synth, WRITES, table)
        assert len(writers) == 1, (table, writers)
        assert next(iter(writers)).startswith(f"{GOVERNANCE}/RecordsWriterHandlerRole")


def test_the_writer_has_one_alias_per_capability_and_callers_get_only_theirs(
    synth: Synth,
) -> None:
    aliases = {
        a["Properties"]["Name"] for a in synth.resources("AWS::Lambda::Alias", GOVERNANCE).values()
    }
    assert aliases == {
        "training-runs",
        "promotion-runs",
        "workflows",
        "approvals",
        "training",
        "operations",
        "features",
        "promotions",
        "configs",
        "prompts",
        "monitors",
    }
    writer = f"{synth.prefix}-records-writer"
    capability = {
        f"{synth.prefix}-approval-api": "approvals",
        f"{synth.prefix}-training-register": "training-runs",
        f"{synth.prefix}-promotion-promote-all": "promotion-runs",
        f"{synth.prefix}-promotion-record-failure": "workflows",
        f"{synth.prefix}-feature-materializer": "features",
        f"{synth.prefix}-retrain-api": "configs",
        f"{synth.prefix}-prompt-api": "prompts",
        f"{synth.prefix}-llm-monitor": "monitors",
    }
    for function, own in capability.items():
        granted = {
            alias
            for statement in role_statements(synth, function)
            if "lambda:InvokeFunction" in actions_of(statement)
            for alias in re.findall(rf"{writer}:([a-z-]+)", resources_text(statement))
        }
        assert granted == {own}, (function, granted)
    # Nobody invokes the writer unqualified (no capability at all).
    for policy in synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "lambda:InvokeFunction" in actions_of(statement):
                assert f'function:{writer}"' not in resources_text(statement)


def test_only_the_writer_can_sign_audit_heads(synth: Synth) -> None:
    keys = [
        k
        for k in synth.resources("AWS::KMS::Key", "FlywheelData").values()
        if k["Properties"].get("KeySpec") == "HMAC_256"
    ]
    assert len(keys) == 1
    key = keys[0]["Properties"]
    assert key["KeyUsage"] == "GENERATE_VERIFY_MAC"
    denies = [s for s in key["KeyPolicy"]["Statement"] if s["Effect"] == "Deny"]
    assert len(denies) == 1
    assert denies[0]["Action"] == "kms:GenerateMac"
    assert denies[0]["Principal"] == {"AWS": "*"}
    assert "role/" + f"{synth.prefix}-records-writer" in str(denies[0]["Condition"])
    signers = _roles_allowed(synth, {"kms:GenerateMac"}, "key/*")
    assert signers
    assert all(r.startswith(f"{GOVERNANCE}/RecordsWriterHandlerRole") for r in signers)
    role = synth.resources("AWS::IAM::Role", GOVERNANCE)
    names = [r["Properties"].get("RoleName") for r in role.values()]
    assert f"{synth.prefix}-records-writer" in names


def test_anchors_and_artifacts_are_write_once(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    buckets: dict[str, Any] = {
        b["Properties"]["BucketName"]["Fn::Join"][1][0]: b["Properties"]
        for b in synth.resources("AWS::S3::Bucket", "FlywheelData").values()
        if isinstance(b["Properties"].get("BucketName"), dict)
    }
    anchors = next(p for n, p in buckets.items() if "anchorsbucket" in n)
    artifacts = next(p for n, p in buckets.items() if "artifactsbucket" in n)
    for props, days in (
        (anchors, config.anchor_retention_days),
        (artifacts, config.artifact_retention_days),
    ):
        assert props["ObjectLockEnabled"] is True
        retention = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
        assert retention == {"Mode": config.object_lock_mode, "Days": days}
    if synth.stage == "prod":
        assert config.object_lock_mode == "COMPLIANCE"
        assert config.anchor_retention_days == 7 * 365
    # Only the anchor job writes anchors
    assert _roles_allowed(synth, {"s3:PutObject"}, "anchorsbucket") == {
        next(iter(_roles_allowed(synth, {"s3:PutObject"}, "anchorsbucket")))
    }
    assert next(iter(_roles_allowed(synth, {"s3:PutObject"}, "anchorsbucket"))).startswith(
        f"{GOVERNANCE}/AuditAnchoringHandlerRole"
    )


def test_the_anchor_job_runs_on_schedule_and_verifies(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    rules = {
        r["Properties"]["Name"]: r["Properties"]
        for r in synth.resources("AWS::Events::Rule", GOVERNANCE).values()
    }
    name = f"{synth.prefix}-audit-anchor"
    assert rules[f"{name}-schedule"]["ScheduleExpression"] == config.anchor_schedule
    assert allowed(synth, name, "kms:VerifyMac")
    assert not allowed(synth, name, "kms:GenerateMac")
    assert not allowed(synth, name, "dynamodb:PutItem", "-RegistryTable")
    assert not allowed(synth, name, "lambda:InvokeFunction", "records-writer")
