"""One CloudWatch dashboard per model: serving, canary, drift/performance, workflows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cw
from constructs import Construct

from infra.constructs.canary_alarms import canary_alarm_names
from infra.constructs.inference_service import LIVE_ALIAS

if TYPE_CHECKING:
    from infra.config import ModelConfig
    from infra.context import StageContext

PERIOD = Duration.minutes(5)


class ModelDashboards(Construct):
    """A dashboard per configured model, built from metric names and dimensions only."""

    def __init__(self, scope: Construct, construct_id: str, *, ctx: StageContext) -> None:
        super().__init__(scope, construct_id)
        self.dashboards = {model.name: self._dashboard(ctx, model) for model in ctx.config.models}

    def _dashboard(self, ctx: StageContext, model: ModelConfig) -> cw.Dashboard:
        fn = ctx.naming.function("inference", model.name)
        alias_dims = {"FunctionName": fn, "Resource": f"{fn}:{LIVE_ALIAS}"}

        def lam(metric: str, statistic: str, label: str) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/Lambda",
                metric_name=metric,
                dimensions_map=alias_dims,
                statistic=statistic,
                period=PERIOD,
                label=label,
            )

        def custom(metric: str, variant: str, statistic: str) -> cw.Metric:
            return cw.Metric(
                namespace=ctx.metrics_namespace,
                metric_name=metric,
                dimensions_map={"Model": model.name, "Variant": variant},
                statistic=statistic,
                period=PERIOD,
                label=f"{metric} ({variant})",
            )

        def states(machine: str, metric: str) -> cw.Metric:
            arn = (
                f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:"
                f"{ctx.naming.state_machine(machine)}"
            )
            return cw.Metric(
                namespace="AWS/States",
                metric_name=metric,
                dimensions_map={"StateMachineArn": arn},
                statistic="Sum",
                period=PERIOD,
                label=f"{machine} {metric}",
            )

        alarms = [
            cw.Alarm.from_alarm_name(self, f"{model.name}-{name}", name)
            for name in canary_alarm_names(ctx, model.name)
        ]
        monitor_search = cw.MathExpression(
            expression=(
                f"SEARCH('{{{ctx.metrics_namespace},Model}} Model=\"{model.name}\"', "
                "'Average', 300)"
            ),
            label="",
            period=PERIOD,
        )
        dashboard = cw.Dashboard(
            self,
            "".join(part.title() for part in model.name.split("-")),
            dashboard_name=f"{ctx.config.prefix}-{model.name}",
            default_interval=Duration.days(1),
        )
        dashboard.add_widgets(
            cw.TextWidget(
                markdown=f"# {model.name} ({ctx.config.stage})\nAlias `{LIVE_ALIAS}` of `{fn}`; "
                "canary alarms drive the promotion workflow's rollback.",
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Canary alarms", alarms=alarms, width=24, height=3)
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Invocations and errors (alias live)",
                left=[lam("Invocations", "Sum", "invocations")],
                right=[lam("Errors", "Sum", "errors"), lam("Throttles", "Sum", "throttles")],
                width=8,
            ),
            cw.GraphWidget(
                title="Duration (alias live)",
                left=[lam("Duration", "p50", "p50"), lam("Duration", "p99", "p99")],
                width=8,
            ),
            cw.GraphWidget(
                title="Concurrency (alias live)",
                left=[lam("ConcurrentExecutions", "Maximum", "concurrent executions")],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Validation failure rate (%)",
                left=[
                    custom("ValidationFailureRate", v, "Average") for v in ("champion", "canary")
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Prediction drift (PSI)",
                left=[custom("PredictionDrift", v, "Maximum") for v in ("champion", "canary")],
                width=8,
            ),
            cw.GraphWidget(
                title="Monitor metrics (drift, performance)", left=[monitor_search], width=8
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Training executions",
                left=[
                    states("training", m)
                    for m in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed")
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Promotion executions",
                left=[
                    states("promotion", m)
                    for m in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed")
                ],
                width=12,
            ),
        )
        return dashboard
