"""A project's CI files, generated from its project file (``flywheel project ci``).

GitHub Actions: the two workflows of :mod:`flywheel.cicd.github` for a team's repository
(:data:`~flywheel.cicd.github.TEAM_LAYOUT`), one deploy job per stage in file order,
each assuming its stage's ``<project>-<stage>-github-deploy`` role. CodePipeline: no
files; ``FlywheelPipeline`` is synthesized from the project file and updates itself.

Examples
--------
>>> project = Project.model_validate({
...     "project": "acme",
...     "stages": [{"name": "dev", "account": "111111111111", "region": "eu-west-1"}],
...     "models": [{"name": "churn"}],
...     "ci": {"provider": "github", "repository": "acme/ml"},
... })
>>> [s.deploy_role_arn for s in deploy_stages(project)]
['arn:aws:iam::111111111111:role/acme-dev-github-deploy']
>>> sorted(ci_files(project))
['.github/workflows/flywheel-deploy.yml', '.github/workflows/flywheel-pr.yml']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel.cicd.github import TEAM_LAYOUT, DeployStage, deploy_role_name, github_workflows
from flywheel.errors import ConfigError
from flywheel.project.models import GitHubActionsCi, Project

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ci_files", "deploy_stages", "stale_files", "write_ci_files"]


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def deploy_stages(project: Project) -> list[DeployStage]:
    """The project's stages as the workflows deploy them, in file order."""
    stages = []
    for stage in project.stages:
        if stage.account is None or stage.region is None:
            raise ConfigError(f"ci: stage {stage.name} needs its account and region", field="ci")
        prefix = f"{project.project}-{stage.name}"
        role = (
            f"arn:{_partition(stage.region)}:iam::{stage.account}:role/{deploy_role_name(prefix)}"
        )
        stages.append(
            DeployStage(
                name=stage.name, account=stage.account, region=stage.region, deploy_role_arn=role
            )
        )
    return stages


def ci_files(project: Project) -> dict[str, str]:
    """Repository path -> text of every CI file the project's ``ci`` asks for.

    Raises
    ------
    ConfigError
        The project file sets no ``ci``.
    """
    if project.ci is None:
        raise ConfigError(
            "ci: not set; add `ci: {provider: github, repository: owner/repo}` or "
            "`ci: {provider: codepipeline, ...}` to the project file",
            field="ci",
        )
    if not isinstance(project.ci, GitHubActionsCi):
        return {}
    return github_workflows(
        project=project.project,
        stages=deploy_stages(project),
        branch=project.ci.branch,
        layout=TEAM_LAYOUT,
    )


def stale_files(project: Project, root: Path) -> list[str]:
    """The CI files under ``root`` that are missing or differ from what the project asks for."""
    return sorted(
        path
        for path, text in ci_files(project).items()
        if not (root / path).is_file() or (root / path).read_text() != text
    )


def write_ci_files(project: Project, root: Path) -> list[Path]:
    """Write the project's CI files under ``root``; return their paths."""
    written = []
    for path, text in ci_files(project).items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written
