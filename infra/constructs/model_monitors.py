"""Scheduled monitors: drift scorer and performance monitor, feeding events back to the bus."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.catalog import FUNCTIONS
from infra.constructs.events_access import SOURCE_MONITORING, grant_put_events
from infra.constructs.function import FlywheelFunction, powertools_dimensions

if TYPE_CHECKING:
    from collections.abc import Mapping

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext


class ModelMonitors(Construct):
    """``drift_scorer`` and ``performance_monitor``, each on its stage schedule.

    They run asynchronously (EventBridge -> Lambda), so both the rule target and the
    function have a retry policy and the (KMS-encrypted, TLS-only) dead-letter queue.
    They read captured predictions and delayed labels, write reports under
    ``reports/``, emit EMF metrics and put ``DriftDetected`` / ``PerformanceDegraded``
    (source ``flywheel.monitoring``) on the project bus.  Each model's ``BiasViolation``
    metric (1 when a window breaks its bias policy) has an alarm.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        data: DataRefs,
        layers: Mapping[str, lambda_.ILayerVersion],
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = ctx.config
        environment = {
            "FLYWHEEL_MODELS": json.dumps([m.name for m in cfg.models]),
            "FLYWHEEL_CAPTURE_PREFIX": "capture/",
            "FLYWHEEL_LABELS_PREFIX": "labels/",
            "FLYWHEEL_REPORTS_PREFIX": "reports/",
            "FLYWHEEL_EVENT_SOURCE": SOURCE_MONITORING,
            "FLYWHEEL_PREDICTION_PSI": str(cfg.alarms.prediction_drift),
        }
        self.drift = FlywheelFunction(
            self,
            "DriftScorer",
            ctx=ctx,
            spec=FUNCTIONS["drift-scorer"],
            layers=layers,
            environment=environment,
            dead_letter_queue=dead_letter_queue,
        )
        self.performance = FlywheelFunction(
            self,
            "PerformanceMonitor",
            ctx=ctx,
            spec=FUNCTIONS["performance-monitor"],
            layers=layers,
            environment=environment,
            dead_letter_queue=dead_letter_queue,
        )
        for monitor, reads in (
            (self.drift, ["capture/"]),
            (self.performance, ["capture/", "labels/"]),
        ):
            fn = monitor.function
            data.grant_registry_read(fn)
            data.artifacts.grant_read(fn, "models/*")
            data.artifacts.grant_put(fn, "reports/*")
            for prefix in reads:
                data.features.grant_read(fn, f"{prefix}*")
            grant_put_events(fn, data.bus, SOURCE_MONITORING)

        for key, monitor, schedule in (
            ("DriftSchedule", self.drift, cfg.drift_schedule),
            ("PerformanceSchedule", self.performance, cfg.performance_schedule),
        ):
            events.Rule(
                self,
                key,
                rule_name=f"{monitor.function_name}-schedule",
                description=f"Runs {monitor.function_name} ({schedule})",
                schedule=events.Schedule.expression(schedule),
                targets=[
                    targets.LambdaFunction(
                        monitor.function,
                        event=events.RuleTargetInput.from_object(
                            {"trigger": "schedule", "time": events.EventField.time}
                        ),
                        retry_attempts=4,
                        max_event_age=Duration.hours(1),
                        dead_letter_queue=dead_letter_queue,
                    )
                ],
            )

        self.bias_alarms = {
            model.name: cw.Alarm(
                self,
                "BiasViolation" + "".join(p.title() for p in model.name.split("-")),
                alarm_name=f"{cfg.prefix}-{model.name}-bias-violation",
                alarm_description=(
                    f"{model.name}: the last monitoring window broke the bias policy "
                    "(see the BiasViolation notification and its report)"
                ),
                metric=cw.Metric(
                    namespace=ctx.metrics_namespace,
                    metric_name="BiasViolation",
                    dimensions_map=powertools_dimensions(self.performance.spec, Model=model.name),
                    statistic="Maximum",
                    period=Duration.hours(1),
                ),
                threshold=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                # Windows are hours apart: the state holds until the next window is judged.
                treat_missing_data=cw.TreatMissingData.IGNORE,
            )
            for model in cfg.models
        }
