"""One stage's stacks, in an app (``cdk deploy -c stage=dev``) or in a pipeline's ``Stage``.

:func:`add_stage_stacks` is the one place the five stacks are built, so a stage deployed
by hand, by GitHub Actions or by ``FlywheelPipeline`` is the same set of templates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Aspects, Environment
from aws_cdk import Stage as CdkStage

from infra.constructs.notifications import AlarmNotifications
from infra.context import StageContext
from infra.nag import acknowledge_iam_wildcards
from infra.naming import Naming
from infra.stacks.ci_access_stack import CI_ACCESS_STACK_ID, CiAccessStack
from infra.stacks.data_stack import DataStack
from infra.stacks.governance_stack import GovernanceStack
from infra.stacks.monitoring_stack import MonitoringStack
from infra.stacks.serving_stack import ServingStack
from infra.stacks.workflows_stack import WorkflowsStack

if TYPE_CHECKING:
    from aws_cdk import Stack
    from constructs import Construct

    from infra.assets import Assets
    from infra.config import StageConfig

#: Construct ids of the stacks (template file names in cdk.out), in deployment order.
STACK_IDS = (
    "FlywheelData",
    "FlywheelGovernance",
    "FlywheelServing",
    "FlywheelWorkflows",
    "FlywheelMonitoring",
)


def stage_environment(config: StageConfig) -> Environment | None:
    """The stage's pinned account and region (``None``: environment-agnostic)."""
    if config.account or config.region:
        return Environment(account=config.account, region=config.region)
    return None


def add_stage_stacks(
    scope: Construct, config: StageConfig, assets: Assets, *, ci: bool = False
) -> list[Stack]:
    """Build the stage's stacks under ``scope`` (an ``App`` or a ``Stage``), in order.

    ``ci`` adds ``FlywheelCiAccess`` when the stage has GitHub access configured. Every
    alarm notifies the stage's topic; IAM wildcard findings are acknowledged per shape.
    """
    ctx = StageContext(config=config, naming=Naming(config.prefix), assets=assets)
    env = stage_environment(config)
    tags = {"flywheel:project": config.project, "flywheel:stage": config.stage}

    def options(key: str, description: str) -> dict[str, Any]:
        return {
            "stack_name": ctx.naming.stack(key),
            "description": f"Flywheel ({config.stage}): {description}",
            "env": env,
            "tags": tags,
        }

    data = DataStack(
        scope, STACK_IDS[0], ctx=ctx,
        termination_protection=config.termination_protection,
        **options("data", "KMS key, buckets, tables, event bus"),
    )  # fmt: skip
    governance = GovernanceStack(
        scope, STACK_IDS[1], ctx=ctx,
        **options("governance", "records writer, audit anchoring, notifications"),
    )  # fmt: skip
    serving = ServingStack(
        scope, STACK_IDS[2], ctx=ctx, **options("serving", "inference, alarms, approvals, API")
    )
    workflows = WorkflowsStack(
        scope, STACK_IDS[3], ctx=ctx, **options("workflows", "training and promotion workflows")
    )
    monitoring = MonitoringStack(
        scope, STACK_IDS[4], ctx=ctx, **options("monitoring", "monitors, triggers, dashboards")
    )
    # Stacks refer to each other by name only, so state the order explicitly.
    governance.add_stack_dependency(data)
    serving.add_stack_dependency(governance)
    workflows.add_stack_dependency(serving)
    monitoring.add_stack_dependency(workflows)

    # Every alarm of every stack notifies the stage's topic (fires and clears).
    Aspects.of(scope).add(AlarmNotifications(ctx.naming, governance.notifications.topic))
    stacks: list[Stack] = [data, governance, serving, workflows, monitoring]
    if ci and config.ci is not None:
        ci_options = options("ci-access", "GitHub Actions deploy role")
        stacks.append(
            CiAccessStack(
                scope, CI_ACCESS_STACK_ID, ci=config.ci, prefix=config.prefix, **ci_options
            )
        )
    for stack in stacks:
        acknowledge_iam_wildcards(stack)
    return stacks


class FlywheelStage(CdkStage):
    """A project stage as a CDK ``Stage``: what ``FlywheelPipeline`` deploys, in order."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, assets: Assets
    ) -> None:
        super().__init__(scope, construct_id, env=stage_environment(config))
        self.config = config
        self.stacks = add_stage_stacks(self, config, assets)
