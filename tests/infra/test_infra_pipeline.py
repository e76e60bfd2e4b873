"""``FlywheelPipeline`` (``-c pipeline=true``): a self-mutating CDK Pipeline that deploys a
team project's stages in order, smoke-tests the first and waits for approval before the
others; least-privilege roles, encrypted artifacts, cdk-nag and cfn-lint clean."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from flywheel.cicd import team
from tests.infra.synth import can

TEAM = Path(__file__).with_name("team_project") / "flywheel.yaml"
STACK = "FlywheelPipeline"
ACKNOWLEDGEMENTS = Path(__file__).with_name("nag_acknowledgements.json")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, dict[str, Any]]:
    """The test team project's pipeline (dev in 111111111111, prod in 222222222222)."""
    from infra.app import build_app

    out = tmp_path_factory.mktemp("cdk-pipeline")
    app = build_app(project=TEAM, pipeline=True, assets="stub", outdir=str(out))
    app.synth()  # the rule packs are registered: any unacknowledged finding fails here
    return app, out, json.loads((out / f"{STACK}.template.json").read_text())


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _stages(template: dict[str, Any]) -> list[dict[str, Any]]:
    [pipeline] = _of_type(template, "AWS::CodePipeline::Pipeline").values()
    stages: list[dict[str, Any]] = pipeline["Properties"]["Stages"]
    return stages


def _actions(stage: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(run order, category, name) of a stage's actions, in run order."""
    return sorted(
        (a["RunOrder"], a["ActionTypeId"]["Category"], a["Name"]) for a in stage["Actions"]
    )


def _project(template: dict[str, Any], part: str) -> dict[str, Any]:
    [project] = [p for k, p in _of_type(template, "AWS::CodeBuild::Project").items() if part in k]
    return project


def _statements(template: dict[str, Any], project: dict[str, Any]) -> list[dict[str, Any]]:
    role = project["Properties"]["ServiceRole"]["Fn::GetAtt"][0]
    return [
        s
        for policy in _of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_stages_run_source_synth_self_update_assets_then_dev_then_prod(
    built: tuple[Any, Path, dict[str, Any]],
) -> None:
    _, _, template = built
    stages = _stages(template)
    assert [s["Name"] for s in stages] == [
        "Source", "Build", "UpdatePipeline", "Assets", "dev", "prod",
    ]  # fmt: skip
    [source] = stages[0]["Actions"]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["FullRepositoryId"] == "acme/churn-models"
    assert source["Configuration"]["BranchName"] == "main"
    assert source["Configuration"]["ConnectionArn"].startswith(
        "arn:aws:codeconnections:eu-west-1:111111111111:connection/"
    )
    # Each stage deploys the same five stacks in order, then (dev) the smoke tests.
    dev = [name for _, _, name in _actions(stages[4])]
    assert dev == [
        *(f"acme-dev-{key}.{step}"
          for key in ("data", "governance", "serving", "workflows", "monitoring")
          for step in ("Prepare", "Deploy")),
        "SmokeTests-dev",
    ]  # fmt: skip


def test_a_manual_approval_precedes_every_action_of_prod(
    built: tuple[Any, Path, dict[str, Any]],
) -> None:
    _, _, template = built
    prod = _actions(_stages(template)[5])
    assert prod[0][1:] == ("Approval", "Promote-prod")
    assert all(order > prod[0][0] for order, _, _ in prod[1:])
    assert {category for _, category, _ in prod[1:]} == {"Deploy"}


def test_prod_deploys_into_its_own_account_through_its_bootstrap_roles(
    built: tuple[Any, Path, dict[str, Any]],
) -> None:
    _, _, template = built
    prod = _stages(template)[5]
    for action in prod["Actions"][1:]:
        role = json.dumps(action["RoleArn"])
        assert ":iam::222222222222:role/cdk-hnb659fds-deploy-role-222222222222-eu-west-1" in role
    # The artifacts key lets prod's deploy role decrypt what the pipeline wrote, and only that.
    [key] = _of_type(template, "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    grants = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if "222222222222" in json.dumps(s)
    ]
    assert [sorted(s["Action"]) for s in grants] == [["kms:Decrypt", "kms:DescribeKey"]]


def test_the_pipeline_mutates_itself_with_the_pinned_cli(
    built: tuple[Any, Path, dict[str, Any]],
) -> None:
    _, _, template = built
    [mutate] = _stages(template)[2]["Actions"]
    assert mutate["Name"] == "SelfMutate"
    spec = json.loads(_project(template, "SelfMutation")["Properties"]["Source"]["BuildSpec"])
    assert spec["phases"]["install"]["commands"] == [
        f"npm install -g aws-cdk@{team.CDK_CLI_VERSION}"
    ]
    assert spec["phases"]["build"]["commands"][0].startswith(f"cdk -a . deploy {STACK} ")


def test_synth_installs_from_requirements_tests_builds_assets_synthesizes_and_lints(
    built: tuple[Any, Path, dict[str, Any]],
) -> None:
    _, _, template = built
    project = _project(template, "Synth")
    spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.12", "nodejs": "20"}
    assert spec["phases"]["install"]["commands"] == [team.INSTALL, team.INSTALL_CDK]
    assert spec["phases"]["build"]["commands"] == [
        team.CHECK_PROJECT,
        'python -m pytest -q -m "not deployed"',
        "python -m infra.build_assets",
        "cdk synth -q -c project=flywheel.yaml -c flywheel:assets=build -c pipeline=true",
        "python -m infra.template_lint cdk.out --regions eu-west-1",
    ]
    assert spec["artifacts"]["base-directory"] == "cdk.out"
    # Synth runs the team's code: it may reach no account (no role to assume, no deploy).
    statements = _statements(template, project)
    assert not any("sts:AssumeRole" in json.dumps(s["Action"]) for s in statements)
    assert not any("cloudformation:" in json.dumps(s["Action"]) for s in statements)


def test_the_smoke_tests_run_against_dev_and_may_touch_nothing_else(
    built: tuple[Any, Path, dict[str, Any]],
) -> None:
    _, _, template = built
    project = _project(template, "SmokeTests")
    environment = {
        v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]
    }
    assert environment == {
        "FLYWHEEL_BACKEND": "aws",
        "FLYWHEEL_PROJECT": "acme",
        "FLYWHEEL_STAGE": "dev",
        "FLYWHEEL_REGION": "eu-west-1",
    }
    spec = json.loads(project["Properties"]["Source"]["BuildSpec"])
    assert spec["phases"]["build"]["commands"] == [
        "python -m flywheel.cli project apply flywheel.yaml --stage dev "
        '-r "deployed $CODEBUILD_RESOLVED_SOURCE_VERSION" --retrain-changed '
        "--code-version $CODEBUILD_RESOLVED_SOURCE_VERSION",
        "python -m pytest -q -m deployed",
    ]
    statements = _statements(template, project)
    where = "arn:<AWS::Partition>:{}:eu-west-1:111111111111"
    record = f"{where.format('ssm')}:parameter/flywheel/acme-dev/platform"
    route = f"{where.format('execute-api')}:a1b2c3/dev/POST/v1/models/{{}}/retrain"
    assert can(statements, "ssm:GetParameter", record)
    assert can(statements, "execute-api:Invoke", route.format(team.SMOKE_MODEL))
    config = f"{where.format('execute-api')}:a1b2c3/dev/POST/v1/models/cancer/config"
    assert can(statements, "execute-api:Invoke", config)
    assert not can(statements, "execute-api:Invoke", config.replace("/dev/", "/prod/"))
    # A model whose config changed is retrained in dev (continuous training), never in
    # prod; not prod's record, not approvals, no deploys.
    assert can(statements, "execute-api:Invoke", route.format("cancer"))
    prod_route = route.format("cancer").replace("/dev/", "/prod/")
    assert not can(statements, "execute-api:Invoke", prod_route)
    assert not can(statements, "ssm:GetParameter", record.replace("acme-dev", "acme-prod"))
    assert not can(
        statements, "execute-api:Invoke", f"{where.format('execute-api')}:a1b2c3/dev/POST/v1/x"
    )
    assert not any("sts:AssumeRole" in json.dumps(s["Action"]) for s in statements)


def test_the_artifacts_are_encrypted_private_tls_only_and_logged(
    built: tuple[Any, Path, dict[str, Any]],
) -> None:
    _, _, template = built
    [pipeline] = _of_type(template, "AWS::CodePipeline::Pipeline").values()
    store = pipeline["Properties"]["ArtifactStore"]
    assert store["EncryptionKey"]["Type"] == "KMS"
    bucket = template["Resources"][store["Location"]["Ref"]]["Properties"]
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert bucket["LoggingConfiguration"]["LogFilePrefix"] == "artifacts/"
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    policy = next(
        p["Properties"]["PolicyDocument"]
        for p in _of_type(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == store["Location"]
    )
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert {"aws:SecureTransport": "false"} in [d["Condition"].get("Bool") for d in denies]


def test_cdk_nag_finds_nothing_and_every_acknowledgement_is_reviewed(
    built: tuple[Any, Path, dict[str, Any]],
) -> None:
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks

    from infra.nag import collect_acknowledgements
    from infra.nag_report import pipeline_acknowledgements

    app, out, _ = built
    report = json.loads((out / "validation-report.json").read_text())
    assert [v for p in report["pluginReports"] for v in p["violations"]] == []
    for pack in (AwsSolutionsChecks(), ServerlessChecks()):
        assert [v.rule_name for v in pack.validate_scope(app).violations] == [], pack.name
    found = [
        a for a in collect_acknowledgements(app, prefix="acme") if a["path"].startswith(f"{STACK}/")
    ]
    assert found == json.loads(ACKNOWLEDGEMENTS.read_text())["pipeline"]
    assert found == pipeline_acknowledgements()
    for ack in found:
        assert ack["path"] != STACK, f"stack-wide acknowledgement: {ack}"
        if ack["id"].startswith("AwsSolutions-IAM5"):
            assert re.search(r"\[.+\]$", ack["id"]), f"not per finding: {ack}"
        assert len(ack["reason"]) >= 60, f"reason too thin: {ack}"


def test_an_unreviewed_wildcard_in_the_pipeline_stays_a_finding(tmp_path: Path) -> None:
    # Control: a statement no justification covers is not acknowledged, so synth fails.
    from aws_cdk import aws_iam as iam

    from infra.app import build_app
    from infra.nag import acknowledge_iam_wildcards
    from infra.stacks.pipeline_stack import PIPELINE_WILDCARDS

    app = build_app(project=TEAM, pipeline=True, assets="stub", outdir=str(tmp_path), nag=False)
    stack = app.node.find_child(STACK)
    role = iam.Role(stack, "Extra", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=["*"]))
    left = acknowledge_iam_wildcards(stack, PIPELINE_WILDCARDS)
    assert left == [(f"{STACK}/Extra/DefaultPolicy/Resource", "Resource::*")]


def test_the_pipeline_template_passes_cfn_lint_and_the_assembly_includes_every_stage(
    built: tuple[Any, Path, dict[str, Any]], tmp_path: Path
) -> None:
    from infra import template_lint

    _, out, _ = built
    found = {p.relative_to(out).as_posix() for p in template_lint.templates(out)}
    assert f"{STACK}.template.json" in found
    assert {p.split("/")[0] for p in found if "/" in p} == {"assembly-dev", "assembly-prod"}
    assert len(found) == 11  # the pipeline, and five stacks per stage
    # The command CI runs, on the pipeline's own template (the stages' are linted with the
    # team project's tests): clean, and it does fail on a broken template.
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / f"{STACK}.template.json").write_text(
        (out / f"{STACK}.template.json").read_text()
    )
    assert template_lint.main([str(tmp_path / "ok"), "--regions", "eu-west-1"]) == 0
    broken = {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"Delay": "x"}}}}
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "Broken.template.json").write_text(json.dumps(broken))
    assert template_lint.main([str(tmp_path / "bad")]) == 1


def test_a_codecommit_repository_is_a_source_too(tmp_path: Path) -> None:
    from infra.app import build_app

    shutil.copytree(TEAM.parent, tmp_path / "team")
    project = tmp_path / "team" / "flywheel.yaml"
    text = re.sub(r"  connection_arn: .*\n", "", TEAM.read_text())
    project.write_text(text.replace("acme/churn-models", "churn-models"))
    out = tmp_path / "out"
    build_app(project=project, pipeline=True, assets="stub", outdir=str(out)).synth()
    template = json.loads((out / f"{STACK}.template.json").read_text())
    [source] = _stages(template)[0]["Actions"]
    assert source["ActionTypeId"]["Provider"] == "CodeCommit"
    assert source["Configuration"]["RepositoryName"] == "churn-models"


def test_the_pipeline_needs_a_codepipeline_ci_block(tmp_path: Path) -> None:
    from flywheel.project import ProjectError
    from infra.app import build_app

    with pytest.raises(ProjectError, match=r"ci: the pipeline needs `ci: \{provider: codepipeline"):
        build_app(pipeline=True, assets="stub", outdir=str(tmp_path), nag=False)
    shutil.copytree(TEAM.parent, tmp_path / "team")
    github = tmp_path / "team" / "flywheel.yaml"
    github.write_text(
        re.sub(
            r"ci:\n(  .*\n)+",
            "ci:\n  provider: github\n  repository: acme/churn-models\n",
            TEAM.read_text(),
        )
    )
    with pytest.raises(ProjectError, match=r"flywheel\.yaml: ci: the pipeline needs"):
        build_app(project=github, pipeline=True, assets="stub", outdir=str(tmp_path), nag=False)


def test_a_codepipeline_project_from_init_passes_its_own_tests(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from flywheel.project.scaffold import Scaffold, scaffold

    # Given `flywheel init --ci codepipeline` (placeholder accounts and connection)
    folder = tmp_path / "acme"
    scaffold(folder, Scaffold(project="acme", model="iris", ci="codepipeline"))
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLYWHEEL_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(root / "shared"), str(root)]),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        OMP_NUM_THREADS="1",
    )
    # When its pipeline test runs (what the pipeline's own synth step runs, with the rest)
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_pipeline.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    # Then the pipeline synthesizes with cdk-nag, in order, and passes cfn-lint
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert "1 passed" in ran.stdout
