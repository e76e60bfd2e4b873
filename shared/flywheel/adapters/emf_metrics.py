"""Serving metrics as CloudWatch embedded metric format, through Powertools ``Metrics``."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aws_lambda_powertools import Metrics

    from flywheel.serving.metrics import MetricLabels

__all__ = ["EmfServingMetrics"]


class EmfServingMetrics:
    """The ``ServingMetrics`` port on a Powertools ``Metrics`` instance.

    Each request's metrics carry two dimension sets: ``[Model, Variant]`` (what
    the canary alarms watch) and ``[Model, Version]``.  They are flushed with
    the handler's ``@metrics.log_metrics``.  Shadow failures happen on a
    background thread and are written at once with ``single_metric``.

    ``PredictionScore`` (one value per row, up to 100) is written as its own EMF
    record with all values in one array: adding 100 values one by one through
    Powertools costs milliseconds per request.

    Examples
    --------
    >>> from aws_lambda_powertools import Metrics  # doctest: +SKIP
    >>> EmfServingMetrics(Metrics(namespace="Flywheel/dev"))  # doctest: +SKIP
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def _dimensions(self, labels: MetricLabels) -> None:
        self._metrics.add_dimensions(Model=labels.model, Variant=labels.variant)
        self._metrics.add_dimensions(Model=labels.model, Version=str(labels.version))

    def request_served(
        self, labels: MetricLabels, *, rows: int, latency_ms: float, scores: Sequence[float]
    ) -> None:
        add = self._metrics.add_metric
        self._dimensions(labels)
        add(name="Rows", unit=MetricUnit.Count, value=rows)
        add(name="Latency", unit=MetricUnit.Milliseconds, value=latency_ms)
        add(name="ValidationFailureRate", unit=MetricUnit.Percent, value=0)
        if scores:
            self._scores(labels, scores)

    def request_rejected(self, labels: MetricLabels, *, code: str) -> None:
        add = self._metrics.add_metric
        self._dimensions(labels)
        add(name="ValidationFailures", unit=MetricUnit.Count, value=1)
        add(name="ValidationFailureRate", unit=MetricUnit.Percent, value=100)
        self._metrics.add_metadata(key="error_code", value=code)

    def request_failed(self, labels: MetricLabels, *, code: str) -> None:
        add = self._metrics.add_metric
        self._dimensions(labels)
        add(name="Errors", unit=MetricUnit.Count, value=1)
        add(name="ValidationFailureRate", unit=MetricUnit.Percent, value=0)
        self._metrics.add_metadata(key="error_code", value=code)

    def capture_failed(self, labels: MetricLabels, *, rows: int) -> None:
        # Called after request_served in the same request: its dimensions apply.
        del labels
        self._metrics.add_metric(name="CaptureFailures", unit=MetricUnit.Count, value=rows)

    def _scores(self, labels: MetricLabels, scores: Sequence[float]) -> None:
        if is_metrics_disabled():
            return
        record = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self._metrics.namespace,
                        "Dimensions": [["Model", "Variant"], ["Model", "Version"]],
                        "Metrics": [{"Name": "PredictionScore", "Unit": "None"}],
                    }
                ],
            },
            "Model": labels.model,
            "Variant": labels.variant,
            "Version": str(labels.version),
            "PredictionScore": list(scores),
        }
        sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")

    def shadow_failed(self, labels: MetricLabels) -> None:
        with single_metric(
            name="ShadowFailures",
            unit=MetricUnit.Count,
            value=1,
            namespace=self._metrics.namespace,
        ) as metric:
            metric.add_dimension(name="Model", value=labels.model)
            metric.add_dimension(name="Version", value=str(labels.version))
