"""A team's project: its stages and models, in a file the team owns (``flywheel.yaml``).

Pure pydantic models and a loader that keeps line numbers; the CDK app (``infra``), the
CLI (``flywheel project check``, ``flywheel init``) and the local runtime read it.

Examples
--------
>>> from flywheel.project import Project
>>> sorted(Project.model_fields)
['ci', 'llm', 'models', 'project', 'stages']
"""

from flywheel.project.loader import LoadedProject, ProjectError, load_project
from flywheel.project.models import (
    CodePipelineCi,
    GitHubActionsCi,
    ModelOverride,
    Project,
    ProjectLlm,
    ProjectModel,
    Stage,
)

__all__ = [
    "CodePipelineCi",
    "GitHubActionsCi",
    "LoadedProject",
    "ModelOverride",
    "Project",
    "ProjectError",
    "ProjectLlm",
    "ProjectModel",
    "Stage",
    "load_project",
]
