"""A team's project file (``flywheel.yaml``): its stages and its models.

Examples
--------
>>> project = Project.model_validate({
...     "project": "acme",
...     "stages": [{"name": "dev", "account": "111111111111"}],
...     "models": [{"name": "churn", "overrides": {"dev": {"memory_mb": 2048}}}],
... })
>>> project.model_settings("churn", "dev").memory_mb, project.config_path("churn")
(2048, 'models/churn/model.yaml')
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from flywheel.models import Frozen
from flywheel.project.settings import CanarySettings, ModelName, ModelSettings, StageSettings

StageName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,9}$")]
ProjectName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,11}$")]


class Stage(StageSettings):
    """One stage: an AWS account and region, its people and its settings."""

    name: StageName
    #: ``false`` only for stages that are synthesized but never deployed (examples, the
    #: local runtime): they may leave ``account`` unset.
    deployable: bool = True

    @model_validator(mode="after")
    def _pinned(self) -> Stage:
        if self.deployable and self.account is None:
            raise ValueError("account: a deployable stage needs its 12-digit AWS account id")
        return self


class ModelOverride(Frozen):
    """Model settings that differ in one stage (validated again once merged)."""

    reserved_concurrency: int | None = None
    memory_mb: int | None = None
    timeout_seconds: int | None = None
    training_schedule: str | None = None
    provisioned_concurrency: int | None = None
    feature_view: str | None = None
    feature_view_version: int | None = None
    canary: CanarySettings | None = None


class ProjectModel(ModelSettings):
    """One model: its workflow config file, and how it is served and retrained."""

    name: ModelName
    #: The model's workflow config (what ``flywheel models configure`` takes), relative to
    #: the project file; default ``models/<name>/model.yaml``.
    config: str | None = None
    #: The stages that serve it (default: every stage).
    stages: tuple[StageName, ...] | None = None
    overrides: dict[StageName, ModelOverride] = Field(default_factory=dict)


class Project(Frozen):
    """The whole project file."""

    project: ProjectName
    stages: tuple[Stage, ...] = Field(min_length=1)
    models: tuple[ProjectModel, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Project:
        stages = [s.name for s in self.stages]
        if len(set(stages)) != len(stages):
            raise ValueError("stages: names must be unique")
        models = [m.name for m in self.models]
        if len(set(models)) != len(models):
            raise ValueError("models: names must be unique")
        for model in self.models:
            named = [*(model.stages or ()), *model.overrides]
            unknown = sorted(set(named) - set(stages))
            if unknown:
                raise ValueError(f"models: {model.name} names unknown stage(s) {unknown}")
        for stage in stages:
            if not self.models_in(stage):
                raise ValueError(f"stages: {stage} serves no model")
        return self

    def stage(self, name: str) -> Stage:
        """The stage called ``name``.

        Raises
        ------
        KeyError
            Naming the known stages.
        """
        for stage in self.stages:
            if stage.name == name:
                return stage
        known = ", ".join(sorted(s.name for s in self.stages))
        raise KeyError(f"unknown stage {name!r}; known: {known}")

    def models_in(self, stage: str) -> tuple[ProjectModel, ...]:
        """The models ``stage`` serves, in file order."""
        return tuple(m for m in self.models if m.stages is None or stage in m.stages)

    def config_path(self, model: str) -> str:
        """Where ``model``'s workflow config lives, relative to the project file."""
        found = next(m for m in self.models if m.name == model)
        return found.config or f"models/{model}/model.yaml"

    def model_settings(self, model: str, stage: str) -> ModelSettings:
        """``model``'s settings in ``stage``: its own, then the stage's overrides."""
        found = next(m for m in self.models if m.name == model)
        return ModelSettings.model_validate(_merged(found, stage))

    def stage_config_data(self, stage: str) -> dict[str, Any]:
        """What the CDK app's ``StageConfig`` is built from (a plain mapping)."""
        settings = self.stage(stage).model_dump(exclude={"name", "deployable"})
        models = [
            {"name": m.name, **self.model_settings(m.name, stage).model_dump()}
            for m in self.models_in(stage)
        ]
        return {**settings, "stage": stage, "project": self.project, "models": models}


def _merged(model: ProjectModel, stage: str) -> dict[str, Any]:
    base = model.model_dump(include=set(ModelSettings.model_fields))
    override = model.overrides.get(stage)
    return {**base, **(override.model_dump(exclude_unset=True) if override else {})}
