"""``flywheel project apply`` in AWS mode on moto: the stage found through its SSM record,
the configs stored through the records writer as the caller's proven identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flywheel.sdk import Flywheel
from tests.integration.test_cli import Principals, invoke, role_session
from tests.integration.test_stage_promotion_aws import people, stages  # noqa: F401 (fixtures)
from tests.unit.project.test_project_file import _write


def test_ci_stores_the_projects_configs_in_the_stage_once(
    stages: dict[str, Any],  # noqa: F811
    people: Principals,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = _write(tmp_path)
    monkeypatch.setenv("FLYWHEEL_STAGE", "dev")
    runner = CliRunner()

    first = invoke(runner, "project", "apply", str(project), "--stage", "dev", "-r", "deploy a1")
    again = invoke(runner, "project", "apply", str(project), "--stage", "dev", "-r", "deploy a2")

    assert first.exit_code == 0, first.output
    assert "churn: configured revision 1" in first.stdout
    assert "dev: stored 1 config(s) of 1" in first.stdout  # iris-gb has no config to retire
    assert again.exit_code == 0, again.output
    assert "churn: unchanged revision 1" in again.stdout
    dev = Flywheel.for_stage("dev")
    assert dev.model_config("churn").config.training.estimator == "logistic_regression"
    configured = [e for e in dev.audit_entries("churn") if e.action == "model_configured"]
    assert [(e.actor, e.reason) for e in configured] == [(role_session("ml-engineer"), "deploy a1")]
