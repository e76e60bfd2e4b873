"""Scheduled materialization of feature views from the offline store to the online store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from infra.catalog import FUNCTIONS
from infra.constructs.function import FlywheelFunction

if TYPE_CHECKING:
    from aws_cdk import aws_sqs as sqs

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: Where the offline store keeps its Parquet files in the features bucket.
OFFLINE_PREFIX = "offline/"


class FeatureMaterialization(Construct):
    """``feature_materializer`` on the stage's ``materialization_schedule``.

    It reads new Parquet files under ``offline/`` of the features bucket, writes the
    online table with conditional puts and keeps each view's watermark in the registry
    table. Reserved concurrency 1: a slow run and the next scheduled one never race
    (each run is idempotent anyway). Asynchronous like the monitors, so the rule target
    and the function retry and dead-letter to the (KMS-encrypted, TLS-only) queue.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        data: DataRefs,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = ctx.config
        self.handler = FlywheelFunction(
            self,
            "Handler",
            ctx=ctx,
            spec=FUNCTIONS["feature-materializer"],
            environment={"FLYWHEEL_FEATURE_VIEWS": json.dumps(list(cfg.feature_views))},
            reserved_concurrency=1,
            dead_letter_queue=dead_letter_queue,
        )
        fn = self.handler.function
        data.grant_records_writer(fn, "features")  # view definitions; watermarks
        data.features.grant_read(fn, f"{OFFLINE_PREFIX}*")
        data.online_features.grant_read_write_data(fn)
        events.Rule(
            self,
            "Schedule",
            rule_name=f"{self.handler.function_name}-schedule",
            description=f"Runs {self.handler.function_name} ({cfg.materialization_schedule})",
            schedule=events.Schedule.expression(cfg.materialization_schedule),
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
