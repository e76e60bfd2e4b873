"""Typed per-stage configuration: the only place where dev and prod differ.

A stage's :class:`StageConfig` comes from a project file (``flywheel.yaml``, see
:mod:`flywheel.project`): the team's, or Flywheel's own example project
(``infra/default_project``) when none is given. ``infra/app.py`` picks the file and the
stage. A bad edit fails ``cdk synth`` with the file, line and field, not a CloudFormation
error twenty minutes into a deploy.

Examples
--------
>>> cfg = load_stage_config("prod")
>>> cfg.prefix, cfg.api.auth, cfg.deletion_protection
('flywheel-prod', 'IAM', True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, model_validator

from flywheel.project import load_project
from flywheel.project.settings import (
    LOG_RETENTION_DAYS,
    ApiConfig,
    CanaryAlarmConfig,
    CiConfig,
    EmailAddress,
    IamPrincipal,
    LlmSettings,
    ModelName,
    ModelSettings,
    NotificationsConfig,
    ScheduleExpression,
    SlackChannel,
    StageSettings,
)

if TYPE_CHECKING:
    from flywheel.project import LoadedProject
    from flywheel.settings import CanaryStep

__all__ = [
    "DEFAULT_PROJECT",
    "LOG_RETENTION_DAYS",
    "STAGES",
    "ApiConfig",
    "CanaryAlarmConfig",
    "CiConfig",
    "EmailAddress",
    "IamPrincipal",
    "LlmSettings",
    "ModelConfig",
    "NotificationsConfig",
    "ScheduleExpression",
    "SlackChannel",
    "StageConfig",
    "load_stage_config",
    "stage_configs",
]

#: Flywheel's own example project: what the CDK app, the tests and ``flywheel demo`` use
#: when no project file is given.
DEFAULT_PROJECT = Path(__file__).resolve().parent / "default_project" / "flywheel.yaml"


class ModelConfig(ModelSettings):
    """One served model: its own inference function, alias ``live``, alarms, dashboard."""

    name: ModelName


class StageConfig(StageSettings):
    """Everything that may differ between stages."""

    stage: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,9}$")]
    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,11}$")] = "flywheel"
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    #: The LLM gateway's policy and the prompts' canaries (the project file's ``llm:``).
    llm: LlmSettings = LlmSettings()

    @model_validator(mode="after")
    def _unique_models(self) -> StageConfig:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("model names must be unique")
        clashes = sorted(set(names) & set(self.llm.prompts))
        if clashes:
            raise ValueError(f"llm: prompts {clashes} have the names of models")
        for model in self.models:
            job = model.training.timeout_seconds
            if job is not None and job > self.training_timeout_hours * 3600:
                raise ValueError(
                    f"models: {model.name}'s training.{model.training.engine} job may run "
                    f"{job // 60} minutes, longer than the stage's training_timeout_hours "
                    f"({self.training_timeout_hours}): the workflow would time out first"
                )
        return self

    @property
    def prefix(self) -> str:
        """Physical-name prefix of every resource of this stage (``flywheel-dev``)."""
        return f"{self.project}-{self.stage}"

    @property
    def approval_timeout_seconds(self) -> int:
        return self.approval_timeout_hours * 3600

    @property
    def approval_heartbeat_seconds(self) -> int:
        """Just under the timeout: nothing heartbeats a human decision (see docs/infra.md)."""
        return self.approval_timeout_seconds - 60

    @property
    def bake_seconds(self) -> int:
        return self.bake_minutes * 60

    @property
    def training_workflow_timeout_seconds(self) -> int:
        """Run time plus the approval wait: the machine must outlive its longest state."""
        return self.training_timeout_hours * 3600 + self.approval_timeout_seconds

    @property
    def canary_plans(self) -> dict[str, tuple[CanaryStep, ...]]:
        """Each model's canary steps (its own, or one step of the stage's defaults)."""
        return {m.name: self.canary_steps(m) for m in self.models}

    @property
    def prompt_canary_plans(self) -> dict[str, tuple[CanaryStep, ...]]:
        """Each prompt of ``llm.prompts``: its canary steps (its own, or the defaults')."""
        return {name: self.canary_steps(p) for name, p in self.llm.prompts.items()}

    @property
    def promotion_workflow_timeout_seconds(self) -> int:
        """The longest canary's bakes (a model's or a prompt's) plus an hour for its
        steps' tasks."""
        plans = [*self.canary_plans.values(), *self.prompt_canary_plans.values()]
        return max(sum(s.bake_seconds for s in plan) for plan in plans) + 3600


def stage_configs(project: LoadedProject) -> dict[str, StageConfig]:
    """Every stage of a loaded project file as the CDK app builds it."""
    return {
        stage.name: StageConfig.model_validate(project.stage_config_data(stage.name))
        for stage in project.project.stages
    }


#: The stages of the example project (``infra/default_project/flywheel.yaml``).
STAGES: dict[str, StageConfig] = stage_configs(load_project(DEFAULT_PROJECT))


def load_stage_config(stage: str, project: LoadedProject | None = None) -> StageConfig:
    """The validated configuration of ``stage`` in ``project`` (default: the example one).

    Raises
    ------
    KeyError
        For an unknown stage, naming the known ones.
    """
    stages = STAGES if project is None else stage_configs(project)
    try:
        return stages[stage]
    except KeyError:
        raise KeyError(f"unknown stage {stage!r}; known: {', '.join(sorted(stages))}") from None
