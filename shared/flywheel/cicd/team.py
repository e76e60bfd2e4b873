"""A team's repository in CI: the commands both flavours run (GitHub Actions, CodePipeline).

The repository holds ``flywheel.yaml``, ``models/``, ``cdk.json``, ``tests/`` and a
``requirements.txt`` that pins Flywheel; Flywheel's CDK app, its layer build and its
training image come from that installed package (``python -m infra.build_assets``).

Examples
--------
>>> cdk("synth", stage="dev", assets="stub", out="cdk.out/dev")
'cdk synth -q -c project=flywheel.yaml -c stage=dev -c flywheel:assets=stub -o cdk.out/dev'
>>> lint_templates("cdk.out", regions=["eu-west-1", "eu-west-1"])
'python -m infra.template_lint cdk.out --regions eu-west-1'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

#: The CDK CLI both flavours install (the version Flywheel's own package.json pins).
CDK_CLI_VERSION = "2.1148.1"
#: CI's Python: Lambda's (the layers are built for it either way).
PYTHON_VERSION = "3.12"
NODE_VERSION = "20"
#: The project file, relative to the repository root (cdk.json names it too).
PROJECT_FILE = "flywheel.yaml"
#: The marker of the smoke tests that run against a deployed stage (``tests/deployed``).
DEPLOYED_MARKER = "deployed"
#: The model the smoke tests ask to retrain: the route answers 404, so auth and routing
#: are proven and nothing trains. CI's roles may call the retrain route for it only.
SMOKE_MODEL = "no-such-model"

INSTALL = "pip install -r requirements.txt"
INSTALL_CDK = f"npm install --global --no-fund --no-audit aws-cdk@{CDK_CLI_VERSION}"
#: ``python -m``: CodeBuild's pyenv may not have a shim for a console script pip just added.
CHECK_PROJECT = "python -m flywheel.cli project check && python -m flywheel.cli project ci --check"
UNIT_TESTS = f'python -m pytest -q -m "not {DEPLOYED_MARKER}"'
BUILD_ASSETS = "python -m infra.build_assets"
SMOKE_TESTS = f"python -m pytest -q -m {DEPLOYED_MARKER}"


def apply_configs(stage: str, *, commit: str = "$CODEBUILD_RESOLVED_SOURCE_VERSION") -> str:
    """Store the project's changed model configs in ``stage`` (ADR 69), the commit as why.

    Examples
    --------
    >>> apply_configs("dev", commit="$GITHUB_SHA")
    'python -m flywheel.cli project apply flywheel.yaml --stage dev -r "deployed $GITHUB_SHA"'
    """
    command = f"python -m flywheel.cli project apply {PROJECT_FILE} --stage {stage}"
    return f'{command} -r "deployed {commit}"'


def apply_configs_and_retrain(stage: str, *, commit: str) -> str:
    """:func:`apply_configs`, then a training run of each model whose config changed, at
    ``commit`` (its lineage records it): continuous training from the repository."""
    return f"{apply_configs(stage, commit=commit)} --retrain-changed --code-version {commit}"


def cdk(
    command: str,
    *,
    stage: str | None = None,
    assets: str = "build",
    out: str | None = None,
    extra: str = "",
) -> str:
    """A ``cdk`` command on the project file (``-q`` for synth, cdk-nag runs either way)."""
    parts = ["cdk", command, *(["-q"] if command == "synth" else [])]
    parts += [f"-c project={PROJECT_FILE}"]
    parts += [f"-c stage={stage}"] if stage else []
    parts += [f"-c flywheel:assets={assets}"]
    parts += [f"-o {out}"] if out else []
    parts += [extra] if extra else []
    return " ".join(parts)


def lint_templates(directory: str, *, regions: Iterable[str]) -> str:
    """cfn-lint on every template of a cloud assembly (nested stage assemblies included),
    with only the findings CDK makes by design allowed (:mod:`infra.template_lint`)."""
    return f"python -m infra.template_lint {directory} --regions {' '.join(sorted(set(regions)))}"
