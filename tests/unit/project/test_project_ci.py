"""A project's `ci` block: validated with file and line; `flywheel project ci` writes the
team repository's GitHub Actions workflows from it and `--check` catches stale ones."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from flywheel.cicd import team
from flywheel.cicd.github import DEPLOY_WORKFLOW, PR_WORKFLOW
from flywheel.cli.app import app
from flywheel.project import ProjectError, load_project
from flywheel.project.ci import ci_files

ROOT = Path(__file__).resolve().parents[3]
MODEL = """name: churn
training:
  task: classification
  dataset: {source: "sklearn:breast_cancer"}
  estimator: logistic_regression
gate: {metric: roc_auc}
"""
GITHUB = """project: acme
stages:
  - name: dev
    account: "111111111111"
    region: eu-west-1
  - name: prod
    account: "222222222222"
    region: eu-west-1
models:
  - name: churn
ci:
  provider: github
  repository: acme/churn-models
"""
PIPELINE = GITHUB.replace(
    "  provider: github\n",
    "  provider: codepipeline\n  connection_arn: "
    "arn:aws:codeconnections:eu-west-1:111111111111:connection/6d1c2a0e-5c1b\n",
)


def _write(folder: Path, project: str = GITHUB) -> Path:
    (folder / "flywheel.yaml").write_text(project)
    (folder / "models" / "churn").mkdir(parents=True, exist_ok=True)
    (folder / "models" / "churn" / "model.yaml").write_text(MODEL)
    return folder / "flywheel.yaml"


def _load(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            "--builtin-schema",
            "vendor.github-workflows",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    return ci_files(load_project(_write(tmp_path)).project)


def test_the_team_workflows_pass_the_github_workflow_schema(
    files: dict[str, str], tmp_path: Path
) -> None:
    for path, text in files.items():
        target = tmp_path / Path(path).name
        target.write_text(text)
        checked = _schema_check(target)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_team_workflows_run_flywheel_from_requirements_and_the_project_file(
    files: dict[str, str],
) -> None:
    text = "\n".join(files.values())
    runs = [
        line.strip()
        for workflow in files.values()
        for job in _load(workflow)["jobs"].values()
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
    ]
    # Flywheel comes from the team's requirements.txt, the CDK CLI at the pinned version,
    assert ".venv/bin/pip install -r requirements.txt" in runs
    assert f"npm install --global --no-fund --no-audit aws-cdk@{team.CDK_CLI_VERSION}" in runs
    assert "npm ci" not in runs
    # the assets from the installed package (not a checkout's layers/build.py),
    assert "python -m infra.build_assets" in runs
    assert "layers/build.py" not in text
    # every cdk command names the project file,
    commands = [line for line in runs if not line.startswith("echo")]
    cdk = {line: re.search(r"\bcdk (synth|diff|deploy)\b", line) for line in commands}
    cdk = {line: found[1] for line, found in cdk.items() if found}
    assert set(cdk.values()) == {"synth", "diff", "deploy"}
    assert all("-c project=flywheel.yaml" in line for line in cdk), cdk
    # and pull requests check the project file, the CI files and every template.
    assert team.CHECK_PROJECT in runs
    assert "project ci --check" in team.CHECK_PROJECT
    assert "python -m infra.template_lint cdk.out/prod --regions eu-west-1" in runs
    deploy = _load(files[DEPLOY_WORKFLOW])["jobs"]
    assert deploy["deploy-prod"]["environment"] == "prod"
    roles = {
        s["with"]["role-to-assume"]
        for job in deploy.values()
        for s in job["steps"]
        if "role-to-assume" in s.get("with", {})
    }
    assert roles == {
        "arn:aws:iam::111111111111:role/acme-dev-github-deploy",
        "arn:aws:iam::222222222222:role/acme-prod-github-deploy",
    }


def test_the_cdk_cli_ci_installs_is_the_one_flywheel_pins() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    assert package["devDependencies"]["aws-cdk"] == team.CDK_CLI_VERSION


def test_project_ci_writes_checks_and_catches_a_stale_workflow(tmp_path: Path) -> None:
    path = _write(tmp_path)
    runner = CliRunner()
    stale = runner.invoke(app, ["project", "ci", str(path), "--check"])
    assert stale.exit_code == 1
    assert "out of date" in stale.output
    written = runner.invoke(app, ["project", "ci", str(path)])
    assert written.exit_code == 0, written.output
    assert (tmp_path / PR_WORKFLOW).is_file()
    assert runner.invoke(app, ["project", "ci", str(path), "--check"]).exit_code == 0
    # When a stage is added, the deploy workflow no longer matches the project file.
    path.write_text(
        GITHUB.replace(
            "models:",
            '  - name: staging\n    account: "333333333333"\n    region: eu-west-1\nmodels:',
        )
    )
    changed = runner.invoke(app, ["project", "ci", str(path), "--check"])
    assert changed.exit_code == 1
    assert f"{DEPLOY_WORKFLOW}, {PR_WORKFLOW} out of date" in changed.output
    assert runner.invoke(app, ["project", "ci", str(path)]).exit_code == 0
    jobs = _load((tmp_path / DEPLOY_WORKFLOW).read_text())["jobs"]
    assert jobs["deploy-staging"]["environment"] == "staging"


def test_project_ci_without_a_ci_block_says_what_to_add(tmp_path: Path) -> None:
    path = _write(tmp_path, GITHUB.split("ci:\n", maxsplit=1)[0])
    result = CliRunner().invoke(app, ["project", "ci", str(path)])
    assert result.exit_code == 1
    assert "ci: not set; add `ci: {provider: github" in result.output
    assert not (tmp_path / ".github").exists()


def test_a_codepipeline_project_has_no_files_to_write(tmp_path: Path) -> None:
    path = _write(tmp_path, PIPELINE)
    result = CliRunner().invoke(app, ["project", "ci", str(path), "--check"])
    assert result.exit_code == 0, result.output
    assert "FlywheelPipeline is synthesized from this file" in result.output
    assert not (tmp_path / ".github").exists()


def test_github_access_follows_the_project_block_unless_a_stage_sets_its_own(
    tmp_path: Path,
) -> None:
    own = GITHUB.replace(
        '    account: "222222222222"\n',
        '    account: "222222222222"\n    ci: {github_repository: acme/other}\n',
    )
    project = load_project(_write(tmp_path, own)).project
    assert project.stage_config_data("dev")["ci"] == {
        "github_repository": "acme/churn-models",
        "branch": "main",
        "environment": None,
        "oidc_provider_arn": None,
    }
    assert project.stage_config_data("prod")["ci"]["github_repository"] == "acme/other"
    assert project.github_access("prod").environment is None


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        # an unknown provider
        (
            GITHUB.replace("provider: github", "provider: jenkins"),
            ":12: ci.provider: 'jenkins' is not one of 'github', 'codepipeline'",
        ),
        # a repository that is not owner/repo
        (GITHUB.replace("acme/churn-models", "churn models"), ":13: ci.repository: "),
        # a CodeCommit name where a connection needs owner/repo, and the other way round
        (PIPELINE.replace("acme/churn-models", "churn"), ":14: ci.repository: owner/repo"),
        (
            re.sub(r"  connection_arn: .*\n", "", PIPELINE),
            ":13: ci.repository: a CodeCommit repository name",
        ),
        # a connection of another account than the pipeline's (the first stage's)
        (
            PIPELINE.replace(":111111111111:connection", ":222222222222:connection"),
            ":11: ci: connection_arn must be a connection of the pipeline's account",
        ),
        # a stage in another region than the pipeline
        (
            PIPELINE.replace("region: eu-west-1\nmodels", "region: us-east-1\nmodels"),
            ":11: ci: the pipeline deploys within its own region (eu-west-1",
        ),
        # a stage CI cannot deploy (no region)
        (
            GITHUB.replace("    region: eu-west-1\n  - name: prod", "  - name: prod"),
            ":10: ci: stage dev needs deployable: true, its account and its region",
        ),
    ],
)
def test_bad_ci_blocks_are_refused_with_one_line_naming_field_and_line(
    tmp_path: Path, project: str, expected: str
) -> None:
    path = _write(tmp_path, project)
    with pytest.raises(ProjectError) as raised:
        load_project(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}{expected}"), message
