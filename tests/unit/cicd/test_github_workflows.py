"""The generated GitHub Actions workflows: valid, in order, OIDC-only, least privilege."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flywheel.cicd.github import (
    ACTIONS,
    DEPLOY_WORKFLOW,
    PR_WORKFLOW,
    DeployStage,
    github_workflows,
)

DEV = DeployStage(
    name="dev",
    account="111111111111",
    region="eu-west-1",
    deploy_role_arn="arn:aws:iam::111111111111:role/acme-dev-github-deploy",
)
PROD = DeployStage(
    name="prod",
    account="222222222222",
    region="eu-west-1",
    deploy_role_arn="arn:aws:iam::222222222222:role/acme-prod-github-deploy",
)


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return github_workflows(project="acme", stages=[DEV, PROD])


def _load(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_both_files_pass_the_github_workflow_schema(files: dict[str, str], tmp_path: Path) -> None:
    for path, text in files.items():
        target = tmp_path / Path(path).name
        target.write_text(text)
        checked = subprocess.run(
            [
                str(Path(sys.executable).with_name("check-jsonschema")),
                "--builtin-schema",
                "vendor.github-workflows",
                str(target),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_does_reject_a_broken_workflow(tmp_path: Path) -> None:
    # Control: a job without runs-on is refused, so "passes" above means something.
    target = tmp_path / "broken.yml"
    target.write_text("on: push\njobs:\n  x:\n    steps: [{run: echo}]\n")
    checked = subprocess.run(
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            "--builtin-schema",
            "vendor.github-workflows",
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode != 0


def test_deploys_run_dev_then_smoke_tests_then_prod_behind_its_environment(
    files: dict[str, str],
) -> None:
    workflow = _load(files[DEPLOY_WORKFLOW])
    jobs = workflow["jobs"]

    assert workflow["on"] == {"push": {"branches": ["main"]}}
    assert list(jobs) == ["deploy-dev", "smoke-dev", "retrain-dev", "deploy-prod"]
    assert "needs" not in jobs["deploy-dev"]
    assert jobs["smoke-dev"]["needs"] == "deploy-dev"
    assert jobs["retrain-dev"]["needs"] == "smoke-dev"
    assert jobs["deploy-prod"]["needs"] == "smoke-dev"
    assert jobs["deploy-prod"]["environment"] == "prod"
    assert "environment" not in jobs["deploy-dev"]
    smoke = jobs["smoke-dev"]["steps"][-1]
    assert "-m deployed" in smoke["run"]
    assert smoke["env"]["FLYWHEEL_STAGE"] == "dev"
    assert smoke["env"]["FLYWHEEL_BACKEND"] == "aws"
    # prod's smoke tests run after its deploy, in the same job (the same environment).
    steps = jobs["deploy-prod"]["steps"]
    assert [s["name"] for s in steps[-3:]] == [
        "cdk deploy (prod)",
        "Store the project's model configs (prod)",
        "Deployed-stack smoke tests (prod)",
    ]
    assert steps[-1]["env"]["FLYWHEEL_STAGE"] == "prod"
    # each deploy stores the project's changed model configs in its stage, as its role
    for stage in ("dev", "prod"):
        [configs] = [
            s for s in jobs[f"deploy-{stage}"]["steps"] if "project apply" in s.get("run", "")
        ]
        assert f"--stage {stage}" in configs["run"]
        assert "$GITHUB_SHA" in configs["run"]
        assert configs["env"]["FLYWHEEL_STAGE"] == stage


def test_every_job_that_assumes_a_later_stages_role_runs_in_its_environment() -> None:
    # GitHub's token says repo:<r>:environment:<name> in a job with an environment, and
    # repo:<r>:ref:refs/heads/<branch> otherwise: a stage's role trusts exactly one of them.
    staging = DEV.model_copy(
        update={"name": "staging", "deploy_role_arn": DEV.deploy_role_arn.replace("dev", "st")}
    )
    jobs = _load(github_workflows(project="acme", stages=[DEV, staging, PROD])[DEPLOY_WORKFLOW])[
        "jobs"
    ]
    assert jobs["deploy-staging"]["needs"] == "smoke-dev"
    assert jobs["deploy-prod"]["needs"] == "deploy-staging"
    for name, job in jobs.items():
        [role] = [
            s["with"]["role-to-assume"]
            for s in job["steps"]
            if "configure-aws-credentials" in s.get("uses", "")
        ]
        stage = next(s for s in (DEV, staging, PROD) if s.deploy_role_arn == role)
        assert job.get("environment") == (None if stage is DEV else stage.name), name


def test_each_job_assumes_its_stages_role_by_oidc_and_holds_no_keys(files: dict[str, str]) -> None:
    deploy, pr = _load(files[DEPLOY_WORKFLOW]), _load(files[PR_WORKFLOW])

    assert deploy["permissions"] == {"contents": "read"}
    for name, job in deploy["jobs"].items():
        assert job["permissions"] == {"contents": "read", "id-token": "write"}, name
        [credentials] = [
            s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")
        ]
        stage = PROD if name.endswith("prod") else DEV
        assert credentials["with"] == {
            "role-to-assume": stage.deploy_role_arn,
            "aws-region": "eu-west-1",
        }, name
    # Pull requests get no AWS access at all: their diff is against the base branch's synth.
    assert pr["permissions"] == {"contents": "read"}
    assert "id-token" not in files[PR_WORKFLOW]
    assert "configure-aws-credentials" not in files[PR_WORKFLOW]
    for text in files.values():
        assert not re.search(r"AWS_(SECRET_)?ACCESS_KEY|secrets\.", text)


def test_every_action_is_pinned_to_a_full_commit_sha(files: dict[str, str]) -> None:
    used = {u for text in files.values() for u in re.findall(r"uses: (\S+)", text)}
    assert used == {ref for ref, _ in ACTIONS.values()}
    assert all(re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", ref) for ref in used)


def test_the_pr_runs_tests_synth_and_posts_the_diff_to_the_job_summary(
    files: dict[str, str],
) -> None:
    [job] = _load(files[PR_WORKFLOW])["jobs"].values()
    runs = "\n".join(step.get("run", "") for step in job["steps"])

    assert 'pytest -q -m "not deployed"' in runs
    assert "npx cdk synth -q -c stage=dev" in runs
    assert "-c stage=prod" in runs
    assert "npx cdk diff" in runs
    assert "--template" in runs
    assert '>> "$GITHUB_STEP_SUMMARY"' in runs


def test_changed_model_directories_retrain_in_dev_at_the_merged_commit(
    files: dict[str, str], tmp_path: Path
) -> None:
    # Given a repository whose last commit changed models/churn/ and the README
    step = _load(files[DEPLOY_WORKFLOW])["jobs"]["retrain-dev"]["steps"][-1]["run"]
    repo = tmp_path / "repo"
    for name in ("churn", "fraud"):
        (repo / "models" / name).mkdir(parents=True)
        (repo / "models" / name / "model.yaml").write_text("name: x\n")
    (repo / "models" / "notes").mkdir()
    (repo / "models" / "notes" / "x.md").write_text("a")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    (repo / "models" / "churn" / "model.yaml").write_text("name: y\n")
    (repo / "models" / "notes" / "x.md").write_text("b")
    (repo / "README.md").write_text("r")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "two"], check=True)
    sha = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # A stand-in `flywheel` that records its arguments.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "flywheel").write_text('#!/bin/sh\necho "$@" >> "$CALLS"\n')
    (bin_dir / "flywheel").chmod(0o755)
    calls, summary = tmp_path / "calls", tmp_path / "summary"

    # When the step runs on the push (GitHub's "before" of a first push is all zeros)
    subprocess.run(
        ["bash", "-e", "-c", step],
        cwd=repo,
        check=True,
        timeout=60,
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "GITHUB_SHA": sha,
            "BEFORE": "0" * 40,
            "CALLS": str(calls),
            "GITHUB_STEP_SUMMARY": str(summary),
        },
    )

    # Then only churn retrains, at that commit, and the summary says so
    assert calls.read_text().splitlines() == [
        f"retrain churn -r models/churn changed in {sha} --code-version {sha}"
    ]
    assert summary.read_text() == f"retraining churn in dev at {sha}\n"


def test_stages_must_be_named_once(files: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unique"):
        github_workflows(project="acme", stages=[DEV, DEV])
    with pytest.raises(ValueError, match="account 222222222222"):
        DeployStage(
            name="prod",
            account="222222222222",
            region="eu-west-1",
            deploy_role_arn=DEV.deploy_role_arn,
        )
