"""The Flywheel CDK app.

``npx cdk synth`` / ``npx cdk deploy --all -c stage=prod`` run ``python -m infra.app``
(see ``cdk.json``). Project file: context ``project`` or ``FLYWHEEL_PROJECT`` (default:
Flywheel's example project, :data:`infra.config.DEFAULT_PROJECT`). Stage: context
``stage`` (default ``dev``) or ``FLYWHEEL_STAGE``.
Layer assets: context ``flywheel:assets`` = ``build`` | ``stub`` | ``auto`` and
``flywheel:assets_dir`` (see :mod:`infra.assets`). Nothing here calls AWS.

Stacks (physical names ``<project>-<stage>-<key>``), deployed in this order:
``FlywheelData`` -> ``FlywheelGovernance`` -> ``FlywheelServing`` -> ``FlywheelWorkflows`` ->
``FlywheelMonitoring``. With ``-c ci=true`` and a stage's GitHub access set, also
``FlywheelCiAccess`` (GitHub Actions' deploy role; an admin deploys it once).
With ``-c pipeline=true`` the app is ``FlywheelPipeline`` instead: the project's
CodePipeline (its ``ci`` block), which deploys every stage's stacks in order.
"""

from __future__ import annotations

import os

# jsii's Node.js runtime warns on every start for Node 20; the warning is not ours to fix.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import json
import sys
from pathlib import Path

from aws_cdk import App

from flywheel.project import CodePipelineCi, LoadedProject, ProjectError, load_project
from infra.assets import CONTEXT_KEY, DIR_CONTEXT_KEY, Assets, resolve_mode
from infra.build_assets import AssetsError, default_build_dir
from infra.config import DEFAULT_PROJECT, StageConfig, load_stage_config, stage_configs
from infra.nag import register_rule_packs
from infra.stacks.pipeline_stack import PIPELINE_STACK_ID, PipelineStack
from infra.stage import STACK_IDS, FlywheelStage, add_stage_stacks, stage_environment

__all__ = ["STACK_IDS", "build_app", "feature_flags", "main", "project_file"]

#: The ``@aws-cdk/*`` feature flags this app is built and tested with; they ship with the
#: app, so a team's own cdk.json names only the app and its project file.
FEATURE_FLAGS = Path(__file__).resolve().parent / "feature_flags.json"


def feature_flags() -> dict[str, object]:
    """The ``@aws-cdk/*`` flags the app is built with (tests build exactly what the CLI builds)."""
    flags: dict[str, object] = json.loads(FEATURE_FLAGS.read_text())
    return flags


def project_file(app: App | None = None) -> Path:
    """The project file to build: context ``project``, ``FLYWHEEL_PROJECT``, else the
    example project. Relative paths are relative to the working directory (cdk.json's)."""
    named = (app.node.try_get_context("project") if app else None) or os.environ.get(
        "FLYWHEEL_PROJECT"
    )
    return Path(named) if named else DEFAULT_PROJECT


def _flag(app: App, key: str) -> bool:
    return str(app.node.try_get_context(key)).lower() == "true"


def build_app(
    *,
    stage: str | None = None,
    project: str | Path | None = None,
    assets: str | None = None,
    assets_dir: str | Path | None = None,
    outdir: str | None = None,
    nag: bool = True,
    config: StageConfig | None = None,
    ci: bool = False,
    pipeline: bool = False,
) -> App:
    """Build the whole app for one stage (every stack), with the cdk-nag packs registered.

    ``project`` is the project file (default: :func:`project_file`); ``assets`` and
    ``assets_dir`` override context ``flywheel:assets`` and ``flywheel:assets_dir``; ``config``
    overrides the named stage's configuration (tests use it for variants); ``ci`` (or
    context ``ci=true``) adds ``FlywheelCiAccess`` when the stage has GitHub access.
    ``pipeline`` (or context ``pipeline=true``) builds ``FlywheelPipeline`` instead.
    """
    app = App(outdir=outdir, context=feature_flags())
    named_dir = assets_dir or app.node.try_get_context(DIR_CONTEXT_KEY)
    build_dir = Path(named_dir) if named_dir else default_build_dir()
    mode = resolve_mode(assets or app.node.try_get_context(CONTEXT_KEY), build_dir)
    built = Assets(mode, build_dir=build_dir)
    path = Path(project) if project else project_file(app)
    if config is None and (pipeline or _flag(app, "pipeline")):
        loaded = None if path == DEFAULT_PROJECT else load_project(path)
        _add_pipeline(app, loaded, built)
    else:
        if config is None:
            stage = stage or app.node.try_get_context("stage") or os.environ.get("FLYWHEEL_STAGE")
            loaded = None if path == DEFAULT_PROJECT else load_project(path)
            config = load_stage_config(stage or "dev", loaded)
        add_stage_stacks(app, config, built, ci=ci or _flag(app, "ci"))
    if nag:
        register_rule_packs(app)
    return app


def _add_pipeline(app: App, loaded: LoadedProject | None, assets: Assets) -> PipelineStack:
    """``FlywheelPipeline`` in the first stage's account and region, with every stage."""
    ci = loaded.project.ci if loaded is not None else None
    if loaded is None or not isinstance(ci, CodePipelineCi):
        where = loaded.path if loaded is not None else "the project file"
        raise ProjectError(
            f"{where}: ci: the pipeline needs `ci: {{provider: codepipeline, repository: ..., "
            "connection_arn: ...}` (and -c project=flywheel.yaml)",
            field="ci",
        )
    configs = list(stage_configs(loaded).values())
    home = configs[0]
    stack = PipelineStack(
        app,
        PIPELINE_STACK_ID,
        project=loaded.project.project,
        ci=ci,
        stages=configs,
        stack_name=f"{loaded.project.project}-pipeline",
        description=f"Flywheel: the {loaded.project.project} pipeline (CDK Pipelines)",
        env=stage_environment(home),
        tags={"flywheel:project": loaded.project.project},
    )
    stack.add_stages(
        [FlywheelStage(app, config.stage, config=config, assets=assets) for config in configs]
    )
    return stack


def main() -> None:
    """``cdk synth``'s entry point: a bad project file or missing assets is one line on
    stderr, exit 1."""
    try:
        app = build_app()
    except (ProjectError, KeyError, AssetsError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(1) from None
    app.synth()


if __name__ == "__main__":
    main()
