"""``flywheel stage promote`` on moto: two stages' tables and buckets, found through their
SSM records, the target reached through its promotion role (ADR 65)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from examples.byo.export_onnx import export
from flywheel.adapters.ssm import platform_parameter
from flywheel.local.provision import default_names, provision
from flywheel.sdk import Flywheel
from tests.factories import corrupt_s3_version
from tests.integration.test_cli import Principals, invoke, role_session

MODEL = "iris-gb"
ROLE = "arn:aws:iam::123456789012:role/flywheel-prod-stage-promotion"


@pytest.fixture
def people(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> Principals:
    return Principals(monkeypatch)


@pytest.fixture
def stages(
    moto_aws: None, monkeypatch: pytest.MonkeyPatch, people: Principals, tmp_path: Path
) -> dict[str, Any]:
    """``flywheel-dev`` and ``flywheel-prod`` on one moto, each with its SSM record; dev
    holds an approved ``iris-gb`` version 1; commands run as dev's ML engineer."""
    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    monkeypatch.delenv("FLYWHEEL_ACTOR", raising=False)
    names: dict[str, Any] = {}
    for stage in ("dev", "prod"):
        prefix = f"flywheel-{stage}"
        names[stage] = default_names(prefix)
        provision(boto3.client("dynamodb"), boto3.client("s3"), names[stage],
                  kms=boto3.client("kms"))  # fmt: skip
        record = {"stage": stage, "region": "us-east-1", "environment": names[stage]}
        boto3.client("ssm").put_parameter(
            Name=platform_parameter(prefix), Value=json.dumps(record), Type="String"
        )
    boto3.client("iam").create_role(
        RoleName="flywheel-prod-stage-promotion", AssumeRolePolicyDocument="{}"
    )
    people.act_as("data-scientist")
    dev = Flywheel.for_stage("dev")
    files = export(tmp_path / "byo", sample_rows=20)
    registered = dev.register_onnx(
        MODEL, files["model"], schema=files["schema"], reference=files["reference"]
    )
    dev.registry.approve(MODEL, registered.version.version, actor="approver", reason="ok")
    people.act_as("ml-engineer")
    return names


def _promote(runner: CliRunner, *extra: str) -> Any:
    return invoke(runner, "stage", "promote", MODEL, "1", "--from", "dev", "--to", "prod",
                  "--to-role-arn", ROLE, "-r", "release 1", *extra)  # fmt: skip


def _trail(stage: str) -> list[dict[str, Any]]:
    fw = Flywheel.for_stage(stage)
    return [e.model_dump(mode="json") for e in fw.audit_entries(MODEL)]


def test_promote_copies_registers_and_both_trails_name_each_other(
    stages: dict[str, Any], people: Principals
) -> None:
    runner = CliRunner()
    done = _promote(runner)

    assert done.exit_code == 0, done.output
    assert "pending_approval" in done.stdout
    assert "stage_promoted_in" in done.stdout
    prod = Flywheel.for_stage("prod")
    landed = prod.get_version(MODEL, 1)
    assert landed.status == "pending_approval"
    bucket = stages["prod"]["FLYWHEEL_ARTIFACTS_BUCKET"]
    assert landed.artifact.uri == f"s3://{bucket}/models/{MODEL}/promoted-dev-v1/model.onnx"
    dev_version = Flywheel.for_stage("dev").get_version(MODEL, 1)
    assert landed.artifact.sha256 == dev_version.artifact.sha256
    promoter = role_session("flywheel-prod-stage-promotion")
    assert [(e["action"], e["actor"]) for e in _trail("prod")] == [
        ("version_registered", promoter),
        ("approval_requested", promoter),
        ("stage_promoted_in", promoter),
    ]
    out = _trail("dev")[-1]
    assert (out["action"], out["actor"]) == ("stage_promoted_out", role_session("ml-engineer"))

    verified = invoke(runner, "stage", "verify-promotion", MODEL, "--from", "dev", "--to",
                      "prod", "--to-role-arn", ROLE)  # fmt: skip
    assert verified.exit_code == 0, verified.output
    assert "dev version 1 → prod version 1" in verified.stdout


def test_someone_else_approves_the_promoted_candidate_in_prod_without_direct_approval(
    stages: dict[str, Any], people: Principals, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    assert _promote(runner).exit_code == 0
    monkeypatch.setenv("FLYWHEEL_STAGE", "prod")
    approver = people.act_as("approver")

    approved = invoke(runner, "approve", MODEL, "1", "-r", "reviewed in dev, canary next")

    assert approved.exit_code == 0, approved.output
    prod = Flywheel.for_stage("prod")
    assert prod.get_version(MODEL, 1).status == "approved"
    decided = _trail("prod")[-1]
    assert (decided["action"], decided["actor"]) == ("approved", approver)
    assert decided["details"]["approval_id"]


def test_the_same_command_again_changes_nothing(stages: dict[str, Any]) -> None:
    runner = CliRunner()
    assert _promote(runner).exit_code == 0
    trails = (_trail("dev"), _trail("prod"))

    again = _promote(runner, "--json")

    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["done"] == []
    assert (_trail("dev"), _trail("prod")) == trails


def test_a_source_whose_bytes_changed_is_refused_in_one_line_and_prod_stays_empty(
    stages: dict[str, Any],
) -> None:
    version = Flywheel.for_stage("dev").get_version(MODEL, 1)
    corrupt_s3_version(version.artifact.uri, version.artifact.version_id)
    dev_trail = _trail("dev")

    refused = _promote(CliRunner())

    assert refused.exit_code == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "stopped at copy" in refused.stderr
    assert "nothing was registered in prod and nothing recorded in dev" in refused.stderr
    assert Flywheel.for_stage("prod").list_models().items == []
    assert _trail("dev") == dev_trail


def test_verify_promotion_exits_3_when_the_copy_in_prod_was_altered(
    stages: dict[str, Any],
) -> None:
    runner = CliRunner()
    assert _promote(runner).exit_code == 0
    landed = Flywheel.for_stage("prod").get_version(MODEL, 1)
    corrupt_s3_version(landed.artifact.uri, landed.artifact.version_id)

    verified = invoke(runner, "stage", "verify-promotion", MODEL, "--from", "dev", "--to",
                      "prod", "--to-role-arn", ROLE)  # fmt: skip

    assert verified.exit_code == 3
    assert "prod:" in verified.stderr


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--from", "dev", "--to", "dev"), "to:"),
        (("--from", "dev", "--to", "Prod!"), "stage:"),
        (("--from", "dev", "--to", "prod", "--to-role-arn", "not-an-arn"), "to-role-arn:"),
        (("--from", "dev", "--to", "qa"), "FLYWHEEL_STAGE"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    stages: dict[str, Any], args: tuple[str, ...], field: str
) -> None:
    refused = invoke(CliRunner(), "stage", "promote", MODEL, "1", *args)
    assert refused.exit_code == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert field in refused.stderr
