"""``flywheel data validate``: a team's CI checks an extract with no deployment at all."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from flywheel.cli.app import app
from flywheel.training.datasets import load_dataset
from flywheel.workflows.training import dataset_csv

if TYPE_CHECKING:
    from pathlib import Path

MODEL_CONFIG = """\
name: cancer
training:
  task: classification
  dataset: {source: cancer.csv, target: target}
  estimator: logistic_regression
gate: {metric: roc_auc}
data:
  min_rows: 100
  expectations: {max_duplicate_share: 0.0}
"""
TRAINING_CONFIG = """\
model: cancer
task: classification
dataset: {source: cancer.csv, target: target}
estimator: logistic_regression
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Configs and a clean extract; no local runtime answers and none may be started."""
    monkeypatch.setenv("FLYWHEEL_BACKEND", "local")
    monkeypatch.delenv("FLYWHEEL_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("FLYWHEEL_LOCAL_PORT", str(free_port()))
    lines = dataset_csv(load_dataset("sklearn:breast_cancer")).decode().splitlines()
    (tmp_path / "cancer.csv").write_text("\n".join([lines[0], *lines[1:]]) + "\n")
    (tmp_path / "model.yaml").write_text(MODEL_CONFIG)
    (tmp_path / "train.yaml").write_text(TRAINING_CONFIG)
    leaked = [f"{int(line.endswith('malignant'))},{line}" for line in lines[1:]]
    (tmp_path / "leaked.csv").write_text("\n".join([f"flag,{lines[0]}", *leaked]) + "\n")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["data", "validate", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_clean_extract_passes_with_schema_checks_only_and_says_why(folder: Path) -> None:
    code, output = run(str(folder / "model.yaml"))

    assert code == 0, output
    assert "leakage" in output
    assert "passed" in output
    assert "no registry reachable (the local runtime is not running)" in output
    assert "only the checks that need no reference ran" in output
    assert "data validation passed" in output
    assert not (folder / ".flywheel").exists()  # no runtime was started


def test_a_leaking_extract_fails_naming_the_column(folder: Path) -> None:
    code, output = run(str(folder / "model.yaml"), "--data", str(folder / "leaked.csv"))

    assert code == 1
    assert "leakage.flag" in output
    assert "1 data expectation(s) failed: leakage.flag" in output


def test_json_output_carries_every_expectation_and_the_verdict(folder: Path) -> None:
    code, output = run(
        str(folder / "train.yaml"), "--data", str(folder / "leaked.csv"), "--json", "--no-reference"
    )

    assert code == 1
    report = json.loads(output)
    assert report["passed"] is False
    assert report["notes"] == ["--no-reference: only the checks that need no reference ran"]
    failed = [(r["check"], r["feature"]) for r in report["results"] if r["status"] == "failed"]
    assert failed == [("leakage", "flag")]


def test_the_model_configs_thresholds_apply(folder: Path) -> None:
    text = (folder / "cancer.csv").read_text().splitlines()
    (folder / "twice.csv").write_text("\n".join([*text, text[1]]) + "\n")

    strict, output = run(str(folder / "model.yaml"), "--data", str(folder / "twice.csv"))
    default, _ = run(str(folder / "train.yaml"), "--data", str(folder / "twice.csv"))

    assert (strict, default) == (1, 0)
    assert "failed: duplicates" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml"], "config: file"),
        (["model.yaml", "--data", "data.txt"], "--data: 'data.txt': a local dataset must end"),
        (["model.yaml", "--data", "absent.csv"], "dataset.source: file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    folder: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder)

    code, output = run(*args)

    assert code == 1
    assert output.startswith("error: ")
    assert message in output
    assert len(output.strip().splitlines()) == 1
