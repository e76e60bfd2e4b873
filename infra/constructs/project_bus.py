"""The project's EventBridge bus (DriftDetected, PerformanceDegraded, RetrainRequested, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.events_access import SOURCE_OPERATOR, SOURCE_PREFIX
from infra.constructs.personas import APPLICATION, PERSONAS
from infra.constructs.retrain_requests import RETRAIN_API

if TYPE_CHECKING:
    from infra.context import StageContext


class ProjectBus(Construct):
    """A named custom bus; producers need ``events:PutEvents`` on it (granted per function).

    Its resource policy denies what IAM policies elsewhere might allow:

    - events with a ``flywheel.*`` source from any principal but the stage's own roles
      (``role/<prefix>-*``: fixed names, and the generated ones, which start with the
      stack name);
    - such events from the people's persona roles and the applications' role, although
      their names match: people ask for runs through ``POST /v1/models/{name}/retrain``,
      applications only call prompts;
    - ``flywheel.operator`` events (``RetrainRequested``) from anyone but the retrain API.
    """

    def __init__(self, scope: Construct, construct_id: str, *, ctx: StageContext) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(
            self,
            "Bus",
            event_bus_name=ctx.naming.event_bus,
            description=f"{ctx.config.prefix}: Flywheel domain events",
        )
        naming = ctx.naming
        flywheel_sources = {"ForAnyValue:StringLike": {"events:source": f"{SOURCE_PREFIX}*"}}
        statements: dict[str, dict[str, Any]] = {
            "FlywheelSourcesFromStageRolesOnly": {
                **flywheel_sources,
                "ArnNotLike": {"aws:PrincipalArn": naming.role_arn_like()},
            },
            "NoFlywheelSourcesFromPeople": {
                **flywheel_sources,
                "ArnLike": {
                    "aws:PrincipalArn": [naming.role_arn(p) for p in (*PERSONAS, APPLICATION)]
                },
            },
            "OperatorSourceFromRetrainApiOnly": {
                "ForAnyValue:StringEquals": {"events:source": SOURCE_OPERATOR},
                "ArnNotEquals": {"aws:PrincipalArn": naming.role_arn(RETRAIN_API)},
            },
        }
        document = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid=sid,
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["events:PutEvents"],
                    resources=[naming.event_bus_arn],  # by name: the bus cannot Ref itself
                    conditions=conditions,
                )
                for sid, conditions in statements.items()
            ]
        )
        # The bus's own Policy property: one document, no separate EventBusPolicy resources.
        cfn_bus: events.CfnEventBus = self.bus.node.default_child  # type: ignore[assignment]
        cfn_bus.policy = document
