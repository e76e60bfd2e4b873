"""The stage's notifications topic and what reaches it: every alarm, and five events.

``ApprovalRequested``, ``BiasViolation``, ``AuditTamperDetected``,
``BudgetThresholdReached`` and ``LlmQualityDegraded`` reach the topic through rules on
the project bus; each rule's input transformer turns the event into a few lines of text
(:data:`NOTICES`).
:class:`AlarmNotifications` is an aspect that gives every CloudWatch alarm of the app the
topic as alarm and OK action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import jsii
from aws_cdk import Annotations, Aws, Duration, IAspect, Stack, Token
from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct, IConstruct

from infra.constructs.event_routing import dead_letter_queue
from infra.constructs.events_access import (
    SOURCE_AUDIT,
    SOURCE_LLM,
    SOURCE_MONITORING,
    SOURCE_WORKFLOWS,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_cdk.interfaces.aws_events import IRuleRef

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext
    from infra.naming import Naming

#: Key of the topic's name (``<prefix>-notifications``).
NOTIFICATIONS = "notifications"
#: What Slack users may do through the Chatbot channel: read CloudWatch, nothing else.
CHATBOT_GUARDRAIL = "CloudWatchReadOnlyAccess"


@dataclass(frozen=True)
class Notice:
    """One event that notifies people, and the text it becomes.

    ``lines`` are EventBridge's multi-line text form: each line a JSON string whose
    ``<name>`` placeholders take the raw value of ``paths[name]``, or a bare ``<name>``,
    which takes the value as JSON (values that may hold quotes go there, since
    EventBridge does not escape what it substitutes).
    """

    detail_type: str
    source: str
    paths: Mapping[str, str]
    lines: tuple[str, ...]

    @property
    def template(self) -> str:
        return "\n".join(self.lines)


NOTICES: tuple[Notice, ...] = (
    Notice(
        "ApprovalRequested",
        SOURCE_WORKFLOWS,
        {
            "model": "$.detail.model_name",
            "version": "$.detail.version",
            "approval": "$.detail.approval_id",
            "requester": "$.detail.requested_by",
            "requested": "$.detail.requested_at",
            "expires": "$.detail.expires_at",
            "cli": "$.detail.decide.cli",
            "api": "$.detail.decide.api",
            "importance": "$.detail.evaluation.importance",
        },
        (
            '"Flywheel: <model> version <version> waits for approval"',
            '"Approval <approval>, requested by <requester> at <requested>."',
            '"It expires at <expires>; an undecided version is never released."',
            '"Global importance (mean |SHAP| on the holdout), against the champion:"',
            "<importance>",
            '"Decide with the CLI:"',
            "<cli>",
            '"or with the API:"',
            "<api>",
        ),
    ),
    Notice(
        "BiasViolation",
        SOURCE_MONITORING,
        {
            "model": "$.detail.model_name",
            "version": "$.detail.version",
            "attribute": "$.detail.attribute",
            "violations": "$.detail.violations",
            "dpd": "$.detail.demographic_parity_difference",
            "dir": "$.detail.disparate_impact_ratio",
            "eod": "$.detail.equal_opportunity_difference",
            "report": "$.detail.report",
            "start": "$.detail.window_start",
            "end": "$.detail.window_end",
        },
        (
            '"Flywheel: <model> version <version> broke its bias policy on <attribute>"',
            '"Window <start> to <end>: demographic parity difference <dpd>, '
            'disparate impact ratio <dir>, equal opportunity difference <eod>."',
            '"Violations:"',
            "<violations>",
            '"Report: <report>"',
        ),
    ),
    Notice(
        "AuditTamperDetected",
        SOURCE_AUDIT,
        {
            "stream": "$.detail.stream",
            "result": "$.detail.result",
            "seq": "$.detail.seq",
            "problem": "$.detail.problem",
        },
        (
            '"Flywheel: the audit chain <stream> failed verification (<result>, head <seq>)"',
            '"It was not anchored; its last good anchor stays the reference. First problem:"',
            "<problem>",
            '"Check it with: flywheel audit verify <stream>"',
        ),
    ),
    Notice(
        "BudgetThresholdReached",
        SOURCE_LLM,
        {
            "budget": "$.detail.budget",
            "period": "$.detail.period",
            "key": "$.detail.period_key",
            "start": "$.detail.period_start",
            "spent": "$.detail.spent",
            "limit": "$.detail.limit",
            "percent": "$.detail.percent",
            "threshold": "$.detail.alert_percent",
            "currency": "$.detail.currency",
        },
        (
            '"Flywheel: LLM budget <budget> has spent <percent>% of its <period> limit (<key>)"',
            '"Spent <spent> of <limit> <currency>; the alert is set at <threshold>%."',
            '"Once the limit is reached, calls it covers are refused (HTTP 429) until the '
            'period ends (UTC)."',
            '"Where the money went: flywheel cost report --since <start>"',
        ),
    ),
    Notice(
        "LlmQualityDegraded",
        SOURCE_MONITORING,
        {
            "prompt": "$.detail.prompt_name",
            "version": "$.detail.version",
            "variant": "$.detail.variant",
            "start": "$.detail.window_start",
            "end": "$.detail.window_end",
            "scored": "$.detail.scored",
            "sampled": "$.detail.sampled",
            "metrics": "$.detail.metrics",
            "breaches": "$.detail.breaches",
            "report": "$.detail.report_uri",
        },
        (
            '"Flywheel: prompt <prompt> version <version> (<variant>) answers worse in production"',
            '"Window <start> to <end>: <scored> of <sampled> sampled calls scored."',
            '"Breaches:"',
            "<breaches>",
            '"Figures:"',
            "<metrics>",
            "\"A canary is rolled back at its next check unless the prompt's monitor says "
            'rollback_canary: false."',
            '"Report: <report>"',
        ),
    ),
)


class TextLines(events.RuleTargetInput):
    """A notice's template and paths, exactly as written (``fromMultilineText`` would
    quote the bare placeholders)."""

    def __init__(self, notice: Notice) -> None:
        super().__init__()
        self._notice = notice

    def bind(self, _rule: IRuleRef) -> events.RuleTargetInputProperties:
        return events.RuleTargetInputProperties(
            input_template=self._notice.template, input_paths_map=dict(self._notice.paths)
        )


class Notifications(Construct):
    """The topic ``<prefix>-notifications`` (stage data key, TLS only), its subscribers
    from the stage config, and one rule per :data:`NOTICES` entry.

    Publishers are named in the topic policy: EventBridge only through these rules
    (``aws:SourceArn``), CloudWatch only for this stage's alarms. Rule targets and email
    subscriptions retry and keep what they cannot deliver in ``<prefix>-notifications-dlq``.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, data: DataRefs
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = ctx.config
        prefix = cfg.prefix
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=ctx.naming.topic(NOTIFICATIONS),
            display_name=f"Flywheel {cfg.stage}",
            master_key=data.key,
            enforce_ssl=True,
        )
        self.dead_letter_queue = dead_letter_queue(
            self, "Dlq", ctx=ctx, key=data.key, name="notifications-dlq"
        )
        for email in cfg.notifications.emails:
            self.topic.add_subscription(
                subscriptions.EmailSubscription(email, dead_letter_queue=self.dead_letter_queue)
            )
        if cfg.notifications.slack is not None:
            chatbot.SlackChannelConfiguration(
                self,
                "Slack",
                slack_channel_configuration_name=ctx.naming.topic(NOTIFICATIONS),
                slack_workspace_id=cfg.notifications.slack.workspace_id,
                slack_channel_id=cfg.notifications.slack.channel_id,
                notification_topics=[self.topic],
                guardrail_policies=[
                    iam.ManagedPolicy.from_aws_managed_policy_name(CHATBOT_GUARDRAIL)
                ],
            )

        # Imported, so the targets add no policy of their own (CDK's would let any rule
        # publish); the statement below names the rules.
        publish_to = sns.Topic.from_topic_arn(self, "PublishTo", self.topic.topic_arn)
        self.rules: dict[str, events.Rule] = {}
        for notice in NOTICES:
            self.rules[notice.detail_type] = events.Rule(
                self,
                notice.detail_type,
                rule_name=f"{prefix}-notify-on-{notice.detail_type}",
                description=f"{notice.detail_type} -> {ctx.naming.topic(NOTIFICATIONS)}",
                event_bus=data.bus,
                event_pattern=events.EventPattern(
                    source=[notice.source], detail_type=[notice.detail_type]
                ),
                targets=[
                    targets.SnsTopic(
                        publish_to,
                        message=TextLines(notice),
                        dead_letter_queue=self.dead_letter_queue,
                        retry_attempts=8,
                        max_event_age=Duration.hours(4),
                    )
                ],
            )
            # The topic is this stack's own; its imported ARN is a token, so CDK cannot tell
            # that the rule and its target share the (pinned) environment.
            Annotations.of(self.rules[notice.detail_type]).acknowledge_warning(
                "@aws-cdk/aws-events:ruleUnresolvedEnvironment",
                "target: this stack's own notifications topic",
            )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="NotificationRules",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnEquals": {"aws:SourceArn": [r.rule_arn for r in self.rules.values()]},
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="StageAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": alarm_arn(f"{prefix}-*")},
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )


def alarm_arn(name: str) -> str:
    return f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:{name}"


@jsii.implements(cw.IAlarmAction)
class _PublishTo:
    """An alarm action by topic ARN (no imported topic construct in every stack)."""

    def __init__(self, topic_arn: str) -> None:
        self._topic_arn = topic_arn

    def bind(self, _scope: Construct, _alarm: cw.IAlarm) -> cw.AlarmActionConfig:
        return cw.AlarmActionConfig(alarm_action_arn=self._topic_arn)


@jsii.implements(IAspect)
class AlarmNotifications:
    """Every alarm of the app notifies the stage's topic when it fires and when it clears.

    Alarms must be named ``<prefix>-...`` (or left unnamed: generated names start with
    the stack name), since the topic accepts CloudWatch only for those. In the topic's
    own stack, alarms are created after the topic.
    """

    def __init__(self, naming: Naming, topic: sns.ITopic | None = None) -> None:
        self._naming = naming
        self._arn = naming.topic_arn(NOTIFICATIONS)
        self._topic = topic

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, cw.Alarm | cw.CompositeAlarm):
            return
        action = _PublishTo(self._arn)
        node.add_alarm_action(action)
        node.add_ok_action(action)
        name = node.node.default_child.alarm_name  # type: ignore[union-attr]
        if (
            name
            and not Token.is_unresolved(name)
            and not name.startswith(f"{self._naming.prefix}-")
        ):
            raise ValueError(
                f"alarm {name} must be named {self._naming.prefix}-...: the notifications "
                "topic accepts only this stage's alarms"
            )
        if self._topic is not None and Stack.of(node) is Stack.of(self._topic):
            node.node.add_dependency(self._topic)
