"""The human approval gate: ``POST /v1/approvals/{id}`` resumes the paused training run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.catalog import FUNCTIONS
from infra.constructs.events_access import SOURCE_APPROVALS, grant_put_events
from infra.constructs.function import FlywheelFunction

if TYPE_CHECKING:
    from collections.abc import Mapping

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: Error name the approval function sends with SendTaskFailure on a rejection.
APPROVAL_REJECTED_ERROR = "ApprovalRejected"


class ApprovalGate(Construct):
    """The only function that can approve: registry write + SendTaskSuccess/Failure.

    ``request_approval`` (training workflow) stores the task token server-side; this
    function looks it up by approval id, checks approver != requester, records the
    decision (registry + audit, one transaction), then calls ``SendTaskSuccess`` (or
    ``SendTaskFailure`` with error ``ApprovalRejected``) and puts ``VersionApproved`` on
    the project bus, which starts the promotion workflow.

    The training state machine is referenced by name (it lives in the workflows stack,
    deployed after this one), so no stack depends on the other's outputs.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        layers: Mapping[str, lambda_.ILayerVersion],
        data: DataRefs,
    ) -> None:
        super().__init__(scope, construct_id)
        training_arn = ctx.naming.state_machine_arn("training")
        self.handler = FlywheelFunction(
            self,
            "Handler",
            ctx=ctx,
            spec=FUNCTIONS["approval-api"],
            layers=layers,
            environment={
                "FLYWHEEL_TRAINING_STATE_MACHINE_ARN": training_arn,
                "FLYWHEEL_APPROVAL_TIMEOUT_SECONDS": str(ctx.config.approval_timeout_seconds),
                "FLYWHEEL_APPROVAL_REJECTED_ERROR": APPROVAL_REJECTED_ERROR,
                "FLYWHEEL_EVENT_SOURCE": SOURCE_APPROVALS,
            },
        )
        fn = self.handler.function
        data.grant_records_writer(fn, "approvals")
        grant_put_events(fn, data.bus, SOURCE_APPROVALS)
        training = sfn.StateMachine.from_state_machine_arn(self, "Training", training_arn)
        training.grant_task_response(fn)
