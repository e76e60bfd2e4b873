"""``flywheel project apply``: the project's model configs stored in a stage, only those
that changed, audited; nothing stored before every config is valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flywheel.audit.models import AuditAction
from flywheel.cli.app import app
from flywheel.errors import ReasonRequiredError
from flywheel.project import ProjectError, load_project
from flywheel.sdk import Flywheel
from tests.factories import version_draft
from tests.unit.project.test_project_file import MODEL, PROJECT, _write


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return _write(tmp_path)


def _configured(sdk: Flywheel, name: str) -> list[str]:
    return [
        str(e.details["config_sha256"])
        for e in sdk.audit_entries(name)
        if e.action is AuditAction.MODEL_CONFIGURED
    ]


def test_configs_are_stored_once_then_only_when_they_change(project: Path) -> None:
    sdk = Flywheel.in_memory(actor="ci")

    first = sdk.apply_project(load_project(project), "dev", reason="deploy abc123")
    again = sdk.apply_project(load_project(project), "dev", reason="deploy abc124")
    (project.parent / "models/churn/model.yaml").write_text(
        MODEL.replace("logistic_regression", "random_forest")
    )
    changed = sdk.apply_project(load_project(project), "dev", reason="deploy abc125")

    assert [(c.model, c.action, c.revision) for c in first] == [("churn", "configured", 1)]
    assert [(c.model, c.action, c.revision) for c in again] == [("churn", "unchanged", 1)]
    assert [(c.model, c.action, c.revision) for c in changed] == [("churn", "changed", 2)]
    assert sdk.model_config("churn").config.training.estimator == "random_forest"
    assert _configured(sdk, "churn") == [first[0].sha256, changed[0].sha256]
    reasons = [e.reason for e in sdk.audit_entries("churn")]
    assert reasons == ["deploy abc123", "deploy abc125"]


def test_a_dry_run_says_what_would_change_and_stores_nothing(project: Path) -> None:
    sdk = Flywheel.in_memory(actor="ci")

    planned = sdk.apply_project(load_project(project), "dev", reason="plan", dry_run=True)

    assert [(c.model, c.action) for c in planned] == [("churn", "configured")]
    assert sdk.platform.configs.find("churn") is None
    assert list(sdk.platform.audit.entries("churn")) == []


def test_a_model_the_project_no_longer_names_is_listed_as_retired_and_kept(
    project: Path,
) -> None:
    sdk = Flywheel.in_memory(actor="ci")
    sdk.apply_project(load_project(project), "dev", reason="first")
    sdk.registry.register(version_draft(name="churn"), actor="ds")
    other = project.parent / "models" / "fraud"
    other.mkdir()
    (other / "model.yaml").write_text(MODEL.replace("churn", "fraud"))
    project.write_text(PROJECT.replace("  - name: churn\n", "  - name: fraud\n"))

    changes = sdk.apply_project(load_project(project), "dev", reason="churn retired")

    assert [(c.model, c.action) for c in changes] == [("fraud", "configured"), ("churn", "retired")]
    assert sdk.platform.configs.find("churn") is not None
    assert sdk.get_version("churn", 1).name == "churn"


def test_without_a_reason_nothing_is_stored(project: Path) -> None:
    sdk = Flywheel.in_memory(actor="ci")
    with pytest.raises(ReasonRequiredError):
        sdk.apply_project(load_project(project), "dev", reason=" ")
    assert sdk.platform.configs.find("churn") is None


def test_an_invalid_model_config_stops_the_command_before_anything_is_stored(
    project: Path,
) -> None:
    (project.parent / "models/churn/model.yaml").write_text(MODEL.replace("gate:", "gates:"))
    with pytest.raises(ProjectError):
        load_project(project)  # apply_project only ever takes a loaded, validated project


def test_the_cli_refuses_an_unknown_stage_in_one_line(project: Path) -> None:
    refused = CliRunner().invoke(
        app, ["project", "apply", str(project), "--stage", "qa", "-r", "deploy"]
    )
    assert refused.exit_code == 1
    assert "stage:" in refused.stderr
    assert "qa" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_retrain_changed_asks_for_runs_of_the_models_whose_config_changed_only(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flywheel.cli.app as cli

    asked: list[tuple[str, str, str | None]] = []

    class Recording(Flywheel):
        def retrain(
            self, name: str, *, reason: str, code_version: str | None = None
        ) -> dict[str, Any]:
            asked.append((name, reason, code_version))
            return {"event_id": f"e-{len(asked)}"}

    sdk = Recording(Flywheel.in_memory(actor="ci").platform, actor="ci")
    monkeypatch.setattr(cli, "_sdk", lambda: sdk)
    monkeypatch.delenv("FLYWHEEL_BACKEND", raising=False)
    command = ["project", "apply", str(project), "--stage", "dev", "-r", "deployed abc",
               "--retrain-changed", "--code-version", "abc"]  # fmt: skip

    first = CliRunner().invoke(cli.app, command)
    again = CliRunner().invoke(cli.app, command)

    assert first.exit_code == 0, first.output
    assert "churn: training run asked for (e-1)" in first.stdout
    assert asked == [("churn", "config changed: deployed abc", "abc")]
    assert again.exit_code == 0, again.output
    assert "churn: unchanged" in again.stdout
    assert len(asked) == 1  # an unchanged config starts nothing
