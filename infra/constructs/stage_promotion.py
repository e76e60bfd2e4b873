"""Stage promotion across accounts: the role a target stage lets its source stages assume.

``<prefix>-stage-promotion`` (ADR 65) may read this stage's record, registry and trail,
put and read back objects under ``models/`` in the artifacts bucket, and invoke the
records writer's ``promotions`` alias, which registers a candidate, asks for its
approval and records ``stage_promoted_in``, nothing else, and announce that approval
request (``ApprovalRequested``) on the project bus. Only the ML engineer persona
role of each configured source stage (``promotion_sources``) may assume it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

from flywheel.workflows.approvals import APPROVAL_REQUESTED
from infra.constructs.events_access import SOURCE_WORKFLOWS
from infra.constructs.personas import ML_ENGINEER

if TYPE_CHECKING:
    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext
    from infra.promotion_sources import PromotionSource

#: The role's key: its name is ``<prefix>-stage-promotion``.
STAGE_PROMOTION = "stage-promotion"
#: The records writer's alias the role may invoke.
PROMOTIONS = "promotions"


def promotion_role_pattern(project: str) -> str:
    """Every stage's promotion role, in any account (what a source's ML engineers assume).

    Examples
    --------
    >>> promotion_role_pattern("flywheel").endswith(":role/flywheel-*-stage-promotion")
    True
    """
    return f"arn:{Aws.PARTITION}:iam::*:role/{project}-*-{STAGE_PROMOTION}"


class StagePromotionRole(Construct):
    """The role each configured source stage's ML engineers assume to promote into this stage.

    The trust names the source account and, by ``aws:PrincipalArn``, its ML engineer
    persona role: no other principal of that account may assume it (ADR 65 says why
    neither an external id nor MFA is asked for).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        data: DataRefs,
        sources: tuple[PromotionSource, ...],
    ) -> None:
        super().__init__(scope, construct_id)
        if not sources:
            raise ValueError("promotion_sources: name at least one source stage")
        project = ctx.config.project
        trusts = [
            iam.AccountPrincipal(source.account).with_conditions(
                {
                    "ArnEquals": {
                        "aws:PrincipalArn": f"arn:{Aws.PARTITION}:iam::{source.account}:role/"
                        f"{project}-{source.stage}-{ML_ENGINEER}"
                    }
                }
            )
            for source in sources
        ]
        self.role = iam.Role(
            self,
            "Role",
            role_name=f"{ctx.config.prefix}-{STAGE_PROMOTION}",
            description=(
                f"{ctx.config.prefix}: promote model versions in from "
                + ", ".join(s.stage for s in sources)
                + " (register, ask for approval; nothing else)"
            ),
            assumed_by=trusts[0],
            max_session_duration=Duration.hours(1),
        )
        for trust in trusts[1:]:
            self.role.assume_role_policy.add_statements(  # type: ignore[union-attr]
                iam.PolicyStatement(actions=["sts:AssumeRole"], principals=[trust])
            )
        policy = iam.Policy(self, "Policy", roles=[self.role])
        policy.add_statements(
            iam.PolicyStatement(
                sid="PutAndReadBackModels",
                actions=["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"],
                resources=[data.artifacts.arn_for_objects("models/*")],
            ),
            iam.PolicyStatement(
                sid="ReadThePlatformRecord",
                actions=["ssm:GetParameter"],
                resources=[
                    f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter"
                    f"{ctx.naming.platform_parameter}"
                ],
            ),
        )
        # The approvers' notification of the promoted candidate (as the training
        # workflow announces its own): that one detail-type, with the workflows' source.
        policy.add_statements(
            iam.PolicyStatement(
                sid="AnnounceTheApprovalRequest",
                actions=["events:PutEvents"],
                resources=[data.bus.event_bus_arn],
                conditions={
                    "StringEquals": {
                        "events:source": SOURCE_WORKFLOWS,
                        "events:detail-type": APPROVAL_REQUESTED,
                    }
                },
            )
        )
        data.key.grant(self.role, "kms:Decrypt", "kms:GenerateDataKey")
        data.grant_verify(self.role)
        data.grant_writer_capability(self.role, PROMOTIONS)
