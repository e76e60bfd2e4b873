"""Prompt versions registered by people: ``POST /v1/prompts/{name}/versions``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_iam as iam
from constructs import Construct

from flywheel.workflows.approvals import APPROVAL_REQUESTED
from flywheel.workflows.writer import Capability
from infra.catalog import FUNCTIONS
from infra.constructs.events_access import SOURCE_WORKFLOWS
from infra.constructs.function import FlywheelFunction

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_cdk import aws_lambda as lambda_

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: The function's catalogue key (``<prefix>-prompt-api``).
PROMPT_API = "prompt-api"
#: Where the function stores specs in the artifacts bucket (``PromptCatalog.register``).
PROMPTS_PREFIX = "prompts/*"


class PromptRegistrations(Construct):
    """The registration function (``prompt_api.handler.handler``), which registers a
    prompt version and asks for its approval as the route's authenticated caller.

    Permissions, and nothing else:

    - ``s3:PutObject`` under ``prompts/`` of the artifacts bucket (the spec's canonical
      JSON; it reads none back), and ``kms:GenerateDataKey`` on the stage key for it;
    - read the registry and the audit trail (the latest version, the approval pointer),
      and change them only through the records writer's ``prompts`` alias: a version of
      kind ``prompt`` and its approval request, nothing else;
    - ``events:PutEvents`` of ``ApprovalRequested`` with the workflows' source (what
      notifies approvers, as the training workflow announces its candidates);
    - its own log group and X-Ray traces.
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
        self.handler = FlywheelFunction(
            self,
            "Handler",
            ctx=ctx,
            spec=FUNCTIONS[PROMPT_API],
            layers=layers,
            environment={"FLYWHEEL_EVENT_SOURCE": SOURCE_WORKFLOWS},
        )
        fn = self.handler.function
        data.grant_records_writer(fn, Capability.PROMPTS.value)
        iam.Grant.add_to_principal(
            grantee=fn,
            actions=["s3:PutObject"],
            resource_arns=[data.artifacts.arn_for_objects(PROMPTS_PREFIX)],
        )
        # SSE-KMS with the stage key: a put needs a data key (reads are granted above).
        data.key.grant(fn, "kms:GenerateDataKey")
        iam.Grant.add_to_principal(
            grantee=fn,
            actions=["events:PutEvents"],
            resource_arns=[data.bus.event_bus_arn],
            conditions={
                "StringEquals": {
                    "events:source": SOURCE_WORKFLOWS,
                    "events:detail-type": APPROVAL_REQUESTED,
                }
            },
        )
