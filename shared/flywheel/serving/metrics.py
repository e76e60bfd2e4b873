"""What the inference path measures (the port), and the numbers it reports.

Every request produces metrics labelled with the model, its version and the
variant that answered, so a canary is compared with its champion and a version
with its predecessor.  The metrics are listed under Notes (CloudWatch namespace
``Flywheel/<stage>``, dimension sets ``[Model, Variant]`` and ``[Model, Version]``).

Notes
-----
==========================  =========  ================================================
metric                      unit       meaning
==========================  =========  ================================================
``Requests``                Count      1 per request, whatever its outcome (the error
                                       rate's denominator)
``Rows``                    Count      records scored
``Latency``                 ms         validate + predict + capture hand-off
``ValidationFailures``      Count      requests refused with a 4xx (schema, size)
``ValidationFailureRate``   Percent    0 or 100 per request: ``Average`` is the rate,
                                       ``SampleCount`` the number of requests
``Errors``                  Count      requests that failed with a 5xx
``PredictionScore``         None       one value per row (see :func:`scores`):
                                       the distribution a drift check compares
``CaptureFailures``         Count      captured rows lost (write failed, buffer full)
``ShadowFailures``          Count      shadow scorings that failed or were skipped
==========================  =========  ================================================

Examples
--------
>>> labels = MetricLabels(model="churn", version=3, variant="canary")
>>> labels.version
3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from flywheel.drift.profile import score_column
from flywheel.registry.models import Task

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flywheel.serving.predictor import Prediction

__all__ = ["MAX_SCORES_PER_REQUEST", "MetricLabels", "ServingMetrics", "scores"]

#: CloudWatch EMF takes at most 100 values per metric in one record.
MAX_SCORES_PER_REQUEST = 100


@dataclass(frozen=True, slots=True)
class MetricLabels:
    """The dimensions of one request's metrics."""

    model: str
    version: int
    variant: str


class ServingMetrics(Protocol):
    """Where the inference path reports (the port): CloudWatch EMF, or memory in tests."""

    def request_served(
        self,
        labels: MetricLabels,
        *,
        rows: int,
        latency_ms: float,
        scores: Sequence[float],
        capture_lost: int = 0,
    ) -> None:
        """A request was answered with predictions; ``capture_lost`` captured rows were lost
        since the previous report (a capture failure never fails the request)."""
        ...

    def request_rejected(self, labels: MetricLabels, *, code: str) -> None:
        """A request was refused with a 4xx (``code`` is the error code)."""
        ...

    def request_failed(self, labels: MetricLabels, *, code: str) -> None:
        """A request failed with a 5xx."""
        ...

    def shadow_failed(self, labels: MetricLabels) -> None:
        """A shadow scoring failed or was skipped (called from a background thread)."""
        ...


def scores(prediction: Prediction) -> list[float]:
    """One number per row, at most :data:`MAX_SCORES_PER_REQUEST`.

    Regressors: the predicted value.  Binary classifiers: the probability of the
    second (positive) class.  Multi-class: the top probability (confidence).
    Classifiers without probabilities: the index of the predicted class.

    Examples
    --------
    >>> import numpy as np
    >>> from flywheel.serving.predictor import Prediction
    >>> scores(Prediction(task=Task.REGRESSION, values=np.array([2.5, 3.0])))
    [2.5, 3.0]
    >>> scores(Prediction(
    ...     task=Task.CLASSIFICATION, labels=("b",), classes=("a", "b"),
    ...     probabilities=np.array([[0.25, 0.75]]),
    ... ))
    [0.75]
    """
    if prediction.task is Task.REGRESSION and prediction.values is not None:
        return prediction.values[:MAX_SCORES_PER_REQUEST].tolist()  # type: ignore[no-any-return]
    probabilities = prediction.probabilities
    if probabilities is not None:
        return score_column(probabilities[:MAX_SCORES_PER_REQUEST]).tolist()  # type: ignore[no-any-return]
    index = {c: float(i) for i, c in enumerate(prediction.classes)}
    return [index.get(label, -1.0) for label in prediction.labels[:MAX_SCORES_PER_REQUEST]]
