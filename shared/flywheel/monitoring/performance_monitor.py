"""Scheduled performance monitoring: the champion's predictions joined with delayed labels.

One run per model: read the champion's captured predictions of the window (the last
``monitoring.window_hours`` hours), read the labels received since the window began
(``POST /v1/feedback``), join them by request id and row, compute the window's
metrics and label coverage, compare the configured metric with the version's holdout
baseline (:class:`~flywheel.monitoring.performance.PerformancePolicy`), measure group
fairness on the protected attribute when one is configured, store a JSON result and an
HTML report under ``reports/<model>/performance/``, and publish ``PerformanceDegraded``
with the evidence when the model degraded. The training workflow's run lock turns that
event into at most one retraining run, exactly like ``DriftDetected`` (cooldown,
deduplication and the one-run-at-a-time rule, each trigger audited).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.drift.bias import BiasResult  # noqa: TC001 (a field of a pydantic model)
from flywheel.errors import ConfigError, InvalidInputError
from flywheel.monitoring.feedback import (
    DEFAULT_LABELS_PREFIX,
    hourly_prefixes,
    label_key,
    read_labels,
)
from flywheel.monitoring.performance import (
    PerformanceResult,
    evaluate_performance,
    join_labels,
    measure_window,
)
from flywheel.monitoring.policy import MonitoringPolicy
from flywheel.monitoring.report import render_performance_html
from flywheel.monitoring.runs import MonitorRun, champion_of, report_run
from flywheel.registry.models import Task
from flywheel.serving.capture import DEFAULT_CAPTURE_PREFIX, decode_capture

if TYPE_CHECKING:
    from datetime import datetime

    from numpy.typing import NDArray

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.clock import Clock
    from flywheel.registry.models import ModelVersion
    from flywheel.registry.service import RegistryService
    from flywheel.serving.capture import CaptureSource
    from flywheel.workflows.config import ModelConfigStore
    from flywheel.workflows.ports import EventPublisher

__all__ = ["PERFORMANCE_DEGRADED", "PerformanceMonitor", "PerformanceRun"]

PERFORMANCE_DEGRADED = "PerformanceDegraded"
#: Published when a monitored window breaks the model's bias policy.
BIAS_VIOLATION = "BiasViolation"
#: The metric watched when a model has no config at all.
DEFAULT_METRIC = {Task.CLASSIFICATION: "accuracy", Task.REGRESSION: "rmse"}


class PerformanceRun(MonitorRun):
    """What one monitoring run found and where its report is."""

    window_start: str | None = None
    window_end: str | None = None
    predictions: int = 0
    labelled: int = 0
    label_coverage: float = 0.0
    verdict: str | None = None
    degraded: bool = False
    metric: str | None = None
    value: float | None = None
    baseline: float | None = None
    metrics: dict[str, float] = {}
    performance: PerformanceResult | None = None
    bias: BiasResult | None = None
    #: The window broke the model's bias policy (``BiasViolation`` was published).
    bias_violation: bool = False
    bias_event_id: str | None = None


class PerformanceMonitor:
    """Measure a model's recent predictions against the labels that came back.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from flywheel.clock import FixedClock
    >>> from flywheel.composition import InMemoryPlatform
    >>> from flywheel.monitoring.feedback import FeedbackRequest, FeedbackService
    >>> from flywheel.serving.capture import capture_key, encode_rows
    >>> from flywheel.training.config import parse_config
    >>> from flywheel.training.datasets import load_dataset
    >>> from flywheel.training.trainer import train_from_config
    >>> platform = InMemoryPlatform(clock=FixedClock(datetime(2026, 3, 1, 12, tzinfo=UTC)))
    >>> registry, clock = platform.registry, platform.clock
    >>> outcome = train_from_config(parse_config({
    ...     "model": "iris", "task": "classification",
    ...     "dataset": {"source": "sklearn:iris"}, "estimator": "logistic_regression",
    ... }))
    >>> ref = platform.artifacts.put("models/iris/1/model.onnx", outcome.onnx_bytes)
    >>> _ = registry.register(outcome.version_draft(ref), actor="ci")
    >>> _ = registry.request_approval("iris", 1, actor="ci")
    >>> _ = registry.approve("iris", 1, actor="ana", reason="holdout accuracy")
    >>> _ = registry.promote("iris", 1, actor="ana", reason="first release")
    >>> data = load_dataset("sklearn:iris")
    >>> predicted = outcome.estimator.predict(data.X)  # what the champion answered
    >>> rows = [{"request_id": f"r{i}", "row": 0, "prediction": p} for i, p in enumerate(predicted)]
    >>> platform.capture.put(capture_key("iris", 1, clock.now().timestamp()), encode_rows(rows))
    >>> feedback = FeedbackService(registry=registry, claims=platform.label_claims,
    ...                            sink=platform.capture, clock=clock)
    >>> truth = [{"request_id": f"r{i}", "label": data.classes[y]} for i, y in enumerate(data.y)]
    >>> for start in range(0, len(truth), 100):  # at most 100 labels a request
    ...     _ = feedback.submit(FeedbackRequest(model="iris", labels=truth[start:start + 100]))
    >>> monitor = PerformanceMonitor(
    ...     registry=registry, configs=None, artifacts=platform.artifacts, capture=platform.capture,
    ...     labels=platform.capture, events=platform.events(), clock=clock,
    ... )
    >>> run = monitor.run("iris")
    >>> run.verdict, run.labelled, run.metric, run.value
    ('ok', 150, 'accuracy', 0.96)
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        configs: ModelConfigStore | None,
        artifacts: ArtifactStore,
        capture: CaptureSource,
        labels: CaptureSource,
        events: EventPublisher,
        clock: Clock,
        capture_prefix: str = DEFAULT_CAPTURE_PREFIX,
        labels_prefix: str = DEFAULT_LABELS_PREFIX,
        reports_prefix: str = "reports/",
    ) -> None:
        self.registry = registry
        self.configs = configs
        self.artifacts = artifacts
        self.capture = capture
        self.labels = labels
        self.events = events
        self.clock = clock
        self.capture_prefix = capture_prefix
        self.labels_prefix = labels_prefix
        self.reports_prefix = reports_prefix

    def run(self, model: str) -> PerformanceRun:
        champion = champion_of(self.registry, model)
        if isinstance(champion, str):
            return PerformanceRun(model=model, version=None, status="skipped", reason=champion)
        version = self.registry.get_version(model, champion)
        policy, gate_metric = self._policy(model, version)
        rule = policy.performance_rule(gate_metric)
        end = self.clock.now()
        start = end - timedelta(hours=policy.window_hours)
        window = {"window_start": start.isoformat(), "window_end": end.isoformat()}
        attribute = policy.bias.attribute if policy.bias is not None else None
        rows = self._predictions(model, champion, start, end, attribute)
        truth = self._joined_labels(model, version, rows, start, end)
        predicted = np.array([row.get("prediction") for row in rows], dtype=object)
        schema = version.output_schema
        measured = measure_window(
            schema.task,
            truth,
            predicted if schema.task is Task.CLASSIFICATION else predicted.astype(np.float64),
            _scores(rows, schema.classes) if schema.task is Task.CLASSIFICATION else None,
            classes=schema.classes or None,
            interval_metric=rule.metric,
        )
        try:
            result = evaluate_performance(measured, version.metrics, rule)
        except ConfigError as err:
            return PerformanceRun(
                model=model, version=champion, status="skipped", reason=err.message, **window
            )
        bias = None
        if policy.bias is not None and rows:
            values = [row.get("features", {}).get(policy.bias.attribute) for row in rows]
            try:
                bias = policy.bias.measure(values, predicted, truth)
            except InvalidInputError:
                bias = None  # e.g. the reference group has too few rows in this window
        base = f"{self.reports_prefix}{model}/performance/{end:%Y-%m-%dT%H%M%S}"
        document = {
            "model": model,
            "version": champion,
            **window,
            "performance": result.model_dump(mode="json"),
            "bias": bias.model_dump(mode="json") if bias is not None else None,
        }
        html = render_performance_html(
            result, bias=bias, title=f"Performance: {model} v{champion}", labels=window
        )
        evidence = {
            "model_name": model,
            "version": champion,
            "metric": result.metric,
            "value": result.value,
            "baseline": result.baseline,
            "relative_drop": result.relative_drop,
            "reasons": list(result.reasons),
            "labelled": measured.labelled,
            "label_coverage": round(measured.label_coverage, 4),
            **window,
        }
        reported = report_run(
            self.artifacts,
            self.events,
            base=base,
            document=document,
            html=html,
            detail_type=PERFORMANCE_DEGRADED,
            evidence=evidence if result.degraded else None,
        )
        bias_event_id = None
        if bias is not None and not bias.passed:
            bias_event_id = self.events.publish(
                BIAS_VIOLATION,
                {
                    "model_name": model,
                    "version": champion,
                    "attribute": bias.attribute,
                    "violations": list(bias.violations),
                    "demographic_parity_difference": bias.demographic_parity_difference,
                    "disparate_impact_ratio": bias.disparate_impact_ratio,
                    "equal_opportunity_difference": bias.equal_opportunity_difference,
                    "report": reported["report_html"],
                    **window,
                },
            )
        return PerformanceRun(
            model=model,
            version=champion,
            status="scored",
            bias_violation=bias is not None and not bias.passed,
            bias_event_id=bias_event_id,
            **window,
            predictions=measured.predictions,
            labelled=measured.labelled,
            label_coverage=measured.label_coverage,
            verdict=str(result.verdict),
            degraded=result.degraded,
            metric=result.metric,
            value=result.value,
            baseline=result.baseline,
            metrics=measured.metrics,
            performance=result,
            bias=bias,
            **reported,
        )

    def _policy(self, model: str, version: ModelVersion) -> tuple[MonitoringPolicy, str]:
        stored = self.configs.find(model) if self.configs is not None else None
        if stored is None:
            return MonitoringPolicy(), DEFAULT_METRIC[version.output_schema.task]
        return stored.config.monitoring, stored.config.gate.metric

    def _predictions(
        self, model: str, version: int, start: datetime, end: datetime, attribute: str | None
    ) -> list[dict[str, Any]]:
        """The window's served predictions, one capture file at a time, each row cut down
        to what the join, the metrics and the bias check read: a window of 6 to 24 hours
        holds millions of rows, and a full row (every feature) is a few kB as objects."""
        base = f"{self.capture_prefix}model={model}/version={version}/"
        kept: list[dict[str, Any]] = []
        for prefix in hourly_prefixes(base, start, end):
            for key in self.capture.keys(prefix):
                for row in decode_capture(self.capture.get(key)):
                    if row.get("variant") == "shadow" or row.get("prediction") is None:
                        continue
                    slim = {
                        "request_id": row["request_id"],
                        "row": row["row"],
                        "prediction": row["prediction"],
                        "probabilities": row.get("probabilities"),
                    }
                    if attribute is not None:
                        slim["features"] = {attribute: (row.get("features") or {}).get(attribute)}
                    kept.append(slim)
        return kept

    def _joined_labels(
        self,
        model: str,
        version: ModelVersion,
        rows: list[dict[str, Any]],
        start: datetime,
        end: datetime,
    ) -> NDArray[Any]:
        received = read_labels(self.labels, model, start, end, prefix=self.labels_prefix)
        requests = np.array([label_key(r["request_id"], int(r["row"])) for r in rows], dtype=str)
        ids = np.array([label_key(r["request_id"], int(r["row"])) for r in received], dtype=str)
        joined = join_labels(requests, ids, [r["label"] for r in received])
        classes = set(version.output_schema.classes)
        classifier = version.output_schema.task is Task.CLASSIFICATION
        # A label the champion cannot have produced (sent for an older version) is unusable.
        for i, value in enumerate(joined):
            if value is None:
                continue
            if classifier:
                joined[i] = str(value) if str(value) in classes else None
            else:
                usable = isinstance(value, int | float) and not isinstance(value, bool)
                joined[i] = float(value) if usable else None
        return joined


def _scores(rows: list[dict[str, Any]], classes: tuple[str, ...]) -> NDArray[np.float64] | None:
    """Class probabilities in ``classes`` order, or ``None`` unless every row has them."""
    if not rows or not classes:
        return None
    matrix = np.empty((len(rows), len(classes)), dtype=np.float64)
    for i, row in enumerate(rows):
        probabilities = row.get("probabilities")
        if not isinstance(probabilities, dict) or any(c not in probabilities for c in classes):
            return None
        matrix[i] = [float(probabilities[c]) for c in classes]
    return matrix
