"""The alarms ``check_canary`` reads during the bake (one set per model and per prompt of
the project file's ``llm.prompts``), plus capture health."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

if TYPE_CHECKING:
    from infra.context import StageContext

#: ``Variant`` dimension value of requests answered by the canary (flywheel.serving.routing).
VARIANT_CANARY = "canary"
#: The canary alarms, in the order ``FLYWHEEL_CANARY_ALARMS`` lists them.
ALARM_KEYS = ("ErrorRate", "LatencyP99", "ValidationFailureRate", "PredictionDrift", "Crashes")
#: A prompt's canary alarms, in the same order (``CostPerCall`` when the prompt sets
#: ``alarms.cost_per_call``).
PROMPT_ALARM_KEYS = ("ErrorRate", "LatencyP99", "CostPerCall")


def canary_alarm_names(ctx: StageContext, model_name: str) -> list[str]:
    """Deterministic alarm names (what ``check_canary`` gets, from any stack)."""
    return [ctx.naming.alarm(model_name, key.lower()) for key in ALARM_KEYS]


def prompt_alarm_keys(ctx: StageContext, prompt: str) -> list[str]:
    """The canary alarms of a prompt declared in ``llm.prompts``."""
    with_cost = ctx.config.llm.prompts[prompt].alarms.cost_per_call is not None
    return [k for k in PROMPT_ALARM_KEYS if with_cost or k != "CostPerCall"]


def prompt_alarm_names(ctx: StageContext, prompt: str) -> list[str]:
    """Deterministic alarm names of a prompt's canary (what ``check_canary`` gets)."""
    return [ctx.naming.alarm(prompt, key.lower()) for key in prompt_alarm_keys(ctx, prompt)]


def all_canary_alarm_names(ctx: StageContext) -> dict[str, list[str]]:
    """``FLYWHEEL_CANARY_ALARMS``: every model's and every declared prompt's alarm names."""
    alarms = {m.name: canary_alarm_names(ctx, m.name) for m in ctx.config.models}
    alarms.update({p: prompt_alarm_names(ctx, p) for p in ctx.config.llm.prompts})
    return alarms


def canary_alarm(
    scope: Construct,
    ctx: StageContext,
    subject: str,
    key: str,
    metric: cw.IMetric,
    threshold: float,
    description: str,
) -> cw.Alarm:
    """One canary alarm of a model or prompt: above ``threshold`` for the stage's periods,
    missing data not breaching, named as ``check_canary`` reads it."""
    periods = ctx.config.alarms
    return cw.Alarm(
        scope,
        key,
        alarm_name=ctx.naming.alarm(subject, key.lower()),
        alarm_description=f"{subject} canary: {description}",
        metric=metric,
        threshold=threshold,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=periods.evaluation_periods,
        datapoints_to_alarm=periods.datapoints_to_alarm,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
    )


class CanaryAlarms(Construct):
    """The canary's health, judged on the canary's own traffic.

    One mechanism, shared with the promotion workflow: ``check_canary`` reads these
    alarms (names in its ``FLYWHEEL_CANARY_ALARMS``) after the bake and promotes only if
    none is in ``ALARM``; otherwise ``Rollback``.

    The inference handler emits EMF metrics in namespace ``Flywheel/<stage>`` with the
    dimension set ``[Model, Variant]`` (``flywheel.serving.metrics``); these alarms watch
    ``Variant=canary`` only, i.e. the version the promotion workflow just shifted weight to:

    - ``ErrorRate``: ``100 * Errors / Requests`` (5xx answers);
    - ``LatencyP99``: p99 of ``Latency`` (validate + predict + capture hand-off);
    - ``ValidationFailureRate``: average of the 0/100-per-request metric;
    - ``PredictionDrift``: PSI of the canary's prediction distribution against the
      version's reference profile (emitted by the canary check / drift scorer);
    - ``Crashes``: Lambda's own ``Errors`` on alias ``live`` (unhandled errors, e.g. a
      canary that cannot load its model emits no custom metric at all).

    Missing data is "not breaching": no canary traffic yet is not a failure.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        model_name: str,
        alias: lambda_.Alias,
    ) -> None:
        super().__init__(scope, construct_id)
        thresholds = ctx.config.alarms
        period = Duration.seconds(thresholds.period_seconds)

        def custom(
            metric: str, statistic: str, variant: str = VARIANT_CANARY, every: Duration = period
        ) -> cw.Metric:
            return cw.Metric(
                namespace=ctx.metrics_namespace,
                metric_name=metric,
                dimensions_map={"Model": model_name, "Variant": variant},
                statistic=statistic,
                period=every,
            )

        def alarm(key: str, metric: cw.IMetric, threshold: float, description: str) -> cw.Alarm:
            return canary_alarm(self, ctx, model_name, key, metric, threshold, description)

        error_rate = cw.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={
                "errors": custom("Errors", "Sum"),
                "requests": custom("Requests", "Sum"),
            },
            period=period,
            label="canary 5xx rate (%)",
        )
        self.alarms: dict[str, cw.Alarm] = {
            "ErrorRate": alarm(
                "ErrorRate",
                error_rate,
                thresholds.error_rate_percent,
                f"5xx rate above {thresholds.error_rate_percent}%",
            ),
            "LatencyP99": alarm(
                "LatencyP99",
                custom("Latency", "p99"),
                thresholds.p99_latency_ms,
                f"p99 latency above {thresholds.p99_latency_ms} ms",
            ),
            "ValidationFailureRate": alarm(
                "ValidationFailureRate",
                custom("ValidationFailureRate", "Average"),
                thresholds.validation_failure_rate_percent,
                f"validation failures above {thresholds.validation_failure_rate_percent}%",
            ),
            "PredictionDrift": alarm(
                "PredictionDrift",
                custom("PredictionDrift", "Maximum"),
                thresholds.prediction_drift,
                f"prediction distribution PSI above {thresholds.prediction_drift}",
            ),
            "Crashes": alarm(
                "Crashes",
                alias.metric_errors(period=period, statistic="Sum"),
                0,
                "unhandled Lambda errors on alias live (e.g. the model does not load)",
            ),
        }
        # Not a canary signal, but issue #5's contract: lost captures are alarmed.
        self.capture_failures = cw.Alarm(
            self,
            "CaptureFailures",
            alarm_name=f"{ctx.config.prefix}-{model_name}-capture-failures",
            alarm_description=f"{model_name}: captured predictions were lost (monitoring gap)",
            metric=cw.MathExpression(
                expression="FILL(champion, 0) + FILL(canary, 0)",
                using_metrics={
                    "champion": custom("CaptureFailures", "Sum", "champion", Duration.minutes(5)),
                    "canary": custom("CaptureFailures", "Sum", VARIANT_CANARY, Duration.minutes(5)),
                },
                period=Duration.minutes(5),
                label="captured rows lost",
            ),
            threshold=0,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )


class PromptCanaryAlarms(Construct):
    """The canary of a prompt's new version, judged on the calls it answered.

    The LLM gateway emits EMF metrics in namespace ``Flywheel/<stage>`` with the
    dimension set ``[Prompt, Variant]``; these alarms watch ``Variant=canary`` only, with
    the prompt's thresholds (``llm.prompts.<name>.alarms``) and the stage's periods
    (``alarms.period_seconds``, ``evaluation_periods``, ``datapoints_to_alarm``):

    - ``ErrorRate``: ``100 * Errors / Calls`` (5xx answers: provider errors and
      timeouts, output-schema failures) above ``error_rate_percent``;
    - ``LatencyP99``: p99 of ``Latency`` (the whole call) above ``latency_p99_ms``;
    - ``CostPerCall``: ``Cost / Calls`` (the price table's currency) above
      ``cost_per_call``, when the prompt sets one.

    Missing data is "not breaching": a canary no call has reached yet is not a failure.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, prompt: str
    ) -> None:
        super().__init__(scope, construct_id)
        stage_alarms = ctx.config.alarms
        thresholds = ctx.config.llm.prompts[prompt].alarms
        period = Duration.seconds(stage_alarms.period_seconds)

        def canary(metric: str, statistic: str) -> cw.Metric:
            return cw.Metric(
                namespace=ctx.metrics_namespace,
                metric_name=metric,
                dimensions_map={"Prompt": prompt, "Variant": VARIANT_CANARY},
                statistic=statistic,
                period=period,
            )

        def alarm(key: str, metric: cw.IMetric, threshold: float, description: str) -> cw.Alarm:
            return canary_alarm(self, ctx, prompt, key, metric, threshold, description)

        per_call = {"calls": canary("Calls", "Sum")}
        self.alarms: dict[str, cw.Alarm] = {
            "ErrorRate": alarm(
                "ErrorRate",
                cw.MathExpression(
                    expression="IF(calls > 0, 100 * FILL(errors, 0) / calls, 0)",
                    using_metrics={**per_call, "errors": canary("Errors", "Sum")},
                    period=period,
                    label="canary 5xx rate (%)",
                ),
                thresholds.error_rate_percent,
                f"5xx rate above {thresholds.error_rate_percent}%",
            ),
            "LatencyP99": alarm(
                "LatencyP99",
                canary("Latency", "p99"),
                thresholds.latency_p99_ms,
                f"p99 latency above {thresholds.latency_p99_ms:g} ms",
            ),
        }
        if thresholds.cost_per_call is not None:
            self.alarms["CostPerCall"] = alarm(
                "CostPerCall",
                cw.MathExpression(
                    expression="IF(calls > 0, FILL(cost, 0) / calls, 0)",
                    using_metrics={**per_call, "cost": canary("Cost", "Sum")},
                    period=period,
                    label="canary cost per call",
                ),
                float(thresholds.cost_per_call),
                f"cost per call above {thresholds.cost_per_call} {ctx.config.llm.currency}",
            )
