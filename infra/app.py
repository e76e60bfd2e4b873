"""The Flywheel CDK app.

``npx cdk synth`` / ``npx cdk deploy --all -c stage=prod`` run ``python -m infra.app``
(see ``cdk.json``). Project file: context ``project`` or ``FLYWHEEL_PROJECT`` (default:
Flywheel's example project, :data:`infra.config.DEFAULT_PROJECT`). Stage: context
``stage`` (default ``dev``) or ``FLYWHEEL_STAGE``.
Layer assets: context ``flywheel:assets`` = ``build`` | ``stub`` | ``auto`` (see
:mod:`infra.assets`). Nothing here calls AWS.

Stacks (physical names ``<project>-<stage>-<key>``), deployed in this order:
``FlywheelData`` -> ``FlywheelGovernance`` -> ``FlywheelServing`` -> ``FlywheelWorkflows`` ->
``FlywheelMonitoring``. With ``-c ci=true`` and a stage's ``ci`` set, also ``FlywheelCiAccess``
(GitHub Actions' deploy role; an admin deploys it once).
"""

from __future__ import annotations

import os

# jsii's Node.js runtime warns on every start for Node 20; the warning is not ours to fix.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import json
import sys
from pathlib import Path

from aws_cdk import App, Aspects, Environment, Stack

from flywheel.project import ProjectError, load_project
from infra.assets import CONTEXT_KEY, Assets, resolve_mode
from infra.config import DEFAULT_PROJECT, StageConfig, load_stage_config
from infra.constructs.notifications import AlarmNotifications
from infra.context import StageContext
from infra.nag import acknowledge_iam_wildcards, register_rule_packs
from infra.naming import Naming
from infra.stacks.ci_access_stack import CI_ACCESS_STACK_ID, CiAccessStack
from infra.stacks.data_stack import DataStack
from infra.stacks.governance_stack import GovernanceStack
from infra.stacks.monitoring_stack import MonitoringStack
from infra.stacks.serving_stack import ServingStack
from infra.stacks.workflows_stack import WorkflowsStack

#: The ``@aws-cdk/*`` feature flags this app is built and tested with; they ship with the
#: app, so a team's own cdk.json names only the app and its project file.
FEATURE_FLAGS = Path(__file__).resolve().parent / "feature_flags.json"
#: Construct ids of the stacks (template file names in cdk.out), in deployment order.
STACK_IDS = (
    "FlywheelData",
    "FlywheelGovernance",
    "FlywheelServing",
    "FlywheelWorkflows",
    "FlywheelMonitoring",
)


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


def build_app(
    *,
    stage: str | None = None,
    project: str | Path | None = None,
    assets: str | None = None,
    outdir: str | None = None,
    nag: bool = True,
    config: StageConfig | None = None,
    ci: bool = False,
) -> App:
    """Build the whole app for one stage (every stack), with the cdk-nag packs registered.

    ``project`` is the project file (default: :func:`project_file`); ``config``
    overrides the named stage's configuration (tests use it for variants); ``ci`` (or
    context ``ci=true``) adds ``FlywheelCiAccess`` when the stage configures ``ci``.
    """
    app = App(outdir=outdir, context=feature_flags())
    if config is None:
        stage = stage or app.node.try_get_context("stage") or os.environ.get("FLYWHEEL_STAGE")
        path = Path(project) if project else project_file(app)
        loaded = None if path == DEFAULT_PROJECT else load_project(path)
        config = load_stage_config(stage or "dev", loaded)
    ctx = StageContext(
        config=config,
        naming=Naming(config.prefix),
        assets=Assets(resolve_mode(assets or app.node.try_get_context(CONTEXT_KEY))),
    )
    env = (
        Environment(account=config.account, region=config.region)
        if config.account or config.region
        else None
    )
    tags = {"flywheel:project": config.project, "flywheel:stage": config.stage}

    def options(key: str, description: str) -> dict[str, object]:
        return {
            "stack_name": ctx.naming.stack(key),
            "description": f"Flywheel ({config.stage}): {description}",
            "env": env,
            "tags": tags,
        }

    data = DataStack(
        app, STACK_IDS[0], ctx=ctx,
        termination_protection=config.termination_protection,
        **options("data", "KMS key, buckets, tables, event bus"),
    )  # fmt: skip
    governance = GovernanceStack(
        app, STACK_IDS[1], ctx=ctx,
        **options("governance", "records writer, audit anchoring, notifications"),
    )  # fmt: skip
    serving = ServingStack(
        app, STACK_IDS[2], ctx=ctx, **options("serving", "inference, alarms, approvals, API")
    )
    workflows = WorkflowsStack(
        app, STACK_IDS[3], ctx=ctx, **options("workflows", "training and promotion workflows")
    )
    monitoring = MonitoringStack(
        app, STACK_IDS[4], ctx=ctx, **options("monitoring", "monitors, triggers, dashboards")
    )
    # Stacks refer to each other by name only, so state the order explicitly.
    governance.add_stack_dependency(data)
    serving.add_stack_dependency(governance)
    workflows.add_stack_dependency(serving)
    monitoring.add_stack_dependency(workflows)

    # Every alarm of every stack notifies the stage's topic (fires and clears).
    Aspects.of(app).add(AlarmNotifications(ctx.naming, governance.notifications.topic))
    stacks: list[Stack] = [data, governance, serving, workflows, monitoring]
    if config.ci is not None and (ci or str(app.node.try_get_context("ci")).lower() == "true"):
        ci_options = options("ci-access", "GitHub Actions deploy role")
        stacks.append(
            CiAccessStack(app, CI_ACCESS_STACK_ID, ci=config.ci, prefix=config.prefix, **ci_options)
        )
    for stack in stacks:
        acknowledge_iam_wildcards(stack)
    if nag:
        register_rule_packs(app)
    return app


def main() -> None:
    """``cdk synth``'s entry point: a bad project file is one line on stderr, exit 1."""
    try:
        app = build_app()
    except (ProjectError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(1) from None
    app.synth()


if __name__ == "__main__":
    main()
