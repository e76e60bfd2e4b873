"""EventBridge rules that start the workflows, each target with retries and a DLQ."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.constructs.events_access import SOURCE_APPROVALS, SOURCE_MONITORING, SOURCE_OPERATOR
from infra.nag import acknowledge_all

if TYPE_CHECKING:
    from infra.context import StageContext

E = events.EventField

#: detail-type -> (allowed source, trigger reason). Every event names ``model_name``.
TRAINING_TRIGGERS: dict[str, tuple[str, str]] = {
    "DriftDetected": (SOURCE_MONITORING, "drift"),
    "PerformanceDegraded": (SOURCE_MONITORING, "performance"),
    "RetrainRequested": (SOURCE_OPERATOR, "manual"),
}


def dead_letter_queue(
    scope: Construct, construct_id: str, *, ctx: StageContext, key: kms.IKey, name: str
) -> sqs.Queue:
    """An encrypted (stage CMK), TLS-only queue that keeps undeliverable events 14 days."""
    queue = sqs.Queue(
        scope,
        construct_id,
        queue_name=ctx.naming.queue(name),
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        data_key_reuse=Duration.hours(1),
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge_all(
        queue,
        ["AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"],
        "This queue is itself a dead-letter queue (EventBridge target / Lambda async DLQ); "
        "a DLQ of a DLQ would only move the same messages again. Its depth is alarmed.",
    )
    cw.Alarm(
        scope,
        f"{construct_id}NotEmpty",
        alarm_name=f"{ctx.naming.queue(name)}-not-empty",
        alarm_description=f"Events could not be delivered: inspect {ctx.naming.queue(name)}",
        metric=queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(5), statistic="Maximum"
        ),
        threshold=0,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
    )
    return queue


class EventRouting(Construct):
    """Schedule, DriftDetected, PerformanceDegraded, RetrainRequested -> training;
    VersionApproved, PromotionRequested -> promotion.

    Rules on the project bus match ``source`` and ``detail-type``; producers' roles may
    only emit their own source (``events_access``). Input transformers hand the workflows
    ``{"model_name", "trigger": {"reason", "source", "event_id", "time", "detail"}}`` (training) and
    ``{"model_name", "version", "event_id", "approval"}`` (promotion). Cooldown and
    deduplication happen in the workflow's first step (``acquire_run_lock``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        bus: events.IEventBus,
        key: kms.IKey,
        training: sfn.IStateMachine,
        promotion: sfn.IStateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = ctx.config.prefix
        self.training_dlq = dead_letter_queue(
            self, "TrainingTriggersDlq", ctx=ctx, key=key, name="training-triggers-dlq"
        )
        self.promotion_dlq = dead_letter_queue(
            self, "PromotionTriggersDlq", ctx=ctx, key=key, name="promotion-triggers-dlq"
        )
        self.rules: dict[str, events.Rule] = {}

        def to_training(payload: dict[str, object]) -> targets.SfnStateMachine:
            return targets.SfnStateMachine(
                training,
                input=events.RuleTargetInput.from_object(payload),
                dead_letter_queue=self.training_dlq,
                retry_attempts=8,
                max_event_age=Duration.hours(4),
            )

        for model in ctx.config.models:
            if model.training_schedule is None:
                continue
            key_ = "".join(part.title() for part in model.name.split("-"))
            self.rules[f"schedule:{model.name}"] = events.Rule(
                self,
                f"TrainingSchedule{key_}",
                rule_name=f"{prefix}-training-schedule-{model.name}",
                description=f"Scheduled retraining of {model.name} ({model.training_schedule})",
                schedule=events.Schedule.expression(model.training_schedule),
                targets=[
                    to_training(
                        {
                            "model_name": model.name,
                            "trigger": {
                                "reason": "schedule",
                                "source": E.source,
                                "event_id": E.event_id,
                                "time": E.time,
                            },
                        }
                    )
                ],
            )

        for detail_type, (source, reason) in TRAINING_TRIGGERS.items():
            self.rules[detail_type] = events.Rule(
                self,
                detail_type,
                rule_name=f"{prefix}-training-on-{detail_type}",
                description=f"{detail_type} -> training workflow",
                event_bus=bus,
                event_pattern=events.EventPattern(source=[source], detail_type=[detail_type]),
                targets=[
                    to_training(
                        {
                            "model_name": E.from_path("$.detail.model_name"),
                            "trigger": {
                                "reason": reason,
                                "source": E.source,
                                "event_id": E.event_id,
                                "time": E.time,
                                "detail": E.from_path("$.detail"),
                            },
                        }
                    )
                ],
            )

        def to_promotion() -> targets.SfnStateMachine:
            return targets.SfnStateMachine(
                promotion,
                input=events.RuleTargetInput.from_object(
                    {
                        "model_name": E.from_path("$.detail.model_name"),
                        "version": E.from_path("$.detail.version"),
                        "event_id": E.event_id,
                        "approval": E.from_path("$.detail"),
                    }
                ),
                dead_letter_queue=self.promotion_dlq,
                retry_attempts=8,
                max_event_age=Duration.hours(1),
            )

        # detail-type -> the only source it starts a promotion from: the approval function,
        # or the operator's promotions route (an approved version, e.g. an experiment's
        # winner; flywheel.workflows.promotion_requests).
        for detail_type, source, description in (
            ("VersionApproved", SOURCE_APPROVALS, "VersionApproved -> promotion workflow (canary)"),
            (
                "PromotionRequested",
                SOURCE_OPERATOR,
                "PromotionRequested -> promotion workflow (canary) for an approved version",
            ),
        ):
            self.rules[detail_type] = events.Rule(
                self,
                detail_type,
                rule_name=f"{prefix}-promotion-on-{detail_type}",
                description=description,
                event_bus=bus,
                event_pattern=events.EventPattern(source=[source], detail_type=[detail_type]),
                targets=[to_promotion()],
            )
