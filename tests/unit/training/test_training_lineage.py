"""Lineage helpers: library versions, the dependency lock hash and the code commit."""

from __future__ import annotations

import re
import subprocess
from importlib import metadata

import pytest

from flywheel.training import lineage
from flywheel.training.lineage import code_commit, dependency_lock_hash, library_versions


def test_library_versions_name_the_numeric_stack() -> None:
    versions = library_versions()

    assert versions["sklearn"] == metadata.version("scikit-learn")
    assert versions["onnxruntime"] == metadata.version("onnxruntime")
    assert re.fullmatch(r"3\.\d+\.\d+", versions["python"])
    assert set(versions) == {
        "sklearn",
        "skl2onnx",
        "onnx",
        "onnxruntime",
        "numpy",
        "lightgbm",
        "xgboost",
        "python",
    }
    assert versions["lightgbm"] == metadata.version("lightgbm")


def test_the_lock_hash_is_stable_and_covers_every_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = dependency_lock_hash()

    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert dependency_lock_hash() == first

    real = metadata.distributions

    def without_numpy() -> list[metadata.Distribution]:
        return [d for d in real() if d.metadata["Name"] != "numpy"]

    monkeypatch.setattr(lineage.metadata, "distributions", without_numpy)
    assert dependency_lock_hash() != first


def test_the_commit_comes_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_CODE_COMMIT", "0123abc")

    assert code_commit() == "0123abc"


def test_the_commit_comes_from_git_in_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYWHEEL_CODE_COMMIT", raising=False)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=lineage.__file__.rsplit("/", 1)[0],
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not running from a git checkout")

    commit = code_commit()

    assert commit is not None
    assert commit.removesuffix("-dirty") == head


def test_no_git_means_no_commit_and_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYWHEEL_CODE_COMMIT", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")

    assert code_commit() is None
