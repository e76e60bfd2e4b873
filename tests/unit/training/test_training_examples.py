"""The example configs a user copies train as documented (small tables, one thread)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.training.config import load_config
from flywheel.training.trainer import train_from_config

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture
def churn_folder(tmp_path: Path) -> Path:
    """The churn example's files and a generated table, where a user would run them."""
    folder = tmp_path / "churn"
    folder.mkdir()
    for name in ("churn.yaml", "churn_entrypoint.yaml", "churnmodels.py"):
        (folder / name).write_text((EXAMPLES / "churn" / name).read_text())
    subprocess.run(
        [sys.executable, str(EXAMPLES / "churn" / "make_data.py"), str(folder / "churn.csv"),
         "--rows", "800"],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder


def test_the_churn_example_searches_and_keeps_float64_parity(churn_folder: Path) -> None:
    outcome = train_from_config(load_config(churn_folder / "churn.yaml"))

    assert outcome.search is not None
    assert len(outcome.search.trials) == 4
    assert outcome.parity.precision == "float64"
    assert outcome.parity.passed
    assert outcome.metrics["roc_auc"] > 0.6


def test_the_churn_entrypoint_example_tunes_the_teams_own_pipeline(
    churn_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(churn_folder)  # as documented: run from the example's folder
    monkeypatch.syspath_prepend(str(churn_folder))

    outcome = train_from_config(load_config(churn_folder / "churn_entrypoint.yaml"))

    assert outcome.lineage.entrypoint is not None
    assert outcome.search is not None
    assert {t.params["C"] for t in outcome.search.trials} == {0.1, 1.0, 10.0}
    assert outcome.parity.passed
    assert outcome.input_schema.typed
