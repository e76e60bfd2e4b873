"""The LLM budget meter: every five minutes, each budget's share spent, and
``BudgetThresholdReached`` once per budget and period (``flywheel.llm.meter``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from flywheel.llm.policy import LlmPolicy
from infra.catalog import FUNCTIONS
from infra.constructs.events_access import SOURCE_LLM, grant_put_events
from infra.constructs.function import FlywheelFunction

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sqs as sqs

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: How often the meter runs.
METER_SCHEDULE = "rate(5 minutes)"
#: The only items the meter reads and writes: budget spend lines and their alerts.
BUDGET_ITEMS = "BUDGET#*"
#: What the meter does to those items: read spend, claim / mark / drop an alert.
USAGE_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")


class LlmBudgetMeter(Construct):
    """``llm-budgets`` on :data:`METER_SCHEDULE`, with the stage's LLM policy.

    Its role may read and write only the ``BUDGET#...`` items of the usage table
    (``dynamodb:LeadingKeys``: spend lines and alert records, never the usage counters),
    use the stage key for them, and put events with source ``flywheel.llm`` on the bus.
    Reserved concurrency 1: runs never overlap (the alert claims would keep them from
    alerting twice anyway). Invoked asynchronously by the schedule, so the rule target
    and the function retry and dead-letter to ``dead_letter_queue`` when one is given.

    ``policy`` is the stage's :class:`~flywheel.llm.policy.LlmPolicy` (or its JSON
    form); it becomes ``FLYWHEEL_LLM_POLICY``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        layers: Mapping[str, lambda_.ILayerVersion],
        data: DataRefs,
        policy: LlmPolicy | Mapping[str, Any],
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        checked = policy if isinstance(policy, LlmPolicy) else LlmPolicy.model_validate(policy)
        self.policy = checked
        self.handler = FlywheelFunction(
            self,
            "Handler",
            ctx=ctx,
            spec=FUNCTIONS["llm-budgets"],
            layers=layers,
            environment={
                "FLYWHEEL_EVENT_SOURCE": SOURCE_LLM,
                "FLYWHEEL_LLM_POLICY": json.dumps(
                    checked.model_dump(mode="json", exclude_defaults=True),
                    separators=(",", ":"),
                    sort_keys=True,
                ),
            },
            reserved_concurrency=1,
            dead_letter_queue=dead_letter_queue,
            sync_only_reason=None
            if dead_letter_queue is not None
            else "Invoked by its schedule, whose target retries twice within 30 minutes; "
            "a missed run is harmless: the next one, five minutes later, reads the same "
            "spend and sends any alert still due.",
        )
        fn = self.handler.function
        iam.Grant.add_to_principal(
            grantee=fn,
            actions=list(USAGE_TABLE_ACTIONS),
            resource_arns=[data.llm_usage.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [BUDGET_ITEMS]}},
        )
        data.key.grant_encrypt_decrypt(fn)
        grant_put_events(fn, data.bus, SOURCE_LLM)
        self.schedule = events.Rule(
            self,
            "Schedule",
            rule_name=f"{self.handler.function_name}-schedule",
            description=f"Runs {self.handler.function_name} ({METER_SCHEDULE})",
            schedule=events.Schedule.expression(METER_SCHEDULE),
            targets=[
                targets.LambdaFunction(
                    fn,
                    event=events.RuleTargetInput.from_object(
                        {"trigger": "schedule", "time": events.EventField.time}
                    ),
                    retry_attempts=2,
                    max_event_age=Duration.minutes(30),
                    dead_letter_queue=dead_letter_queue,
                )
            ],
        )
