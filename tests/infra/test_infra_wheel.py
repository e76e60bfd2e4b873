"""Flywheel as a package: the wheel holds the CDK app, which synthesizes a team's project
from the team's own folder (no Flywheel checkout on the path)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "flywheel"
    # Build from a clean copy, so the build leaves nothing in the checkout.
    shutil.copytree(
        ROOT, source,
        ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "cdk.out", ".flywheel",
                                      "layers/build", "__pycache__", "reports", "bench"),
    )  # fmt: skip
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    return next(out.glob("flywheel_mlops-*.whl"))


def test_the_wheel_holds_the_cdk_app_its_code_and_the_example_project(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "infra/app.py",
        "infra/feature_flags.json",
        "infra/default_project/flywheel.yaml",
        "infra/default_project/models/breast-cancer/model.yaml",
        "infra/stub_assets/layer/python/README.md",
        "functions/inference/handler.py",
        "flywheel/project/loader.py",
        "flywheel/llm/prices.json",  # read at run time: what a prompt's call costs
    } <= names
    assert not any(n.startswith(("tests/", "shared/")) for n in names)


def test_an_installed_wheel_synthesizes_a_team_project_from_its_folder(
    wheel: Path, tmp_path: Path
) -> None:
    # Given the wheel unpacked as site-packages (dependencies from this environment), and
    # a team's project folder elsewhere;
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    team = tmp_path / "team"
    shutil.copytree(Path(__file__).with_name("team_project"), team)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    env.update(FLYWHEEL_ASSETS="stub", CDK_OUTDIR=str(tmp_path / "cdk.out"))
    # When the team's cdk.json command runs there (`python -m infra.app`, the project by context);
    result = subprocess.run(
        [sys.executable, "-P", "-m", "infra.app"],
        cwd=team,
        env={**env, "CDK_CONTEXT_JSON": json.dumps({"project": "flywheel.yaml", "stage": "prod"})},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    # Then the app comes from the wheel and every stack of the team's prod is synthesized.
    assert result.returncode == 0, result.stderr[-3000:]
    serving = json.loads((tmp_path / "cdk.out" / "FlywheelServing.template.json").read_text())
    names = {
        r["Properties"].get("FunctionName")
        for r in serving["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    }
    assert {"acme-prod-inference-cancer", "acme-prod-inference-flowers"} <= names
