"""Scheduled drift scorer: each model's captured traffic against its reference profile.

Metrics: ``ShareDrifted``, ``DriftedFeatures`` and ``DriftWindowRows`` per model, and per
feature (dimensions ``Model``, ``Feature``) ``DriftScore``, ``FeatureDrifted`` and the
distances, one EMF document per feature (:mod:`flywheel.adapters.emf_monitoring`);
``PredictionDrift`` (``Model``, ``Variant=champion``): the PSI of the window's scores
against the champion's holdout scores, when its reference profile has them;
``AttributionDrift`` (``Model``): the NDCG of the window's feature-importance ranking
against training's (1 = unchanged), when it was measured (ADR 73).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.adapters.emf_metrics import emit_metric
from flywheel.adapters.emf_monitoring import feature_drift_documents, write_documents
from flywheel.adapters.lambda_entry import scheduled_handler
from flywheel.composition import AwsPlatform, check_environment
from flywheel.monitoring.settings import MonitoringSettings

if TYPE_CHECKING:
    from flywheel.monitoring.drift_monitor import DriftMonitor, DriftRun

logger = Logger()
tracer = Tracer()
metrics = Metrics()


check_environment(MonitoringSettings)


@functools.cache
def _monitor() -> DriftMonitor:
    """Composition root, built once per execution environment."""
    return AwsPlatform(MonitoringSettings()).drift_monitor()


def _emit(run: DriftRun) -> None:
    if run.result is None:
        return
    if metrics.metric_set:  # one document per model: flush the previous one
        metrics.flush_metrics()
    metrics.add_dimension("Model", run.model)
    metrics.add_metric("ShareDrifted", MetricUnit.Percent, 100 * run.share_drifted)
    metrics.add_metric("DriftedFeatures", MetricUnit.Count, len(run.drifted))
    metrics.add_metric("DriftWindowRows", MetricUnit.Count, run.rows)
    if run.attribution_ndcg is not None:
        metrics.add_metric("AttributionDrift", MetricUnit.NoUnit, run.attribution_ndcg)
    namespace = metrics.namespace or "Flywheel"
    write_documents(feature_drift_documents(namespace, run.model, run.version, run.result.features))
    predictions = run.result.prediction_drift
    if predictions is not None:
        # The dashboard's PredictionDrift line for the champion (the canary's comes from
        # the promotion workflow's check): exactly the dimensions it plots.
        emit_metric(
            str(namespace),
            "PredictionDrift",
            predictions.psi,
            unit=MetricUnit.NoUnit,
            dimensions={"Model": run.model, "Variant": "champion"},
        )


handler = scheduled_handler(
    lambda: _monitor().run,
    lambda: MonitoringSettings().models,
    logger=logger,
    tracer=tracer,
    metrics=metrics,
    emit=_emit,
    name="drift",
    exclude=frozenset({"result"}),
)
