"""`flywheel init DIR --ci github|codepipeline|none`: the CI files of a team's repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flywheel.cicd.github import DEPLOY_WORKFLOW, PR_WORKFLOW
from flywheel.cli.app import app
from flywheel.project import CodePipelineCi, GitHubActionsCi, load_project
from flywheel.project.scaffold import PLACEHOLDER_CONNECTION, Scaffold, scaffold


def _init(tmp_path: Path, *args: str) -> Path:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "acme"), *args])
    assert result.exit_code == 0, result.output
    return tmp_path / "acme"


def test_github_is_the_default_and_its_workflows_are_what_project_ci_writes(
    tmp_path: Path,
) -> None:
    folder = _init(tmp_path)
    project = load_project(folder / "flywheel.yaml").project
    assert project.ci == GitHubActionsCi(provider="github", repository="your-org/acme")
    for path in (PR_WORKFLOW, DEPLOY_WORKFLOW):
        checked = subprocess.run(
            [
                str(Path(sys.executable).with_name("check-jsonschema")),
                "--builtin-schema",
                "vendor.github-workflows",
                str(folder / path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    check = CliRunner().invoke(app, ["project", "ci", str(folder / "flywheel.yaml"), "--check"])
    assert check.exit_code == 0, check.output
    jobs = yaml.safe_load((folder / DEPLOY_WORKFLOW).read_text())["jobs"]
    assert list(jobs) == ["deploy-dev", "smoke-dev", "retrain-dev"]
    readme = (folder / "README.md").read_text()
    assert "## CI/CD (GitHub Actions)" in readme
    assert "cdk deploy FlywheelCiAccess -c ci=true -c stage=<stage>" in readme
    assert "pipeline" not in json.loads((folder / "cdk.json").read_text())["context"]


def test_codepipeline_writes_the_pipeline_block_its_test_and_no_workflows(tmp_path: Path) -> None:
    folder = _init(tmp_path, "--ci", "codepipeline")
    project = load_project(folder / "flywheel.yaml").project
    assert isinstance(project.ci, CodePipelineCi)
    assert project.ci.connection_arn == PLACEHOLDER_CONNECTION
    assert json.loads((folder / "cdk.json").read_text())["context"] == {
        "project": "flywheel.yaml",
        "stage": "dev",
        "pipeline": True,
    }
    assert (folder / "tests" / "test_pipeline.py").is_file()
    assert not (folder / ".github").exists()
    readme = (folder / "README.md").read_text()
    assert "## CI/CD (CodePipeline)" in readme
    assert "`cdk deploy FlywheelPipeline`" in readme


def test_none_writes_no_ci_and_project_ci_says_so(tmp_path: Path) -> None:
    folder = _init(tmp_path, "--ci", "none")
    assert load_project(folder / "flywheel.yaml").project.ci is None
    assert not (folder / ".github").exists()
    assert "CI/CD" not in (folder / "README.md").read_text()
    result = CliRunner().invoke(app, ["project", "ci", str(folder / "flywheel.yaml")])
    assert result.exit_code == 1
    assert "ci: not set" in result.output


def test_an_unknown_flavour_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "acme"), "--ci", "jenkins"])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert "ci: 'jenkins' must be github, codepipeline or none" in result.output
    assert not (tmp_path / "acme").exists()


@pytest.mark.parametrize("ci", ["github", "codepipeline", "none"])
def test_every_flavour_has_smoke_tests_ci_can_select_by_marker(tmp_path: Path, ci: str) -> None:
    folder = tmp_path / ci
    scaffold(folder, Scaffold(project="acme", model="iris", ci=ci))  # type: ignore[arg-type]
    smoke = (folder / "tests" / "deployed" / "test_deployed.py").read_text()
    assert "pytest.mark.deployed" in smoke
    assert "deployed:" in (folder / "pytest.ini").read_text()
    assert "build/" in (folder / ".gitignore").read_text().splitlines()


def test_a_local_flywheel_requirement_is_flagged_for_ci(tmp_path: Path) -> None:
    spec = Scaffold(
        project="acme", model="iris", flywheel_requirement="flywheel-mlops[local] @ file:///src"
    )
    scaffold(tmp_path / "acme", spec)
    lines = (tmp_path / "acme" / "requirements.txt").read_text().splitlines()
    assert lines[0].startswith("# A local path: CI cannot install it.")
    assert lines[1] == "flywheel-mlops[local] @ file:///src"
