"""``flywheel register`` and ``flywheel train`` with an entrypoint, on the in-memory platform."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from examples.byo.export_onnx import export
from flywheel.cli import app as cli
from flywheel.sdk import Flywheel

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "byo"


@pytest.fixture
def fw(monkeypatch: pytest.MonkeyPatch) -> Flywheel:
    sdk = Flywheel.in_memory(actor="ana")
    monkeypatch.setattr(cli, "_sdk", lambda: sdk)
    return sdk


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return export(tmp_path_factory.mktemp("byo"), sample_rows=30)


def _register(runner: CliRunner, files: dict[str, Path], *extra: str) -> object:
    args = ["register", "iris-gb", "--onnx", str(files["model"]), "--schema", str(files["schema"])]
    args += ["--reference", str(files["reference"]), "-r", "import", *extra]
    return runner.invoke(cli.app, args, catch_exceptions=False)


def test_register_checks_registers_and_requests_approval(
    fw: Flywheel, exported: dict[str, Path]
) -> None:
    result = _register(CliRunner(), exported, "--expected", str(exported["expected"]))

    assert result.exit_code == 0, result.output
    assert "registered iris-gb version 1 (pending_approval)" in result.stdout
    assert "not reproducible" in result.stdout
    assert fw.get_version("iris-gb", 1).parity is not None
    assert [e.action for e in fw.audit_entries("iris-gb")] == [
        "version_registered",
        "approval_requested",
    ]


def test_register_with_mismatching_expected_outputs_is_one_line_and_registers_nothing(
    fw: Flywheel, exported: dict[str, Path], tmp_path: Path
) -> None:
    wrong = tmp_path / "expected.csv"
    lines = exported["expected"].read_text().splitlines()
    header, first, *rest = lines
    swapped = "virginica" if "setosa" in first.split(",")[0] else "setosa"
    wrong.write_text("\n".join([header, swapped + first[first.index(",") :], *rest]) + "\n")

    result = _register(CliRunner(), exported, "--expected", str(wrong))

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ONNX parity failed")
    assert len(result.stderr.strip().splitlines()) == 1
    assert fw.list_models().items == []


def test_register_a_missing_sample_names_the_option(
    fw: Flywheel, exported: dict[str, Path]
) -> None:
    result = _register(CliRunner(), {**exported, "reference": Path("nowhere.csv")})

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: reference: file not found: nowhere.csv"
    assert fw.list_models().items == []


def test_reproduce_refuses_an_imported_version(fw: Flywheel, exported: dict[str, Path]) -> None:
    _register(CliRunner(), exported)

    result = CliRunner().invoke(cli.app, ["reproduce", "iris-gb", "1"], catch_exceptions=False)

    assert result.exit_code == 1
    assert "imported as ONNX" in result.stderr
    assert "cannot be re-trained" in result.stderr


def test_train_the_example_entrypoint_from_its_folder(
    fw: Flywheel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The example package is copied under a new folder: it is imported from the current one.
    folder = tmp_path / "byo"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("out", "__pycache__"))
    monkeypatch.chdir(folder)

    result = CliRunner().invoke(cli.app, ["train", "train.yaml"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    version = fw.get_version("iris-pca", 1)
    assert version.lineage.entrypoint is not None
    assert version.lineage.entrypoint.package_version == "0.1.0"
    assert version.parity is not None
    assert version.parity.precision == "float64"


def test_train_with_an_entrypoint_that_cannot_be_imported(fw: Flywheel, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        "model: iris\ntask: classification\ndataset: {source: 'sklearn:iris'}\n"
        "entrypoint: absentpkg.models:build\n"
    )

    result = CliRunner().invoke(cli.app, ["train", str(config)], catch_exceptions=False)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: entrypoint: no module named 'absentpkg'")
    assert fw.list_models().items == []
