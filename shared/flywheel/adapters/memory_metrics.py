"""In-memory serving and gateway metrics: what the inference path and the LLM gateway
reported, for tests and benchmarks."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flywheel.gateway.metrics import CallReport
    from flywheel.serving.metrics import MetricLabels

__all__ = ["InMemoryGatewayMetrics", "InMemoryServingMetrics", "RecordedMetric"]


@dataclass(frozen=True)
class RecordedMetric:
    event: str
    labels: MetricLabels
    values: dict[str, Any] = field(default_factory=dict)


class InMemoryServingMetrics:
    """Records every call of the ``ServingMetrics`` port; thread-safe.

    Examples
    --------
    >>> from flywheel.serving.metrics import MetricLabels
    >>> metrics = InMemoryServingMetrics()
    >>> metrics.request_rejected(MetricLabels("churn", 3, "canary"), code="invalid_records")
    >>> [(m.event, m.values["code"]) for m in metrics.events]
    [('rejected', 'invalid_records')]
    """

    def __init__(self) -> None:
        self.events: list[RecordedMetric] = []
        self._lock = threading.Lock()

    def _add(self, event: str, labels: MetricLabels, **values: Any) -> None:
        with self._lock:
            self.events.append(RecordedMetric(event, labels, values))

    def request_served(
        self,
        labels: MetricLabels,
        *,
        rows: int,
        latency_ms: float,
        scores: Sequence[float],
        capture_lost: int = 0,
    ) -> None:
        self._add(
            "served",
            labels,
            rows=rows,
            latency_ms=latency_ms,
            scores=list(scores),
            capture_lost=capture_lost,
        )

    def request_rejected(self, labels: MetricLabels, *, code: str) -> None:
        self._add("rejected", labels, code=code)

    def request_failed(self, labels: MetricLabels, *, code: str) -> None:
        self._add("failed", labels, code=code)

    def shadow_failed(self, labels: MetricLabels) -> None:
        self._add("shadow_failed", labels)

    def of(self, event: str) -> list[RecordedMetric]:
        """The recorded calls of one kind."""
        with self._lock:
            return [m for m in self.events if m.event == event]


class InMemoryGatewayMetrics:
    """Records every call of the ``GatewayMetrics`` port; thread-safe.

    Examples
    --------
    >>> from flywheel.gateway.metrics import CallReport
    >>> metrics = InMemoryGatewayMetrics()
    >>> metrics.call_finished(CallReport(prompt="greet", version=1, variant="champion",
    ...                                  status=200))
    >>> [(r.prompt, r.status) for r in metrics.calls]
    [('greet', 200)]
    """

    def __init__(self) -> None:
        self.calls: list[CallReport] = []
        #: ``(prompt, version, reason)`` of each shadow call skipped.
        self.skipped: list[tuple[str, int, str]] = []
        self._lock = threading.Lock()

    def call_finished(self, report: CallReport) -> None:
        with self._lock:
            self.calls.append(report)

    def shadow_skipped(self, prompt: str, version: int, reason: str) -> None:
        with self._lock:
            self.skipped.append((prompt, version, reason))

    def of(self, variant: str) -> list[CallReport]:
        """The reports of calls answered as ``variant``."""
        with self._lock:
            return [r for r in self.calls if r.variant == variant]
