"""Scheduled drift scoring: the champion's captured traffic against its reference profile.

One run per model: read the capture partitions of the window (by hour), score every
feature against the reference profile stored with the version, store a JSON result
and an HTML report (with the selection rates per group of the protected attribute,
when the model's config names one), and publish ``DriftDetected`` with the evidence
when the dataset-level verdict is drift. The training workflow's run lock turns that event
into at most one retraining run (cooldown and dedupe are audited there).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.drift.profile import ReferenceProfile
from flywheel.drift.report import render_html
from flywheel.drift.scorer import DriftResult, PredictionDrift, observe_window, score_window
from flywheel.drift.statistics import DriftPolicy
from flywheel.errors import InvalidInputError
from flywheel.monitoring.feedback import hourly_prefixes
from flywheel.monitoring.runs import (
    MonitorRun,
    champion_of,
    report_run,
    rows_under,
)
from flywheel.serving.capture import DEFAULT_CAPTURE_PREFIX
from flywheel.serving.comparison import PREDICTION_ALPHA, prediction_shift_from_reference

if TYPE_CHECKING:
    from datetime import datetime

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.clock import Clock
    from flywheel.drift.bias import BiasResult
    from flywheel.drift.profile import NumericProfile
    from flywheel.registry.service import RegistryService
    from flywheel.serving.capture import CaptureSource
    from flywheel.workflows.config import ModelConfigStore
    from flywheel.workflows.ports import EventPublisher

DRIFT_DETECTED = "DriftDetected"


class DriftRun(MonitorRun):
    """What one scoring run found and where its report is."""

    rows: int = 0
    drift_detected: bool = False
    share_drifted: float = 0.0
    drifted: tuple[str, ...] = ()
    result: DriftResult | None = None


class DriftMonitor:
    """Score a model's recent captured traffic for data drift.

    Examples
    --------
    >>> monitor = DriftMonitor(registry=..., artifacts=..., capture=..., events=...,
    ...                        clock=...)  # doctest: +SKIP
    >>> monitor.run("breast-cancer").drift_detected  # doctest: +SKIP
    False
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        artifacts: ArtifactStore,
        capture: CaptureSource,
        events: EventPublisher,
        clock: Clock,
        policy: DriftPolicy | None = None,
        capture_prefix: str = DEFAULT_CAPTURE_PREFIX,
        reports_prefix: str = "reports/",
        min_rows: int = 30,
        configs: ModelConfigStore | None = None,
        prediction_psi: float = 0.2,
    ) -> None:
        self.registry = registry
        self.artifacts = artifacts
        self.capture = capture
        self.events = events
        self.clock = clock
        self.policy = policy or DriftPolicy()
        self.capture_prefix = capture_prefix
        self.reports_prefix = reports_prefix
        self.min_rows = min_rows
        self.configs = configs
        self.prediction_psi = prediction_psi

    def partitions(self, model: str, version: int, now: datetime, hours: int) -> list[str]:
        """Capture prefixes of the window: the current hour and the ``hours`` before it."""
        base = f"{self.capture_prefix}model={model}/version={version}/"
        return hourly_prefixes(base, now - timedelta(hours=hours), now)

    def run(self, model: str, *, window_hours: int = 1) -> DriftRun:
        champion = champion_of(self.registry, model)
        if isinstance(champion, str):
            return DriftRun(model=model, version=None, status="skipped", reason=champion)
        version = self.registry.get_version(model, champion)
        if version.reference_profile is None:
            return DriftRun(
                model=model, version=champion, status="skipped", reason="no reference profile"
            )
        reference = ReferenceProfile.model_validate(
            self.artifacts.get_json(version.reference_profile)
        )
        now = self.clock.now()
        rows = rows_under(self.capture, self.partitions(model, champion, now, window_hours))
        if len(rows) < self.min_rows:
            return DriftRun(
                model=model,
                version=champion,
                status="skipped",
                reason=f"{len(rows)} captured rows; at least {self.min_rows} are needed",
                rows=len(rows),
            )
        columns = {
            name: np.array([_number(row["features"].get(name)) for row in rows], dtype=np.float64)
            for name in reference.features
        }
        labels = {"model": model, "version": str(champion), "window_end": now.isoformat()}
        window = observe_window(reference, columns)
        result = score_window(reference, window, self.policy, labels=labels)
        if reference.predictions is not None:
            predictions = self._prediction_drift(reference.predictions, rows)
            result = result.model_copy(update={"prediction_drift": predictions})
        stamp = f"{now:%Y-%m-%dT%H%M%S}"
        base = f"{self.reports_prefix}{model}/drift/{stamp}"
        html = render_html(
            result,
            reference,
            window,
            title=f"Drift: {model} v{champion}",
            bias=self._bias(model, rows),
        )
        drifted = tuple(f.feature for f in result.features if f.drifted)
        evidence = {
            "model_name": model,
            "version": champion,
            "share_drifted": round(result.share_drifted, 4),
            "drifted_features": list(drifted),
            "rows": result.current_rows,
        }
        if result.prediction_drift is not None:
            evidence["prediction_psi"] = result.prediction_drift.psi
        reported = report_run(
            self.artifacts,
            self.events,
            base=base,
            document=result.model_dump(mode="json"),
            html=html,
            detail_type=DRIFT_DETECTED,
            evidence=evidence if result.drift_detected else None,
        )
        return DriftRun(
            model=model,
            version=champion,
            status="scored",
            rows=result.current_rows,
            drift_detected=result.drift_detected,
            share_drifted=result.share_drifted,
            drifted=drifted,
            result=result,
            **reported,
        )

    def _prediction_drift(
        self, holdout: NumericProfile, rows: list[dict[str, Any]]
    ) -> PredictionDrift | None:
        """The window's scores against the holdout's deciles (``None``: too few scores)."""
        shift = prediction_shift_from_reference(holdout, rows, min_rows=self.min_rows)
        if shift.psi is None or shift.p_value is None:
            return None
        return PredictionDrift(
            psi=shift.psi,
            p_value=shift.p_value,
            threshold=self.prediction_psi,
            alpha=PREDICTION_ALPHA,
            drifted=shift.psi > self.prediction_psi and shift.p_value < PREDICTION_ALPHA,
            holdout_rows=shift.reference_rows,
            window_rows=shift.current_rows,
        )

    def _bias(self, model: str, rows: list[dict[str, Any]]) -> BiasResult | None:
        """Selection rates per group of the configured protected attribute (no labels here)."""
        stored = self.configs.find(model) if self.configs is not None else None
        attribute = stored.config.monitoring.bias if stored is not None else None
        if attribute is None:
            return None
        values = [row["features"].get(attribute.attribute) for row in rows]
        try:
            return attribute.measure(values, [row.get("prediction") for row in rows])
        except InvalidInputError:
            return None


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool | str):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
