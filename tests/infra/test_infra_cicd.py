"""``FlywheelCiAccess``: GitHub Actions' deploy role, scoped to one repo and branch."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.synth import can

STACK = "FlywheelCiAccess"
REPO = "acme/churn-models"


def _synth(tmp: Path, **ci: Any) -> tuple[Any, dict[str, Any]]:
    from infra.app import build_app
    from infra.config import StageConfig, load_stage_config

    config = StageConfig.model_validate(
        {**load_stage_config("dev").model_dump(), "ci": {"github_repository": REPO, **ci}}
    )
    app = build_app(config=config, assets="stub", outdir=str(tmp), ci=True)
    app.synth()
    return app, json.loads((tmp / f"{STACK}.template.json").read_text())


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    return _synth(tmp_path_factory.mktemp("cdk-ci"))


def _of_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def test_the_role_trusts_only_the_repos_main_branch_for_sts(created: Any) -> None:
    _, template = created
    [role] = _of_type(template, "AWS::IAM::Role")
    [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]

    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": f"repo:{REPO}:ref:refs/heads/main",
        }
    }
    [provider] = _of_type(template, "AWS::IAM::OIDCProvider")
    assert provider["Properties"]["Url"] == "https://token.actions.githubusercontent.com"
    assert role["Properties"]["RoleName"] == "flywheel-dev-github-deploy"


def test_the_role_may_assume_the_bootstrap_roles_and_ask_for_runs_and_nothing_else(
    created: Any,
) -> None:
    _, template = created
    [policy] = _of_type(template, "AWS::IAM::Policy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert {s["Sid"]: s["Action"] for s in statements} == {
        "AssumeCdkBootstrapRoles": "sts:AssumeRole",
        "StoreConfigsAndAskForTrainingRuns": "execute-api:Invoke",
        "ReadThePlatformRecord": "ssm:GetParameter",
    }
    bootstrap = next(s for s in statements if s["Sid"] == "AssumeCdkBootstrapRoles")
    assert bootstrap["Condition"]["StringEquals"]["iam:ResourceTag/aws-cdk:bootstrap-role"] == [
        "deploy",
        "file-publishing",
        "image-publishing",
        "lookup",
    ]
    api = "arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:abc123/v1"
    deploy_role = (
        "arn:<AWS::Partition>:iam::<AWS::AccountId>:role/"
        "cdk-hnb659fds-deploy-role-<AWS::AccountId>-<AWS::Region>"
    )
    assert can(statements, "sts:AssumeRole", deploy_role)
    assert can(statements, "execute-api:Invoke", f"{api}/POST/v1/models/churn/retrain")
    assert can(statements, "execute-api:Invoke", f"{api}/POST/v1/models/churn/config")
    # Not the approvals, not predictions, not another verb on the retrain route.
    assert not can(statements, "execute-api:Invoke", f"{api}/POST/v1/approvals/x")
    assert not can(statements, "execute-api:Invoke", f"{api}/POST/v1/models/churn/predict")
    assert not can(statements, "execute-api:Invoke", f"{api}/GET/v1/models/churn/retrain")
    assert not can(
        statements,
        "sts:AssumeRole",
        "arn:<AWS::Partition>:iam::<AWS::AccountId>:role/flywheel-dev-approver",
    )
    assert not can(statements, "iam:PassRole", deploy_role)
    assert not can(statements, "events:PutEvents", "*")


def test_a_prod_role_trusts_only_jobs_of_the_protected_environment(
    tmp_path: Path,
) -> None:
    # Given an account that already has the provider, and a role for the prod environment
    arn = "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com"
    _, template = _synth(tmp_path, environment="prod", oidc_provider_arn=arn)

    assert _of_type(template, "AWS::IAM::OIDCProvider") == []
    [role] = _of_type(template, "AWS::IAM::Role")
    [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Federated": arn}
    assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        f"repo:{REPO}:environment:prod"
    )


def test_the_default_app_has_no_ci_stack(tmp_path: Path) -> None:
    from infra.app import build_app

    app = build_app(stage="dev", assets="stub", outdir=str(tmp_path), nag=False, ci=True)
    assert STACK not in [child.node.id for child in app.node.children]


def test_cdk_nag_and_cfn_lint_pass(created: Any) -> None:
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks
    from cfnlint.api import lint

    app, template = created
    stack = app.node.find_child(STACK)
    for pack in (AwsSolutionsChecks(), ServerlessChecks()):
        report = pack.validate_scope(stack)
        assert [v.rule_name for v in report.violations] == [], pack.name
    matches = lint(json.dumps(template), regions=["us-east-1", "eu-west-1"])
    assert [f"{m.rule.id} {m.message}" for m in matches] == []


def test_each_stage_role_trusts_the_token_its_generated_jobs_present(tmp_path: Path) -> None:
    import shutil

    import yaml

    from flywheel.cicd.github import DEPLOY_WORKFLOW
    from flywheel.project import load_project
    from flywheel.project.ci import ci_files
    from infra.app import build_app
    from infra.constructs.github_oidc import github_subject

    # Given a team project deployed by GitHub Actions (no stage sets its own access)
    team = tmp_path / "team"
    shutil.copytree(Path(__file__).with_name("team_project"), team)
    text = (team / "flywheel.yaml").read_text()
    github = f"ci:\n  provider: github\n  repository: {REPO}\n"
    (team / "flywheel.yaml").write_text(re.sub(r"ci:\n(  .*\n)+", github, text))
    project = load_project(team / "flywheel.yaml").project
    jobs = yaml.safe_load(ci_files(project)[DEPLOY_WORKFLOW])["jobs"]
    # Then every job presents the subject its stage's role trusts (GitHub puts the
    # environment in the token's sub when a job has one, the branch otherwise)
    for stage in project.stages:
        trusted = github_subject(project.github_access(stage.name))
        assuming = [
            job
            for job in jobs.values()
            for step in job["steps"]
            if f"::{stage.account}:role/" in step.get("with", {}).get("role-to-assume", "")
        ]
        assert assuming, stage.name
        for job in assuming:
            presented = (
                f"repo:{REPO}:environment:{job['environment']}"
                if "environment" in job
                else f"repo:{REPO}:ref:refs/heads/main"
            )
            assert presented == trusted, (stage.name, job["name"])
    # And the prod role FlywheelCiAccess creates from the project file says the same.
    build_app(project=team / "flywheel.yaml", stage="prod", assets="stub",
              outdir=str(tmp_path / "out"), ci=True, nag=False).synth()  # fmt: skip
    template = json.loads((tmp_path / "out" / f"{STACK}.template.json").read_text())
    [role] = _of_type(template, "AWS::IAM::Role")
    [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    sub = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert sub == f"repo:{REPO}:environment:prod"
    assert role["Properties"]["RoleName"] == "acme-prod-github-deploy"
