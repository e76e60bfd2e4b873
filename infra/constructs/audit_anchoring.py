"""The anchor job: signed audit heads copied out of DynamoDB into a write-once bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from infra.catalog import FUNCTIONS
from infra.constructs.events_access import SOURCE_AUDIT, grant_put_events
from infra.constructs.function import FlywheelFunction, powertools_dimensions

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sqs as sqs

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext


class AuditAnchoring(Construct):
    """``audit-anchor`` on the stage's ``anchor_schedule``.

    Its role is the only one that writes the anchors bucket (Object Lock, compliance mode
    in prod) and holds no registry write: it reads the audit table, checks each chain and
    its signature (``kms:VerifyMac``), anchors the signed head, and puts
    ``AuditTamperDetected`` on the bus for a chain that fails; its ``ChainsTampered``
    metric has an alarm.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        layers: Mapping[str, lambda_.ILayerVersion],
        data: DataRefs,
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = ctx.config
        self.handler = FlywheelFunction(
            self,
            "Handler",
            ctx=ctx,
            spec=FUNCTIONS["audit-anchor"],
            layers=layers,
            environment={"FLYWHEEL_EVENT_SOURCE": SOURCE_AUDIT},
            reserved_concurrency=1,
            dead_letter_queue=dead_letter_queue,
        )
        fn = self.handler.function
        data.grant_verify(fn)
        data.anchors.grant_read(fn, "anchors/*")
        data.anchors.grant_put(fn, "anchors/*")
        grant_put_events(fn, data.bus, SOURCE_AUDIT)
        events.Rule(
            self,
            "Schedule",
            rule_name=f"{self.handler.function_name}-schedule",
            description=f"Runs {self.handler.function_name} ({cfg.anchor_schedule})",
            schedule=events.Schedule.expression(cfg.anchor_schedule),
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
        self.tampered = cw.Alarm(
            self,
            "ChainsTampered",
            alarm_name=f"{cfg.prefix}-audit-chain-tampered",
            alarm_description=(
                "An audit chain failed verification and was not anchored "
                "(see the AuditTamperDetected notification; flywheel audit verify <model>)"
            ),
            metric=cw.Metric(
                namespace=ctx.metrics_namespace,
                metric_name="ChainsTampered",
                dimensions_map=powertools_dimensions(self.handler.spec),
                statistic="Maximum",
                period=Duration.hours(1),
            ),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            # Every anchor run reports (0 when intact): between runs the state holds.
            treat_missing_data=cw.TreatMissingData.IGNORE,
        )
