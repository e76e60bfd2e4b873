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
>>> project.llm_settings("dev").prompts
{}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from flywheel.models import Frozen
from flywheel.project.settings import (
    BranchName,
    CanarySettings,
    CiConfig,
    GitHubRepository,
    LlmSettings,
    ModelName,
    ModelSettings,
    StageSettings,
)
from flywheel.training.engines import TrainingEngineSettings

StageName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,9}$")]
ProjectName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,11}$")]
#: A CodeConnections (formerly CodeStar Connections) connection to GitHub, GitLab or Bitbucket.
ConnectionArn = Annotated[
    str,
    Field(
        pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):"
        r"[a-z]{2}(-[a-z]+)+-\d:\d{12}:connection/[A-Za-z0-9-]{1,64}$"
    ),
]
CODECOMMIT_NAME = r"^[A-Za-z0-9._-]{1,100}$"


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


class GitHubActionsCi(Frozen):
    """CI/CD on GitHub Actions: ``flywheel project ci`` writes the workflows from this file,
    and each stage's deploy role (``FlywheelCiAccess``) trusts this repository: the first
    stage its ``branch``, every later stage the GitHub environment of the stage's name."""

    provider: Literal["github"]
    repository: GitHubRepository
    branch: BranchName = "main"


class CodePipelineCi(Frozen):
    """CI/CD on AWS CodePipeline: the self-mutating ``FlywheelPipeline`` stack (``-c
    pipeline=true``), in the first stage's account and region.

    The source is ``repository`` (``owner/repo``) through the CodeConnections connection
    ``connection_arn``, or, without one, the CodeCommit repository of that name.
    """

    provider: Literal["codepipeline"]
    repository: Annotated[str, Field(min_length=1, max_length=140)]
    branch: BranchName = "main"
    connection_arn: ConnectionArn | None = None

    @model_validator(mode="after")
    def _source(self) -> CodePipelineCi:
        if self.connection_arn is not None and "/" not in self.repository:
            raise ValueError("repository: owner/repo of the connection's provider")
        if self.connection_arn is None and not re.fullmatch(CODECOMMIT_NAME, self.repository):
            raise ValueError(
                "repository: a CodeCommit repository name (or set connection_arn for owner/repo)"
            )
        return self

    @property
    def connection_account_region(self) -> tuple[str, str] | None:
        """The connection's account and region (a pipeline can only use its own)."""
        if self.connection_arn is None:
            return None
        parts = self.connection_arn.split(":")
        return parts[4], parts[3]


ProjectCi = Annotated[GitHubActionsCi | CodePipelineCi, Field(discriminator="provider")]


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
    training: TrainingEngineSettings | None = None


class ProjectModel(ModelSettings):
    """One model: its workflow config file, and how it is served and retrained."""

    name: ModelName
    #: The model's workflow config (what ``flywheel models configure`` takes), relative to
    #: the project file; default ``models/<name>/model.yaml``.
    config: str | None = None
    #: The stages that serve it (default: every stage).
    stages: tuple[StageName, ...] | None = None
    overrides: dict[StageName, ModelOverride] = Field(default_factory=dict)


class ProjectLlm(LlmSettings):
    """The project file's ``llm:`` section: every stage's LLM policy and prompt canaries,
    and what differs in some stages (``overrides``).

    An override names the fields it changes: ``teams`` and ``prompts`` are merged name by
    name (a prompt's fields replace the base prompt's, each as a whole: ``capture``,
    ``budget``, ``alarms``, ``canary``), any other field replaces the base's.

    Examples
    --------
    >>> llm = ProjectLlm.model_validate({
    ...     "prompts": {"greet": {"teams": ["web"], "budget": {"day": "1"}}},
    ...     "overrides": {"prod": {"prompts": {"greet": {"budget": {"day": "10"}}}}},
    ... })
    >>> prod = llm.for_stage("prod").prompts["greet"]
    >>> prod.teams, prod.budget.day
    (('web',), Decimal('10'))
    """

    overrides: dict[StageName, LlmSettings] = Field(default_factory=dict)

    def for_stage(self, stage: str) -> LlmSettings:
        """The stage's settings: this section, then the stage's override.

        Raises
        ------
        pydantic.ValidationError
            The merged settings are invalid (the override's own fields are valid).
        """
        return LlmSettings.model_validate(_merged_llm(self, stage))


class Project(Frozen):
    """The whole project file."""

    project: ProjectName
    stages: tuple[Stage, ...] = Field(min_length=1)
    models: tuple[ProjectModel, ...] = Field(min_length=1)
    #: How the project's repository deploys it (``None``: by hand).
    ci: ProjectCi | None = None
    #: Budgets, capture policies, canary alarms and canary steps of the LLM prompts the
    #: stages' gateways answer (``None``: every prompt gets the defaults).
    llm: ProjectLlm | None = None

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
        if self.ci is not None:
            self._check_ci()
        if self.llm is not None:
            self._check_llm(self.llm, set(stages), set(models))
        return self

    @staticmethod
    def _check_llm(llm: ProjectLlm, stages: set[str], models: set[str]) -> None:
        unknown = sorted(set(llm.overrides) - stages)
        if unknown:
            raise ValueError(f"llm: overrides name unknown stage(s) {unknown}")
        prompts = set(llm.prompts).union(*(o.prompts for o in llm.overrides.values()))
        clashes = sorted(prompts & models)
        if clashes:
            raise ValueError(
                f"llm: prompt(s) {clashes} have the name of a model of this project (a "
                "registry name holds a model or a prompt, never both)"
            )

    def _check_ci(self) -> None:
        for stage in self.stages:
            if not stage.deployable or stage.account is None or stage.region is None:
                raise ValueError(
                    f"ci: stage {stage.name} needs deployable: true, its account and its "
                    "region to be deployed by CI"
                )
        if isinstance(self.ci, CodePipelineCi):
            self._check_pipeline(self.ci)

    def _check_pipeline(self, ci: CodePipelineCi) -> None:
        home = self.stages[0]
        if ci.connection_account_region not in (None, (home.account, home.region)):
            raise ValueError(
                f"ci: connection_arn must be a connection of the pipeline's account and "
                f"region ({home.account}, {home.region}: the first stage's)"
            )
        for stage in self.stages[1:]:
            if stage.region != home.region:
                raise ValueError(
                    f"ci: the pipeline deploys within its own region ({home.region}, the first "
                    f"stage's); stage {stage.name} is in {stage.region}"
                )

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

    def github_access(self, stage: str) -> CiConfig:
        """The GitHub deploy role's trust for ``stage``: the stage's own ``ci``, else the
        project's repository with its branch (first stage) or the stage's environment.

        Raises
        ------
        ValueError
            The project does not deploy with GitHub Actions and the stage sets no ``ci``.
        """
        own = self.stage(stage).ci
        if own is not None:
            return own
        if not isinstance(self.ci, GitHubActionsCi):
            raise ValueError(f"ci: stage {stage} has no GitHub access (ci.provider is not github)")
        first = self.stages[0].name == stage
        return CiConfig(
            github_repository=self.ci.repository,
            branch=self.ci.branch,
            environment=None if first else stage,
        )

    def model_settings(self, model: str, stage: str) -> ModelSettings:
        """``model``'s settings in ``stage``: its own, then the stage's overrides."""
        found = next(m for m in self.models if m.name == model)
        return ModelSettings.model_validate(_merged(found, stage))

    def llm_settings(self, stage: str) -> LlmSettings:
        """The stage's LLM settings: the ``llm:`` section with the stage's override
        (the defaults when the file has none)."""
        return self.llm.for_stage(stage) if self.llm is not None else LlmSettings()

    def stage_config_data(self, stage: str) -> dict[str, Any]:
        """What the CDK app's ``StageConfig`` is built from (a plain mapping)."""
        settings = self.stage(stage).model_dump(exclude={"name", "deployable"})
        if settings["ci"] is None and isinstance(self.ci, GitHubActionsCi):
            settings["ci"] = self.github_access(stage).model_dump()
        models = [
            {"name": m.name, **self.model_settings(m.name, stage).model_dump()}
            for m in self.models_in(stage)
        ]
        return {
            **settings,
            "stage": stage,
            "project": self.project,
            "models": models,
            "llm": self.llm_settings(stage).model_dump(),
        }


def _merged_llm(llm: ProjectLlm, stage: str) -> dict[str, Any]:
    base = llm.model_dump(exclude={"overrides"})
    override = llm.overrides.get(stage)
    if override is None:
        return base
    changed = override.model_dump(exclude_unset=True)
    teams = {**base["teams"], **changed.pop("teams", {})}
    prompts = dict(base["prompts"])
    for name, fields in changed.pop("prompts", {}).items():
        prompts[name] = {**prompts.get(name, {}), **fields}
    return {**base, **changed, "teams": teams, "prompts": prompts}


def _merged(model: ProjectModel, stage: str) -> dict[str, Any]:
    base = model.model_dump(include=set(ModelSettings.model_fields))
    override = model.overrides.get(stage)
    return {**base, **(override.model_dump(exclude_unset=True) if override else {})}
