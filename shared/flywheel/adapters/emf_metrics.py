"""Serving metrics as CloudWatch embedded metric format: one EMF document per request.

The document written here is the one Powertools would flush (same namespace, the
dimension sets the canary alarms select on, same units), built as one dict and
serialized once instead of through ``Metrics.add_metric`` per value (ADR 21).
Powertools ``Metrics`` still owns the namespace, the ``POWERTOOLS_METRICS_DISABLED``
switch and everything off the request path.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from aws_lambda_powertools import Metrics

    from flywheel.serving.metrics import MetricLabels

__all__ = ["DIMENSION_SETS", "EmfServingMetrics", "emit_metric"]

#: Every request document carries both: ``[Model, Variant]`` is what the canary
#: alarms select on, ``[Model, Version]`` compares a version with its predecessor.
DIMENSION_SETS: list[list[str]] = [["Model", "Variant"], ["Model", "Version"]]
# One encoder for every document (json.dumps with options builds a new one per call).
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode

_UNITS = {
    "Requests": MetricUnit.Count.value,
    "Rows": MetricUnit.Count.value,
    "Latency": MetricUnit.Milliseconds.value,
    "ValidationFailures": MetricUnit.Count.value,
    "ValidationFailureRate": MetricUnit.Percent.value,
    "Errors": MetricUnit.Count.value,
    "CaptureFailures": MetricUnit.Count.value,
    "PredictionScore": MetricUnit.NoUnit.value,
}


def emit_metric(
    namespace: str,
    name: str,
    value: float,
    *,
    unit: MetricUnit,
    dimensions: dict[str, str],
    write: Callable[[str], Any] | None = None,
) -> None:
    """One metric with exactly ``dimensions`` as one EMF document.

    Powertools' ``single_metric`` adds the ``service`` dimension to every set, so an
    alarm on ``[Model, Variant]`` would never see the value; this writes the set as given.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> emit_metric("Flywheel/dev", "PredictionDrift", 0.3, unit=MetricUnit.NoUnit,
    ...             dimensions={"Model": "churn", "Variant": "canary"}, write=out.write)
    >>> doc = json.loads(out.getvalue())
    >>> doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], doc["PredictionDrift"]
    ([['Model', 'Variant']], 0.3)
    """
    if is_metrics_disabled():
        return
    document = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit.value}],
                }
            ],
        },
        **dimensions,
        name: value,
    }
    (write or sys.stdout.write)(json.dumps(document, separators=(",", ":")) + "\n")


class EmfServingMetrics:
    """The ``ServingMetrics`` port as EMF documents on stdout (CloudWatch Logs in Lambda).

    Each request writes one document with ``Requests`` = 1 (the error-rate alarm's
    denominator) and its outcome: ``Rows``/``Latency``/``PredictionScore`` (one
    value per row, up to 100) when served, ``ValidationFailures`` for a 4xx,
    ``Errors`` for a 5xx, ``ValidationFailureRate`` 0 or 100 either way.  Lost
    capture rows (``CaptureFailures``) are counted in the document of the request
    that noticed them.  Shadow failures happen on a background thread and are
    written at once (:func:`emit_metric`, dimensions ``[Model, Version]``).

    Examples
    --------
    >>> import io
    >>> from aws_lambda_powertools import Metrics
    >>> from flywheel.serving.metrics import MetricLabels
    >>> out = io.StringIO()
    >>> emf = EmfServingMetrics(Metrics(namespace="Flywheel/dev"), write=out.write)
    >>> emf.request_rejected(MetricLabels("churn", 3, "canary"), code="invalid_records")
    >>> doc = json.loads(out.getvalue())
    >>> doc["Variant"], doc["ValidationFailures"], doc["error_code"]
    ('canary', 1, 'invalid_records')
    """

    def __init__(self, metrics: Metrics, *, write: Callable[[str], Any] | None = None) -> None:
        self._metrics = metrics
        self._write = write if write is not None else sys.stdout.write
        self._disabled = is_metrics_disabled()
        self._directives: dict[tuple[str, ...], str] = {}

    @property
    def namespace(self) -> str:
        return str(self._metrics.namespace)

    def request_served(
        self,
        labels: MetricLabels,
        *,
        rows: int,
        latency_ms: float,
        scores: Sequence[float],
        capture_lost: int = 0,
    ) -> None:
        values: dict[str, Any] = {
            "Requests": 1,
            "Rows": rows,
            "Latency": latency_ms,
            "ValidationFailureRate": 0,
        }
        if scores:
            values["PredictionScore"] = list(scores)
        if capture_lost:
            values["CaptureFailures"] = capture_lost
        self._emit(labels, values)

    def request_rejected(self, labels: MetricLabels, *, code: str) -> None:
        values = {"Requests": 1, "ValidationFailures": 1, "ValidationFailureRate": 100}
        self._emit(labels, values, error_code=code)

    def request_failed(self, labels: MetricLabels, *, code: str) -> None:
        values = {"Requests": 1, "Errors": 1, "ValidationFailureRate": 0}
        self._emit(labels, values, error_code=code)

    def shadow_failed(self, labels: MetricLabels) -> None:
        if self._disabled:
            return
        emit_metric(
            self.namespace,
            "ShadowFailures",
            1,
            unit=MetricUnit.Count,
            dimensions={"Model": labels.model, "Version": str(labels.version)},
            write=self._write,
        )

    def _emit(self, labels: MetricLabels, values: dict[str, Any], **metadata: str) -> None:
        if self._disabled:
            return
        names = tuple(values)
        directive = self._directives.get(names)
        if directive is None:  # one per outcome shape: serialized once per environment
            directive = json.dumps(
                [
                    {
                        "Namespace": self._metrics.namespace,
                        "Dimensions": DIMENSION_SETS,
                        "Metrics": [{"Name": name, "Unit": _UNITS[name]} for name in names],
                    }
                ],
                separators=(",", ":"),
            )
            self._directives[names] = directive
        members = _COMPACT(
            {
                "Model": labels.model,
                "Variant": labels.variant,
                "Version": str(labels.version),
                **values,
                **metadata,
            }
        )
        stamp = int(time.time() * 1000)
        self._write(
            f'{{"_aws":{{"Timestamp":{stamp},"CloudWatchMetrics":{directive}}},{members[1:]}\n'
        )
