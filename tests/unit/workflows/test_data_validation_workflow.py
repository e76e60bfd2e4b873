"""ValidateData in the training workflow: a failing training set stops the run before Train,
is audited with its report, and changes no version."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from flywheel.errors import ModelNotFoundError
from flywheel.registry.models import ArtifactRef, VersionStatus
from flywheel.training.datasets import load_dataset
from flywheel.workflows.training import dataset_csv
from tests.workflow_support import MODEL

if TYPE_CHECKING:
    from pathlib import Path

    from tests.unit.workflows.conftest import World


def cancer_csv(
    folder: Path, *, rows: slice = slice(None), leak: bool = False, gaps: str | None = None
) -> str:
    """Breast cancer as a CSV file (target ``target``), changed the way the test needs."""
    dataset = load_dataset("sklearn:breast_cancer")
    lines = dataset_csv(dataset).decode().splitlines()
    header, body = lines[0].split(","), lines[1:][rows]
    header[-1] = "target"
    if leak:
        header.insert(0, "follow_up_code")
        body = [f"{1 if line.endswith('malignant') else 0},{line}" for line in body]
    if gaps is not None:
        column = header.index(gaps)
        body = [
            ",".join("" if j == column and i % 2 else v for j, v in enumerate(line.split(",")))
            for i, line in enumerate(body)
        ]
    path = folder / "cancer.csv"
    path.write_text("\n".join([",".join(header), *body]) + "\n")
    return str(path)


def configure_csv(world: World, source: str) -> None:
    world.configure(training={"dataset": {"source": source, "target": "target"}})


def test_a_leaking_training_set_stops_before_train_and_is_audited(
    world: World, tmp_path: Path
) -> None:
    # Given a training set with a column that gives the diagnosis away
    configure_csv(world, cancer_csv(tmp_path, leak=True))

    # When a run starts
    execution = world.start_training("schedule")

    # Then it fails at ValidateData: nothing trained, nothing registered
    assert execution.status == "FAILED"
    assert execution.visited[-4:] == [
        "ValidateData",
        "ReleaseRunLockAfterFailure",
        "RecordFailure",
        "TrainingFailed",
    ]
    assert "Train" not in execution.visited
    assert execution.state["lock_release"]["Payload"]["released"] is True
    with pytest.raises(ModelNotFoundError):
        world.registry.get_model(MODEL)
    # and the audit trail says which expectation failed and where the report is
    entry = list(world.audit.entries(MODEL))[-1]
    assert str(entry.action) == "data_validation_failed"
    assert entry.version is None
    assert entry.reason is not None
    assert entry.reason.startswith(
        "ValidateData failed: DataValidationError: 1 data expectation(s) failed: "
        "leakage.follow_up_code; report memory://reports/cancer/data/"
    )
    report_key = str(entry.details["report"])
    assert report_key.startswith("reports/cancer/data/")
    assert report_key.endswith(".json")
    assert world.registry.verify(MODEL).ok


def test_the_second_run_is_checked_against_the_first_runs_profile(
    world: World, tmp_path: Path
) -> None:
    # Given a first candidate trained on the full table
    configure_csv(world, cancer_csv(tmp_path))
    first = world.start_training("schedule")
    assert first.status == "WAITING", first.state.get("error")
    validation = first.state["validation"]["Payload"]
    assert validation["reference"] == "model 'cancer' has no registered version"
    assert validation["report_html"]["uri"].endswith(".html")
    world.approve(first)
    world.clock.advance(timedelta(hours=2))

    # When the next extract has a third of the rows and half of 'mean radius' missing
    cancer_csv(tmp_path, rows=slice(0, 190), gaps="mean radius")
    second = world.start_training("drift")

    # Then the run stops before Train naming each failure (the first rows skew malignant)
    assert second.visited[-3:] == ["ReleaseRunLockAfterFailure", "RecordFailure", "TrainingFailed"]
    entry = list(world.audit.entries(MODEL))[-1]
    assert str(entry.action) == "data_validation_failed"
    assert "failed: null_rates.mean radius, row_count, label_shift;" in (entry.reason or "")
    # the version it was compared with is untouched
    assert world.registry.get_version(MODEL, 1).status is VersionStatus.APPROVED
    assert world.registry.get_model(MODEL).latest_version == 1


def test_warnings_are_reported_and_the_run_goes_on(world: World, tmp_path: Path) -> None:
    # Given a table with one repeated row, and duplicates only warned about
    source = cancer_csv(tmp_path)
    lines = (tmp_path / "cancer.csv").read_text().splitlines()
    (tmp_path / "cancer.csv").write_text("\n".join([*lines, lines[1]]) + "\n")
    world.configure(
        training={"dataset": {"source": source, "target": "target"}},
        data={"expectations": {"warn": ["duplicates"], "max_duplicate_share": 0.0}},
    )

    # When a run starts, it trains and waits for approval
    execution = world.start_training("schedule")
    assert execution.status == "WAITING", execution.state.get("error")

    # Then the warning is in the step's result and in the stored report
    validation = execution.state["validation"]["Payload"]
    assert validation["warnings"] == ["duplicates"]
    report = world.artifacts.get_json(ArtifactRef.model_validate(validation["report_json"]))
    [duplicates] = [r for r in report["results"] if r["check"] == "duplicates"]
    assert (duplicates["status"], duplicates["severity"]) == ("failed", "warning")
    assert duplicates["observed"] == "1 rows (0.2%)"
    assert report["passed"] is True
