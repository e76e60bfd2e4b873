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
        "infra/build_assets.py",
        "infra/layers/base/requirements.txt",
        "infra/layers/onnxruntime/requirements.txt",
        "infra/layers/training/requirements.txt",
        "infra/layers/training/Dockerfile",
        "functions/inference/handler.py",
        "flywheel/project/loader.py",
        "flywheel/llm/prices.json",  # read at run time: what a prompt's call costs
        "flywheel/llm/evaluators/data/toxicity.json.gz",  # the toxicity classifier
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


#: Run inside the installed wheel: pip replaced by a fake (no network), then the real build.
_BUILD = """
import json, sys
from pathlib import Path
from infra import build_assets

def install(requirements, target):
    (target / f"{requirements.parent.name}_wheels.py").write_text("# installed")

build_assets.pip_install = install
sources = build_assets.Sources.located()
print(json.dumps({"domain": str(sources.domain), "functions": str(sources.functions),
                  "infra": str(sources.infra), "checkout": sources.is_checkout,
                  "default": str(build_assets.default_build_dir(sources))}))
sys.exit(build_assets.main([]))
"""


def test_an_installed_wheel_builds_deployable_assets_for_a_team_project(
    wheel: Path, tmp_path: Path
) -> None:
    # Given the wheel as site-packages and a team's project folder elsewhere (no checkout);
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    team = tmp_path / "team"
    shutil.copytree(Path(__file__).with_name("team_project"), team)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "FLYWHEEL_"))}
    env.update(PYTHONPATH=str(site), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    # When the team builds the assets from the installed package, in its own folder;
    built = subprocess.run(
        [sys.executable, "-P", "-c", _BUILD], cwd=team, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    located = json.loads(built.stdout.splitlines()[0])
    # Then the sources are the wheel's, and the build is the team's build/flywheel-assets;
    assert located == {
        "domain": str(site / "flywheel"),
        "functions": str(site / "functions"),
        "infra": str(site / "infra"),
        "checkout": False,
        "default": str(team / "build" / "flywheel-assets"),
    }
    out = team / "build" / "flywheel-assets"
    assert (out / "training" / "Dockerfile").read_bytes() == (
        site / "infra" / "layers" / "training" / "Dockerfile"
    ).read_bytes()
    # When cdk.json's command synthesizes the team's prod stage with the built assets;
    context = {"project": "flywheel.yaml", "stage": "prod", "flywheel:assets": "build"}
    env.update(CDK_OUTDIR=str(tmp_path / "cdk.out"), CDK_CONTEXT_JSON=json.dumps(context))
    result = subprocess.run(
        [sys.executable, "-P", "-m", "infra.app"], cwd=team, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    # Then the templates are deployable and the image is built from the wheel's code.
    assert result.returncode == 0, result.stderr[-3000:]
    cdk_out = tmp_path / "cdk.out"
    workflows = json.loads((cdk_out / "FlywheelWorkflows.template.json").read_text())
    assert "StubAssetsAreNotDeployable" not in workflows.get("Rules", {})
    (image,) = json.loads((cdk_out / "FlywheelWorkflows.assets.json").read_text())[
        "dockerImages"
    ].values()
    staged = cdk_out / image["source"]["directory"]
    assert (staged / "flywheel" / "project" / "loader.py").read_bytes() == (
        site / "flywheel" / "project" / "loader.py"
    ).read_bytes()
    assert not (staged / "flywheel" / "cli").exists()
    assert (staged / "python" / "training_wheels.py").is_file()


def test_an_installed_wheel_refuses_to_deploy_without_a_build(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    team = tmp_path / "team"
    shutil.copytree(Path(__file__).with_name("team_project"), team)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "FLYWHEEL_"))}
    context = {"project": "flywheel.yaml", "stage": "dev", "flywheel:assets": "build"}
    env.update(
        PYTHONPATH=str(site),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        CDK_OUTDIR=str(tmp_path / "cdk.out"),
        CDK_CONTEXT_JSON=json.dumps(context),
    )
    result = subprocess.run(
        [sys.executable, "-P", "-m", "infra.app"], cwd=team, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: assets in {team / 'build' / 'flywheel-assets'} cannot be")
    assert "`python -m infra.build_assets`" in line
