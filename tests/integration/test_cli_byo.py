"""``flywheel register`` on moto: an imported ONNX model goes through the records writer,
the approval and the audit trail like a trained one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from examples.byo.export_onnx import export
from tests.integration import test_cli as cli_tests
from tests.integration.test_cli import Principals, invoke, role_session

# The CLI tests' fixtures: AWS mode on moto, `cancer` configured, acting as a data scientist.
cli_env = cli_tests.cli_env
people = cli_tests.people
runner = cli_tests.runner


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return export(tmp_path / "byo", sample_rows=30)


def _register(runner: CliRunner, files: dict[str, Path], expected: Path) -> object:
    return invoke(
        runner, "register", "cancer", "--onnx", str(files["model"]),
        "--schema", str(files["schema"]), "--reference", str(files["reference"]),
        "--expected", str(expected), "-r", "trained in the notebook",
    )  # fmt: skip


def test_an_imported_model_is_registered_approved_and_audited(
    cli_env: dict[str, str], runner: CliRunner, files: dict[str, Path], people: Principals
) -> None:
    registered = _register(runner, files, files["expected"])
    assert registered.exit_code == 0, registered.output

    shown = json.loads(
        invoke(runner, "models", "show", "cancer", "--version", "1", "--json").stdout
    )
    assert shown["status"] == "pending_approval"
    assert shown["lineage"]["reproducible"] is False
    assert shown["lineage"]["dataset_sha256"] is None
    assert shown["parity"]["passed"] is True

    people.act_as("approver")
    approved = invoke(runner, "approve", "cancer", "1", "-r", "sample checked")
    assert approved.exit_code == 0, approved.output
    trail = invoke(runner, "audit", "show", "cancer", "--json")
    entries = [json.loads(line) for line in trail.stdout.splitlines()]
    assert [(e["action"], e["actor"]) for e in entries[1:]] == [
        ("version_registered", role_session("data-scientist")),
        ("approval_requested", role_session("data-scientist")),
        ("approved", role_session("approver")),
    ]
    assert invoke(runner, "audit", "verify", "cancer").exit_code == 0

    refused = invoke(runner, "reproduce", "cancer", "1")
    assert refused.exit_code == 1
    assert "cannot be re-trained" in refused.stderr


def test_expected_outputs_that_differ_register_nothing(
    cli_env: dict[str, str], runner: CliRunner, files: dict[str, Path], tmp_path: Path
) -> None:
    header, *rows = files["expected"].read_text().splitlines()
    wrong = tmp_path / "expected.csv"
    wrong.write_text("\n".join([header, *(r.replace("0.", "0.1", 1) for r in rows)]) + "\n")

    result = _register(runner, files, wrong)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ONNX parity failed")
    assert "cancer" not in invoke(runner, "models", "list").stdout
    assert cli_tests._audit_count(cli_env) == 1  # the fixture's config entry only
