"""Scheduled budget meter (every five minutes): the share of each LLM budget the current
UTC day and month have spent, and ``BudgetThresholdReached`` once per budget and period
at the policy's ``alert_percent`` (:mod:`flywheel.llm.meter`).

Metrics: ``BudgetUsedPercent`` (dimension ``Budget`` = ``<scope>:<name>:<period>``, one
value per budget line and run), ``BudgetAlerts`` (alerts put on the bus this run).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.adapters.emf_metrics import emit_metric
from flywheel.composition import AwsPlatform, check_environment
from flywheel.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.llm.meter import BudgetMeter

logger = Logger()
tracer = Tracer()
metrics = Metrics()

check_environment(Settings)


@functools.cache
def _meter() -> BudgetMeter:
    """Composition root, built once per execution environment (the policy is its
    environment's: a new policy is a new deployment)."""
    return AwsPlatform(Settings()).budget_meter()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    meter = _meter()
    try:
        readings = meter.run()
    finally:
        # What was read is reported even when an alert could not be put (the run fails
        # and the schedule's retry tries again).
        for reading in meter.last_readings:
            emit_metric(
                str(metrics.namespace),
                "BudgetUsedPercent",
                reading.percent,
                unit=MetricUnit.Percent,
                dimensions={"Budget": reading.budget},
            )
    alerted = [r for r in readings if r.alerted]
    for reading in alerted:
        logger.warning(
            "budget threshold reached",
            extra={"budget": reading.budget, "percent": reading.percent,
                   "spent": str(reading.spent), "limit": str(reading.line.limit)},
        )  # fmt: skip
    metrics.add_metric("BudgetAlerts", MetricUnit.Count, len(alerted))
    return {
        "budgets": [
            {
                "budget": r.budget,
                "period_key": r.line.period_key,
                "spent": format(r.spent, "f"),
                "limit": format(r.line.limit, "f"),
                "percent": r.percent,
                "alerted": r.alerted,
            }
            for r in readings
        ]
    }
