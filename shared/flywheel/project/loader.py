"""Read a project file, keeping the line of every key, and check it with its model files.

Examples
--------
>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "flywheel.yaml").write_text(
...     "project: acme\\nstages:\\n  - name: dev\\nmodels:\\n  - name: churn\\n"
... )
>>> load_project(folder / "flywheel.yaml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
flywheel.project.loader.ProjectError: .../flywheel.yaml:3: stages[0].account: a deployable ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from flywheel.errors import ConfigError
from flywheel.project.models import Project
from flywheel.workflows.config import ModelConfig, load_model_config

if TYPE_CHECKING:
    from collections.abc import Iterator

Loc = tuple[str | int, ...]


class ProjectError(ConfigError):
    """A project file that fails validation: ``<file>:<line>: <field>: <reason>``."""

    code = "invalid_project"


@dataclass(frozen=True)
class LoadedProject:
    """A validated project file, with the workflow config of each of its models."""

    path: Path
    project: Project
    model_configs: dict[str, ModelConfig]

    @property
    def root(self) -> Path:
        """The folder of the project file (model config paths are relative to it)."""
        return self.path.parent

    def model_config_path(self, model: str) -> Path:
        """The absolute path of ``model``'s workflow config file."""
        return self.root / self.project.config_path(model)

    def stage_config_data(self, stage: str) -> dict[str, Any]:
        """See :meth:`flywheel.project.models.Project.stage_config_data`."""
        return self.project.stage_config_data(stage)


def load_project(path: str | Path) -> LoadedProject:
    """Read, validate and check ``path`` and every model config it names.

    Raises
    ------
    ProjectError
        One line naming the file, the line and the field of the first problem.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError:
        raise ProjectError(f"{path}: cannot read the project file", field="project") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(err, "problem", None) or "not valid YAML"
        raise ProjectError(f"{path}:{line}: {reason}") from None
    lines = dict(_lines(node, ())) if node is not None else {}
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ProjectError(f"{path}:1: the project file must be a mapping")
    try:
        project = Project.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise _error(path, lines, tuple(first["loc"]), _message(first)) from None
    for index, model in enumerate(project.models):
        for stage in model.overrides:
            try:
                project.model_settings(model.name, stage)
            except ValidationError as err:
                first = err.errors()[0]
                loc = ("models", index, "overrides", stage, *first["loc"])
                raise _error(path, lines, loc, first["msg"]) from None
    for stage in project.llm.overrides if project.llm is not None else ():
        try:
            project.llm_settings(stage)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ("llm", "overrides", stage, *first["loc"])
            raise _error(path, lines, loc, _message(first)) from None
    configs = {
        model.name: _model_config(path, lines, project, index, model.name)
        for index, model in enumerate(project.models)
    }
    return LoadedProject(path=path, project=project, model_configs=configs)


def _model_config(
    path: Path, lines: dict[Loc, int], project: Project, index: int, name: str
) -> ModelConfig:
    relative = project.config_path(name)
    loc: Loc = ("models", index, "config")
    config_file = path.parent / relative
    if not config_file.is_file():
        raise _error(path, lines, loc, f"{relative} does not exist (the model's training config)")
    try:
        return load_model_config(config_file, name=name)
    except ConfigError as err:
        raise _error(path, lines, loc, f"{relative}: {err}") from None


def _error(path: Path, lines: dict[Loc, int], loc: tuple[Any, ...], message: str) -> ProjectError:
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
    if loc[:1] == ("ci",) and loc[1:2] in (("github",), ("codepipeline",)):
        loc = ("ci", *loc[2:])  # the union's tag is not a key of the file
    message = message.removeprefix("Value error, ")
    named = re.match(r"^([a-z_]+): (.*)$", message)
    if named and named.group(1) not in {str(p) for p in loc}:
        loc, message = (*loc, named.group(1)), named.group(2)
    elif named:
        message = named.group(2)
    line = 1
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            line = lines[loc[:end]]
            break
    field = _field(loc)
    where = f"{field}: {message}" if field else message
    return ProjectError(f"{path}:{line}: {where}", field=field or None)


def _message(error: Any) -> str:
    """Pydantic's message, said for a person where the pattern alone would not help."""
    loc = error["loc"]
    if error["type"] == "string_pattern_mismatch" and "approver_principals" in loc:
        return (
            f"{error['input']!r} is not an IAM role or user ARN "
            "(arn:aws:iam::<account>:role/<name>, or role/<name> in the stage's account)"
        )
    if error["type"] == "string_pattern_mismatch" and loc[-1] == "account":
        return f"{error['input']!r} is not a 12-digit AWS account id"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "union_tag_invalid":
        context = error.get("ctx", {})
        return (
            f"{context.get('discriminator', 'kind').strip(chr(39))}: {context.get('tag')!r} is "
            f"not one of {context.get('expected_tags', 'the known kinds')}"
        )
    return str(error["msg"])


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _lines(node: yaml.Node, loc: Loc) -> Iterator[tuple[Loc, int]]:
    """The 1-based line of every key (and list item) under ``node``, by its path."""
    yield loc, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, str(key.value))
            yield child, key.start_mark.line + 1
            yield from ((k, v) for k, v in _lines(value, child) if k != child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _lines(item, (*loc, i))
