"""``flywheel monitor reports`` / ``open`` on moto: the monitors' reports from the shell."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
from flywheel.cli import monitor
from flywheel.cli.app import app
from flywheel.registry.service import RegistryService
from tests.factories import version_draft

REPORTS = {
    "reports/churn/drift/2026-03-01T100000.html": b"<html>drift at ten</html>",
    "reports/churn/drift/2026-03-01T100000.json": b"{}",
    "reports/churn/drift/2026-03-01T110000.html": b"<html>drift at eleven</html>",
    "reports/churn/drift/2026-03-01T110000.json": b"{}",
    "reports/churn/performance/2026-03-01T120000.html": b"<html>performance</html>",
    "reports/churn/performance/2026-03-01T120000.json": b"{}",
    "reports/churn/run-1/evaluation.json": b"{}",  # training's report: not a monitor's
    "reports/other/drift/2026-03-01T130000.html": b"<html>another model</html>",
}


@pytest.fixture
def reports(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    for env_var, name in local_names.items():
        monkeypatch.setenv(env_var, name)
    dynamodb = boto3.client("dynamodb")
    audit = DynamoDbAuditLog(local_names["FLYWHEEL_AUDIT_TABLE"], client=dynamodb)
    store = DynamoDbModelRegistry(local_names["FLYWHEEL_REGISTRY_TABLE"], audit, client=dynamodb)
    for name in ("churn", "other"):
        RegistryService(store, audit).register(version_draft(name=name), actor="ci")
    s3 = boto3.client("s3")
    for key, body in REPORTS.items():
        s3.put_object(Bucket=local_names["FLYWHEEL_ARTIFACTS_BUCKET"], Key=key, Body=body)
    opened: list[str] = []
    monkeypatch.setattr(monitor.webbrowser, "open", opened.append)
    return opened


def run(*args: str) -> object:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_reports_are_listed_newest_first(reports: list[str]) -> None:
    result = run("monitor", "reports", "churn")

    assert result.exit_code == 0, result.output
    runs = [line.split("│")[1].strip() for line in result.output.splitlines() if "│ 2026" in line]
    assert runs == ["2026-03-01T120000", "2026-03-01T110000", "2026-03-01T100000"]
    assert "run-1" not in result.output
    only_drift = run("monitor", "reports", "churn", "--kind", "drift")
    assert "performance" not in only_drift.output.split("reports of churn")[1]


def test_open_saves_the_newest_page_prints_its_path_and_opens_it(
    reports: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "report.html"

    result = run("monitor", "open", "churn", "--output", str(target))

    assert result.exit_code == 0, result.output
    assert target.read_bytes() == b"<html>performance</html>"
    assert str(target) in result.output.replace("\n", "")
    assert reports == [target.resolve().as_uri()]


def test_open_a_chosen_run_without_a_browser(reports: list[str], tmp_path: Path) -> None:
    target = tmp_path / "older.html"

    result = run(
        "monitor", "open", "churn", "--run", "2026-03-01T100000", "--no-browser", "-o", str(target)
    )

    assert result.exit_code == 0, result.output
    assert target.read_bytes() == b"<html>drift at ten</html>"
    assert reports == []


def test_an_unknown_run_is_one_line_on_stderr_and_exit_1(reports: list[str]) -> None:
    result = CliRunner().invoke(app, ["monitor", "open", "churn", "--run", "2020-01-01T000000"])

    assert result.exit_code == 1
    assert "no monitoring report of model 'churn' for run '2020-01-01T000000'" in result.output
    assert "flywheel monitor reports churn" in result.output


@pytest.mark.parametrize("command", [["reports"], ["open", "--no-browser"]])
def test_an_unknown_model_is_an_error_not_an_empty_list(
    reports: list[str], command: list[str]
) -> None:
    result = CliRunner().invoke(app, ["monitor", command[0], "chrun", *command[1:]])

    assert result.exit_code == 1
    assert "model 'chrun' does not exist" in result.output
