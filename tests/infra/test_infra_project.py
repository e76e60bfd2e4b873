"""A team's project file, synthesized by Flywheel's CDK app: three models, two stages.

Synthesis is slow, so each stage is synthesized once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from flywheel.project import load_project
from infra.config import load_stage_config
from tests.infra.synth import STACKS, Synth, function_by_name, synthesize

if TYPE_CHECKING:
    from typing import Any

TEAM_PROJECT = Path(__file__).with_name("team_project")
FOURTH_MODEL = """
  - name: wines
    reserved_concurrency: 3
    training_schedule: cron(0 5 ? * SAT *)
"""
FOURTH_CONFIG = """name: wines
training:
  task: classification
  dataset: {source: "sklearn:wine"}
  estimator: logistic_regression
gate: {metric: accuracy}
"""


def _synth(project: Path, stage: str, outdir: Path) -> Synth:
    return synthesize(stage, outdir, load_stage_config(stage, load_project(project)))


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    """The team project's dev and prod, and dev again after a fourth model is added."""
    folder = tmp_path_factory.mktemp("team") / "acme"
    shutil.copytree(TEAM_PROJECT, folder)
    synths = {
        stage: _synth(folder / "flywheel.yaml", stage, tmp_path_factory.mktemp(f"cdk-{stage}"))
        for stage in ("dev", "prod")
    }
    # Adding a model: one entry in flywheel.yaml and the model's own config, nothing else.
    (folder / "models" / "wines").mkdir()
    (folder / "models" / "wines" / "model.yaml").write_text(FOURTH_CONFIG)
    with (folder / "flywheel.yaml").open("a") as project_file:
        project_file.write(FOURTH_MODEL)
    synths["dev+wines"] = _synth(folder / "flywheel.yaml", "dev", tmp_path_factory.mktemp("cdk-4"))
    return synths


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_team_project_synthesizes_every_stack_under_its_own_prefix(
    team: dict[str, Synth], stage: str
) -> None:
    synth = team[stage]
    assert synth.error is None, synth.error
    assert set(synth.templates) == set(STACKS)
    names = {
        r["Properties"]["FunctionName"] for r in synth.resources("AWS::Lambda::Function").values()
    }
    assert {f"acme-{stage}-inference-{m}" for m in ("cancer", "sugar", "flowers")} <= names


def test_per_stage_overrides_and_accounts_reach_the_templates(team: dict[str, Synth]) -> None:
    _, dev = function_by_name(team["dev"], "acme-dev-inference-cancer")
    _, prod = function_by_name(team["prod"], "acme-prod-inference-cancer")
    assert (dev["Properties"]["MemorySize"], prod["Properties"]["MemorySize"]) == (1024, 2048)
    assert prod["Properties"]["ReservedConcurrentExecutions"] == 20
    manifest = json.loads((team["prod"].outdir / "manifest.json").read_text())
    environments = {a["environment"] for a in manifest["artifacts"].values() if "environment" in a}
    assert environments == {"aws://222222222222/eu-west-1"}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_team_project_passes_cdk_nag(team: dict[str, Synth], stage: str) -> None:
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks

    synth = team[stage]
    findings = [
        (plugin["pluginName"], violation["ruleName"])
        for plugin in synth.validation_report()["pluginReports"]
        for violation in plugin["violations"]
    ]
    assert findings == []
    for pack in (AwsSolutionsChecks(), ServerlessChecks()):
        report = pack.validate_scope(synth.app)
        assert [v.rule_name for v in report.violations] == [], pack.name


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_team_project_passes_cfn_lint(team: dict[str, Synth], stage: str) -> None:
    from cfnlint.api import lint

    from tests.infra.test_infra_checks import ALLOWED_CFN_LINT_WARNINGS

    for stack in STACKS:
        matches = lint(json.dumps(team[stage].templates[stack]), regions=["eu-west-1"])
        found = [
            f"{stack} {m.rule.id} {m.message}"
            for m in matches
            if m.rule.id not in ALLOWED_CFN_LINT_WARNINGS
        ]
        assert found == []


def _by_name(synth: Synth, resource_type: str, key: str) -> dict[str, Any]:
    return {
        r["Properties"].get(key): r["Properties"] for r in synth.resources(resource_type).values()
    }


def test_a_fourth_model_gets_its_function_alias_schedule_and_dashboard(
    team: dict[str, Synth],
) -> None:
    # Given the project file with one more model (and its model.yaml); When synthesized;
    # Then the new model is served, scheduled and watched like the others.
    before, after = team["dev"], team["dev+wines"]
    assert "acme-dev-inference-wines" not in _by_name(
        before, "AWS::Lambda::Function", "FunctionName"
    )
    _, function = function_by_name(after, "acme-dev-inference-wines")
    assert function["Properties"]["ReservedConcurrentExecutions"] == 3
    aliases = [
        a
        for a in after.resources("AWS::Lambda::Alias").values()
        if a["Properties"]["Name"] == "live"
    ]
    assert len(aliases) == 4
    rules = _by_name(after, "AWS::Events::Rule", "Name")
    assert rules["acme-dev-training-schedule-wines"]["ScheduleExpression"] == (
        "cron(0 5 ? * SAT *)"
    )
    dashboards = _by_name(after, "AWS::CloudWatch::Dashboard", "DashboardName")
    assert "acme-dev-wines" in dashboards
    assert "acme-dev-wines" not in _by_name(before, "AWS::CloudWatch::Dashboard", "DashboardName")


def test_the_cdk_app_refuses_a_bad_project_file_in_one_line(tmp_path: Path) -> None:
    # Given a team project whose prod stage lost its account; When `cdk synth` runs the
    # app on it; Then it stops before any stack, with one line naming file, line and field.
    path = tmp_path / "flywheel.yaml"
    path.write_text(
        (TEAM_PROJECT / "flywheel.yaml").read_text().replace('    account: "222222222222"\n', "")
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "infra.app"],
        cwd=root,
        env={**os.environ, "FLYWHEEL_PROJECT": str(path), "PYTHONPATH": f"{root}/shared:{root}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {path}:19: stages[1].account: a deployable stage needs its 12-digit AWS account id"
    )
