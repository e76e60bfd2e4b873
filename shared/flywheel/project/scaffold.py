"""``flywheel init``: a project a team owns, in its own folder.

Each generator returns files (relative path → text); :data:`GENERATORS` lists them in
order, so another module (CI pipelines, say) adds its own by appending to the list.

Examples
--------
>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "acme"
>>> written = scaffold(folder, Scaffold(project="acme", model="iris"))
>>> sorted(p.relative_to(folder).as_posix() for p in written)[:4]
['.gitignore', 'README.md', 'cdk.json', 'flywheel.yaml']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flywheel.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@dataclass(frozen=True)
class Scaffold:
    """What ``flywheel init`` was asked for."""

    project: str
    model: str
    #: What ``pip install`` installs Flywheel from (a requirement line).
    flywheel_requirement: str = "flywheel-mlops[local]"


def project_file(spec: Scaffold) -> dict[str, str]:
    """``flywheel.yaml``: one dev stage (its account to fill in) and one model."""
    text = f"""\
# The project file: this team's stages and models. Flywheel's CDK app reads it
# (`cdk deploy -c project=flywheel.yaml`); `flywheel project check` validates it.
project: {spec.project}

stages:
  - name: dev
    account: "123456789012"  # replace with your AWS account id before deploying
    region: eu-west-1
    retain_data: false
    deletion_protection: false
    termination_protection: false
    log_retention_days: 14
    object_lock_mode: GOVERNANCE
    artifact_retention_days: 1
    anchor_retention_days: 1
    notifications:
      emails: []
    # approver_principals: [role/ml-approver]

models:
  - name: {spec.model}
    config: models/{spec.model}/model.yaml
    reserved_concurrency: 2
    memory_mb: 1024
    training_schedule: cron(0 3 ? * MON *)
"""
    return {"flywheel.yaml": text}


def model_file(spec: Scaffold) -> dict[str, str]:
    """The model's workflow config: scikit-learn's bundled iris data, so it trains offline."""
    text = f"""\
# The model's workflow config (what `flywheel models configure {spec.model}` takes).
name: {spec.model}
training:
  task: classification
  dataset:
    source: sklearn:iris
  estimator: logistic_regression
  hyperparameters:
    C: 1.0
    max_iter: 500
  seed: 7
  description: logistic regression on the iris data
  owner: {spec.model}-owners        # who answers for the model (shown on its model card)
  intended_use: >-
    A starting point: classifies iris flowers from four measurements. Replace it with
    what your model is for and for whom.
  limitations:
    - Trained on 150 flowers of three species; anything else is out of scope.
gate:
  metric: accuracy
  minimums:
    accuracy: 0.8
retraining:
  cooldown_minutes: 60
approval:
  timeout_hours: 24
"""
    return {f"models/{spec.model}/model.yaml": text}


def cdk_file(_spec: Scaffold) -> dict[str, str]:
    """``cdk.json``: Flywheel's CDK app, this project file, the dev stage."""
    app = {
        "app": "python -m infra.app",
        "context": {"project": "flywheel.yaml", "stage": "dev"},
    }
    return {"cdk.json": json.dumps(app, indent=2) + "\n"}


def test_files(spec: Scaffold) -> dict[str, str]:
    """Tests: the project file checks, and the CDK app synthesizes it."""
    check = f'''\
"""The project file and its model configs validate (what `flywheel project check` does)."""

from pathlib import Path

from flywheel.project import load_project

PROJECT = Path(__file__).resolve().parent.parent / "flywheel.yaml"


def test_the_project_file_is_valid() -> None:
    project = load_project(PROJECT)
    assert [m.name for m in project.project.models] == ["{spec.model}"]
    assert project.model_configs["{spec.model}"].training.task == "classification"
'''
    synth = '''\
"""Flywheel's CDK app synthesizes this project (stub assets: no build, no AWS)."""

import json
from pathlib import Path

from flywheel.project import load_project
from infra.app import build_app

PROJECT = Path(__file__).resolve().parent.parent / "flywheel.yaml"


def test_every_stage_synthesizes_with_an_inference_function_per_model(tmp_path: Path) -> None:
    project = load_project(PROJECT).project
    for stage in project.stages:
        out = tmp_path / stage.name
        build_app(stage=stage.name, project=PROJECT, assets="stub", outdir=str(out)).synth()
        template = json.loads((out / "FlywheelServing.template.json").read_text())
        names = {
            r["Properties"].get("FunctionName")
            for r in template["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function"
        }
        for model in project.models_in(stage.name):
            assert f"{project.project}-{stage.name}-inference-{model.name}" in names
'''
    return {"tests/test_project.py": check, "tests/test_synth.py": synth}


def readme_file(spec: Scaffold) -> dict[str, str]:
    """``README.md``: its first command runs the local demo, its second the tests."""
    install = "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt"
    text = f"""\
# {spec.project}

Models of the `{spec.project}` project, trained, approved and served by Flywheel.

```bash
# 1. The local demo: this project's own models on Flywheel's local runtime (no AWS account):
{install} && .venv/bin/flywheel demo --project flywheel.yaml

# 2. The tests (the project file checks; the CDK app synthesizes it):
{install} && .venv/bin/python -m pytest -q tests
```

- `flywheel.yaml`: the stages (account, region, people, settings) and the models.
- `models/<name>/model.yaml`: each model's workflow config (training, gate, approval).
- `flywheel project check`: validate both before a commit.
- Deploy (Node 20+ and your AWS credentials):
  `npx aws-cdk@2 deploy --all -c stage=dev` (fill in the dev stage's `account` first).

Adding, changing or retiring a model is a change to this repository only.
"""
    requirements = f"{spec.flywheel_requirement}\npytest>=8\n"
    return {"README.md": text, "requirements.txt": requirements, ".gitignore": _GITIGNORE}


_GITIGNORE = ".venv/\ncdk.out/\n.flywheel/\nreports/\n__pycache__/\n"

#: The generators ``flywheel init`` runs, in order; append to add files (CI pipelines).
GENERATORS: list[Callable[[Scaffold], dict[str, str]]] = [
    project_file,
    model_file,
    cdk_file,
    test_files,
    readme_file,
]


def scaffold(folder: Path, spec: Scaffold) -> list[Path]:
    """Write every generator's files into ``folder`` (new or empty); return their paths.

    Raises
    ------
    InvalidInputError
        When ``folder`` is a file or not empty, or a name is not usable.
    """
    if not re.fullmatch(r"[a-z][a-z0-9]{1,11}", spec.project):
        raise InvalidInputError(
            f"project: {spec.project!r} must be 2-12 lowercase letters and digits", field="project"
        )
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,27}[a-z0-9]", spec.model):
        raise InvalidInputError(
            f"model: {spec.model!r} must be lowercase letters, digits and dashes", field="model"
        )
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InvalidInputError(f"{folder} is not empty; choose a new folder", field="dir")
    files: dict[str, str] = {}
    for generate in GENERATORS:
        files.update(generate(spec))
    written = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
