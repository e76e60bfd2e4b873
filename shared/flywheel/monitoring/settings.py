"""Settings of the monitoring functions (feedback intake, drift scorer, performance monitor,
LLM quality monitor)."""

from __future__ import annotations

from pydantic import Field

from flywheel.monitoring.feedback import DEFAULT_LABELS_PREFIX
from flywheel.serving.capture import DEFAULT_CAPTURE_PREFIX
from flywheel.settings import Settings

__all__ = ["MonitoringSettings"]


class MonitoringSettings(Settings):
    """``FLYWHEEL_*`` variables the monitoring constructs set (``infra/constructs``).

    Examples
    --------
    >>> MonitoringSettings(backend="local", models=["churn"]).labels_prefix
    'labels/'
    """

    #: Monitors put ``DriftDetected`` / ``PerformanceDegraded`` with this source.
    event_source: str = "flywheel.monitoring"
    #: The models a scheduled run covers (JSON in ``FLYWHEEL_MODELS``).
    models: list[str] = Field(default_factory=list)
    capture_prefix: str = DEFAULT_CAPTURE_PREFIX
    labels_prefix: str = DEFAULT_LABELS_PREFIX
    reports_prefix: str = "reports/"
    #: PSI above which the champion's scores moved from its holdout's (with p < 0.01).
    prediction_psi: float = Field(default=0.2, gt=0)
    #: The prompts the LLM quality monitor covers (JSON in ``FLYWHEEL_PROMPTS``).
    prompts: list[str] = Field(default_factory=list)
