"""The LLM quality monitor: every hour (``llm_monitor_schedule``), each prompt's serving
versions scored on a sample of their captured calls (``flywheel.monitoring.llm_monitor``,
ADR 82)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from flywheel.workflows.writer import Capability
from infra.catalog import FUNCTIONS
from infra.constructs.events_access import SOURCE_MONITORING, grant_put_events
from infra.constructs.function import FlywheelFunction
from infra.constructs.llm_gateway import GUARDRAIL_ACTIONS, guardrails_arn

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sqs as sqs

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: Where the gateway captures calls (``flywheel.gateway.capture``), in the features bucket.
LLM_CAPTURE_PREFIX = "llm-capture/"


class LlmQualityMonitor(Construct):
    """``llm-monitor`` on the stage's ``llm_monitor_schedule``, for the prompts of
    ``llm.prompts`` (``FLYWHEEL_PROMPTS``) with their monitor policies
    (``FLYWHEEL_PROMPT_MONITORS``) and the stage's LLM policy (capture policies redact the
    reports).

    Its role reads the gateway's capture (``llm-capture/*`` of the features bucket), the
    prompt specs (``prompts/*``) and the registry; writes reports (``reports/*``); records
    verdicts only through the records writer's ``monitors`` alias (a verdict and its
    audit entry, nothing else); puts events as ``flywheel.monitoring`` only; and, when a
    prompt's monitor names a Bedrock guardrail, may apply the account's guardrails.
    Invoked asynchronously by the schedule: the target and the function retry and
    dead-letter to ``dead_letter_queue``. Reserved concurrency 1: runs never overlap
    (the day's scoring budget is one record per prompt).
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
        self.handler = FlywheelFunction(
            self,
            "Handler",
            ctx=ctx,
            spec=FUNCTIONS["llm-monitor"],
            layers=layers,
            environment={
                "FLYWHEEL_PROMPTS": cfg.llm.prompts_json(),
                "FLYWHEEL_PROMPT_MONITORS": cfg.llm.monitors_json(),
                "FLYWHEEL_LLM_POLICY": cfg.llm.policy_json(),
                "FLYWHEEL_LLM_CAPTURE_PREFIX": LLM_CAPTURE_PREFIX,
                "FLYWHEEL_REPORTS_PREFIX": "reports/",
                "FLYWHEEL_EVENT_SOURCE": SOURCE_MONITORING,
            },
            reserved_concurrency=1,
            dead_letter_queue=dead_letter_queue,
        )
        fn = self.handler.function
        data.grant_records_writer(fn, Capability.MONITORS.value)
        data.features.grant_read(fn, f"{LLM_CAPTURE_PREFIX}*")
        data.artifacts.grant_read(fn, "prompts/*")
        data.artifacts.grant_put(fn, "reports/*")
        grant_put_events(fn, data.bus, SOURCE_MONITORING)
        if any(p.monitor is not None and p.monitor.guardrail for p in cfg.llm.prompts.values()):
            iam.Grant.add_to_principal(
                grantee=fn, actions=list(GUARDRAIL_ACTIONS), resource_arns=[guardrails_arn()]
            )
        schedule = cfg.llm_monitor_schedule
        self.schedule = events.Rule(
            self,
            "Schedule",
            rule_name=f"{self.handler.function_name}-schedule",
            description=f"Runs {self.handler.function_name} ({schedule})",
            schedule=events.Schedule.expression(schedule),
            targets=[
                targets.LambdaFunction(
                    fn,
                    event=events.RuleTargetInput.from_object(
                        {"trigger": "schedule", "time": events.EventField.time}
                    ),
                    retry_attempts=4,
                    max_event_age=Duration.hours(1),
                    dead_letter_queue=dead_letter_queue,
                )
            ],
        )
