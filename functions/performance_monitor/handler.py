"""Scheduled performance monitor: each champion's predictions joined with delayed labels.

Metrics per model: ``LabelledPredictions``, ``LabelCoverage``, ``PerformanceDegraded``
(0/1), ``BiasViolation`` (0/1, when the model has a bias policy) and the watched metric
as ``PerformanceValue`` (dimensions ``Model``, ``Metric``); with a protected attribute,
the three group gaps. ``PerformanceDegraded`` goes to the
project bus (see :mod:`flywheel.monitoring.performance_monitor`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.adapters.lambda_entry import scheduled_handler
from flywheel.composition import AwsPlatform, check_environment
from flywheel.monitoring.settings import MonitoringSettings

if TYPE_CHECKING:
    from flywheel.monitoring.performance_monitor import PerformanceMonitor, PerformanceRun

logger = Logger()
tracer = Tracer()
metrics = Metrics()

_GAPS = (
    ("DemographicParityDifference", "demographic_parity_difference"),
    ("DisparateImpactRatio", "disparate_impact_ratio"),
    ("EqualOpportunityDifference", "equal_opportunity_difference"),
)


check_environment(MonitoringSettings)


@functools.cache
def _monitor() -> PerformanceMonitor:
    """Composition root, built once per execution environment."""
    return AwsPlatform(MonitoringSettings()).performance_monitor()


def _dimensions(**values: str) -> None:
    """Start a new EMF document: flush what the previous dimension set holds."""
    if metrics.metric_set:
        metrics.flush_metrics()
    for name, value in values.items():
        metrics.add_dimension(name, value)


def _emit(run: PerformanceRun) -> None:
    _dimensions(Model=run.model)
    metrics.add_metric("LabelledPredictions", MetricUnit.Count, run.labelled)
    metrics.add_metric("LabelCoverage", MetricUnit.Percent, 100 * run.label_coverage)
    metrics.add_metric("PerformanceDegraded", MetricUnit.Count, int(run.degraded))
    if run.bias is not None:
        metrics.add_metric("BiasViolation", MetricUnit.Count, int(run.bias_violation))
        for name, field in _GAPS:
            value = getattr(run.bias, field)
            if value is not None:
                metrics.add_metric(name, MetricUnit.NoUnit, value)
    if run.metric is not None and run.value is not None:
        _dimensions(Model=run.model, Metric=run.metric)
        metrics.add_metric("PerformanceValue", MetricUnit.NoUnit, run.value)


handler = scheduled_handler(
    lambda: _monitor().run,
    lambda: MonitoringSettings().models,
    logger=logger,
    tracer=tracer,
    metrics=metrics,
    emit=_emit,
    name="performance",
    exclude=frozenset({"performance", "bias"}),
)
