"""The stage's AWS Budgets cost budget (``llm.monthly_budget``), alerting the notifications
topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Aws
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_iam as iam
from constructs import Construct

if TYPE_CHECKING:
    from decimal import Decimal

    from aws_cdk import aws_sns as sns

    from infra.context import StageContext

#: AWS Budgets counts cost in US dollars.
BUDGET_UNIT = "USD"
#: The service that publishes budget notifications.
BUDGETS_SERVICE = "budgets.amazonaws.com"


def budget_name(ctx: StageContext) -> str:
    """``<prefix>-monthly`` (budget names are unique within an account)."""
    return f"{ctx.config.prefix}-monthly"


class MonthlyBudget(Construct):
    """A ``COST`` budget of ``llm.monthly_budget`` USD a ``MONTHLY`` period, which notifies
    the stage's topic when the actual spend passes ``llm.alert_percent`` of it and when
    the forecast for the month passes all of it.

    It watches the account's whole cost, not only what carries the stage's tags: Bedrock
    bills on-demand model calls (and the Marketplace models' usage) with no resource
    tag, so a budget filtered by the ``flywheel:stage`` cost-allocation tag would leave
    out the very spend it is for. Stages that pin an account of their own (the
    recommended layout) get exactly their cost.

    The topic's policy admits AWS Budgets (``aws:SourceAccount``, and a source ARN of
    this account's budgets); the stage key lets it encrypt (``infra.constructs.encryption``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        limit: Decimal,
        topic: sns.Topic,
    ) -> None:
        super().__init__(scope, construct_id)
        llm = ctx.config.llm
        subscribers = [
            budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=topic.topic_arn)
        ]

        def notify(
            kind: str, percent: float
        ) -> budgets.CfnBudget.NotificationWithSubscribersProperty:
            return budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=kind,
                    comparison_operator="GREATER_THAN",
                    threshold=percent,
                    threshold_type="PERCENTAGE",
                ),
                subscribers=subscribers,
            )

        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="StageBudget",
                principals=[iam.ServicePrincipal(BUDGETS_SERVICE)],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:budgets::{Aws.ACCOUNT_ID}:*"
                    },
                },
            )
        )
        self.budget = budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=budget_name(ctx),
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=float(limit), unit=BUDGET_UNIT),
            ),
            notifications_with_subscribers=[
                notify("ACTUAL", llm.alert_percent),
                notify("FORECASTED", 100.0),
            ],
        )
        # After the topic and its policy: the budget's notifications find them in place.
        self.budget.node.add_dependency(topic)
