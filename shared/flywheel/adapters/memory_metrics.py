"""In-memory serving metrics: what the inference path reported, for tests and benchmarks."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flywheel.serving.metrics import MetricLabels

__all__ = ["InMemoryServingMetrics", "RecordedMetric"]


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
