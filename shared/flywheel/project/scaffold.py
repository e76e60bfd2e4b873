"""``flywheel init``: a project a team owns, in its own folder.

Each generator returns files (relative path → text); :data:`GENERATORS` lists them in
order, so another module adds its own by appending to the list.

Examples
--------
>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "acme"
>>> written = scaffold(folder, Scaffold(project="acme", model="iris"))
>>> sorted(p.relative_to(folder).as_posix() for p in written)[:3]
['.github/workflows/flywheel-deploy.yml', '.github/workflows/flywheel-pr.yml', '.gitignore']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import yaml

from flywheel.cicd import team
from flywheel.errors import InvalidInputError
from flywheel.project.ci import ci_files
from flywheel.project.models import Project

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

CiProvider = Literal["github", "codepipeline", "none"]
#: The placeholders ``init`` writes; CI cannot deploy before they are replaced.
PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDER_REGION = "eu-west-1"
PLACEHOLDER_CONNECTION = (
    f"arn:aws:codeconnections:{PLACEHOLDER_REGION}:{PLACEHOLDER_ACCOUNT}:"
    "connection/00000000-0000-0000-0000-000000000000"
)


@dataclass(frozen=True)
class Scaffold:
    """What ``flywheel init`` was asked for."""

    project: str
    model: str
    #: What ``pip install`` installs Flywheel from (a requirement line).
    flywheel_requirement: str = "flywheel-mlops[local]"
    #: The CI/CD flavour: GitHub Actions workflows, a CodePipeline, or none.
    ci: CiProvider = "github"


def _ci_block(spec: Scaffold) -> str:
    repository = f"your-org/{spec.project}"
    if spec.ci == "github":
        return f"""
# CI/CD with GitHub Actions: `flywheel project ci` writes .github/workflows/ from this
# file (run it again after changing stages). Each stage's deploy role trusts `repository`:
# the first stage its branch, later stages their GitHub environment.
ci:
  provider: github
  repository: {repository}  # replace with the repository that deploys
  branch: main
"""
    if spec.ci == "codepipeline":
        return f"""
# CI/CD with a self-mutating CodePipeline in the first stage's account and region
# (`cdk deploy FlywheelPipeline` once). Replace the repository and the connection
# (CodePipeline console > Settings > Connections, authorized for the repository).
ci:
  provider: codepipeline
  repository: {repository}
  branch: main
  connection_arn: {PLACEHOLDER_CONNECTION}
"""
    return ""


def project_file(spec: Scaffold) -> dict[str, str]:
    """``flywheel.yaml``: one dev stage (its account to fill in), one model, the CI block."""
    text = f"""\
# The project file: this team's stages and models. Flywheel's CDK app reads it
# (`cdk deploy -c project=flywheel.yaml`); `flywheel project check` validates it.
project: {spec.project}

stages:
  - name: dev
    account: "{PLACEHOLDER_ACCOUNT}"  # replace with your AWS account id before deploying
    region: {PLACEHOLDER_REGION}
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
{_ci_block(spec)}"""
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


def cdk_file(spec: Scaffold) -> dict[str, str]:
    """``cdk.json``: Flywheel's CDK app, this project file, the dev stage (or the pipeline)."""
    context: dict[str, object] = {"project": team.PROJECT_FILE, "stage": "dev"}
    if spec.ci == "codepipeline":
        context["pipeline"] = True
    app = {"app": "python -m infra.app", "context": context}
    return {"cdk.json": json.dumps(app, indent=2) + "\n"}


_SYNTH_TEST = '''\
"""Flywheel's CDK app synthesizes this project (stub assets: no build, no AWS): cdk-nag
runs at synth, cfn-lint on every template."""

import json
from pathlib import Path

from flywheel.project import load_project
from infra.app import build_app
from infra.template_lint import lint

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
        assert lint(out, regions=[stage.region or "us-east-1"]) == []
'''

_PIPELINE_TEST = '''\
"""Flywheel's CDK app synthesizes this project's pipeline (stub assets): every stage in
file order, an approval before each later one, cdk-nag at synth, cfn-lint clean."""

import json
from pathlib import Path

from flywheel.project import load_project
from infra.app import build_app
from infra.template_lint import lint

PROJECT = Path(__file__).resolve().parent.parent / "flywheel.yaml"


def test_the_pipeline_deploys_every_stage_in_order(tmp_path: Path) -> None:
    project = load_project(PROJECT).project
    build_app(project=PROJECT, pipeline=True, assets="stub", outdir=str(tmp_path)).synth()
    template = json.loads((tmp_path / "FlywheelPipeline.template.json").read_text())
    [pipeline] = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"
    ]
    stages = pipeline["Properties"]["Stages"]
    names = [s.name for s in project.stages]
    assert [s["Name"] for s in stages][-len(names):] == names
    for later in stages[len(stages) - len(names) + 1 :]:
        assert later["Actions"][0]["ActionTypeId"]["Category"] == "Approval"
    assert lint(tmp_path, regions=[project.stages[0].region or "us-east-1"]) == []
'''

_DEPLOYED_TEST = f'''\
"""Smoke tests of a deployed stage: CI runs them after each deploy (`-m {team.DEPLOYED_MARKER}`).

They need FLYWHEEL_BACKEND=aws, FLYWHEEL_STAGE, FLYWHEEL_PROJECT (the project's name) and
credentials that may read the stage's platform record and call the retrain route.
"""

import os
import urllib.error
import urllib.request

import boto3
import pytest

from flywheel.adapters.api_client import HttpApi
from flywheel.adapters.ssm import read_platform_record
from flywheel.errors import FlywheelError

pytestmark = [
    pytest.mark.{team.DEPLOYED_MARKER},
    pytest.mark.skipif(
        os.environ.get("FLYWHEEL_BACKEND") != "aws" or not os.environ.get("FLYWHEEL_STAGE"),
        reason="needs FLYWHEEL_BACKEND=aws and FLYWHEEL_STAGE (a deployed stage)",
    ),
]


@pytest.fixture(scope="module")
def record() -> dict:
    prefix = f"{{os.environ['FLYWHEEL_PROJECT']}}-{{os.environ['FLYWHEEL_STAGE']}}"
    client = boto3.client("ssm", region_name=os.environ.get("FLYWHEEL_REGION") or None)
    return read_platform_record(client, prefix)


def test_the_stage_describes_itself_with_its_api_and_workflows(record: dict) -> None:
    assert record["stage"] == os.environ["FLYWHEEL_STAGE"]
    assert record["api_url"].startswith("https://")
    assert record["state_machines"]


def test_the_api_refuses_unsigned_requests(record: dict) -> None:
    request = urllib.request.Request(
        record["api_url"].rstrip("/") + "/v1/models/{team.SMOKE_MODEL}/retrain",
        data=b'{{"reason": "smoke test"}}',
        headers={{"Content-Type": "application/json"}},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=20)
    assert refused.value.code == 403


def test_a_signed_request_reaches_the_retrain_route(record: dict) -> None:
    api = HttpApi(record["api_url"], session=boto3.Session(), region=record["region"])
    # A model nobody configured: the route answers (404), so auth and routing work and
    # nothing trains.
    with pytest.raises(FlywheelError) as refused:
        api.request_retrain("{team.SMOKE_MODEL}", reason="smoke test")
    assert "{team.SMOKE_MODEL}" in str(refused.value)
'''

_PYTEST_INI = f"""\
[pytest]
testpaths = tests
addopts = --strict-markers
markers =
    {team.DEPLOYED_MARKER}: smoke tests of a deployed stage (CI runs them after each deploy)
"""


def test_files(spec: Scaffold) -> dict[str, str]:
    """Tests: the project file checks, the CDK app synthesizes it (and its pipeline), and
    the smoke tests CI runs against a deployed stage."""
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
    files = {
        "tests/test_project.py": check,
        "tests/test_synth.py": _SYNTH_TEST,
        "tests/deployed/test_deployed.py": _DEPLOYED_TEST,
        "pytest.ini": _PYTEST_INI,
    }
    if spec.ci == "codepipeline":
        files["tests/test_pipeline.py"] = _PIPELINE_TEST
    return files


def ci_workflow_files(spec: Scaffold) -> dict[str, str]:
    """GitHub Actions: the workflows ``flywheel project ci`` writes from the project file."""
    if spec.ci != "github":
        return {}
    project = Project.model_validate(yaml.safe_load(project_file(spec)["flywheel.yaml"]))
    return ci_files(project)


def _ci_readme(spec: Scaffold) -> str:
    if spec.ci == "github":
        return """
## CI/CD (GitHub Actions)

1. In `flywheel.yaml`, set `ci.repository` and each stage's `account` and `region`;
   run `flywheel project ci` to rewrite `.github/workflows/` (pull requests fail while
   the workflows differ from the project file).
2. Once per stage, an administrator: `cdk bootstrap aws://<account>/<region>`, then
   `cdk deploy FlywheelCiAccess -c ci=true -c stage=<stage>` (the OIDC deploy role).
3. In GitHub, give every stage after the first an environment of its name with required
   reviewers: that is the approval before it deploys.

Pull requests run the checks, the tests and `cdk synth` (cdk-nag, cfn-lint) and post a
`cdk diff`, without AWS credentials. A push to `main` builds the Lambda layers and the
training image from the installed Flywheel, deploys the first stage, runs
`tests/deployed`, asks for runs of the models that changed, then deploys each later stage.
"""
    if spec.ci == "codepipeline":
        return """
## CI/CD (CodePipeline)

1. In the first stage's account and region, create a connection to the repository
   (CodePipeline console > Settings > Connections) and put its ARN, the repository and
   each stage's `account` and `region` in `flywheel.yaml`.
2. Bootstrap the first stage's account (`cdk bootstrap aws://<account>/<region>`) and
   every other stage's account with trust in it: `cdk bootstrap --trust <first account>
   --cloudformation-execution-policies arn:aws:iam::aws:policy/AdministratorAccess
   aws://<account>/<region>`.
3. Once, an administrator: `cdk deploy FlywheelPipeline`. From then on every push to
   `main` runs it: checks, tests, `cdk synth` (cdk-nag, cfn-lint), the pipeline updates
   itself, the first stage, `tests/deployed`, a manual approval, each later stage.
"""
    return ""


def readme_file(spec: Scaffold) -> dict[str, str]:
    """``README.md``: its first command runs the local demo, its second the tests."""
    install = "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt"
    deploy = (
        "`cdk deploy FlywheelPipeline` (see CI/CD below)"
        if spec.ci == "codepipeline"
        else "`python -m infra.build_assets && cdk deploy --all -c stage=dev -c "
        "flywheel:assets=build` (fill in the dev stage's `account` first)"
    )
    text = f"""\
# {spec.project}

Models of the `{spec.project}` project, trained, approved and served by Flywheel.

```bash
# 1. The local demo: this project's own models on Flywheel's local runtime (no AWS account):
{install} && .venv/bin/flywheel demo --project flywheel.yaml

# 2. The tests (the project file checks; the CDK app synthesizes it):
{install} && .venv/bin/python -m pytest -q tests
```

- `flywheel.yaml`: the stages (account, region, people, settings), the models and CI.
- `models/<name>/model.yaml`: each model's workflow config (training, gate, approval).
- `flywheel project check`: validate both before a commit.
- `requirements.txt` pins Flywheel; CI installs it from there, so pin a URL CI can reach
  (`flywheel-mlops[local] @ git+https://<host>/<flywheel>@<tag>`, or a wheel's URL).
- Deploy by hand (Node 20+, `npm install -g aws-cdk@{team.CDK_CLI_VERSION}`, AWS credentials,
  `.venv` activated: cdk.json runs `python -m infra.app`): {deploy}.
{_ci_readme(spec)}
Adding, changing or retiring a model is a change to this repository only.
"""
    requirement = spec.flywheel_requirement
    if "file://" in requirement:
        requirement = (
            "# A local path: CI cannot install it. Pin a URL CI can reach before enabling CI.\n"
            + requirement
        )
    requirements = f"{requirement}\npytest>=8\n"
    return {"README.md": text, "requirements.txt": requirements, ".gitignore": _GITIGNORE}


_GITIGNORE = ".venv/\ncdk.out/\nbuild/\n.flywheel/\nreports/\n__pycache__/\n"

#: The generators ``flywheel init`` runs, in order; append to add files.
GENERATORS: list[Callable[[Scaffold], dict[str, str]]] = [
    project_file,
    model_file,
    cdk_file,
    test_files,
    ci_workflow_files,
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
    if spec.ci not in ("github", "codepipeline", "none"):
        raise InvalidInputError(f"ci: {spec.ci!r} must be github, codepipeline or none", field="ci")
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
