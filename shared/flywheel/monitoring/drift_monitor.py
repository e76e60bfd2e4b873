"""Scheduled drift scoring: the champion's captured traffic against its reference profile.

One run per model: read the capture partitions of the window (by hour), score every
feature against the reference profile stored with the version, store a JSON result
and an HTML report, and publish ``DriftDetected`` with the evidence when the
dataset-level verdict is drift. The training workflow's run lock turns that event
into at most one retraining run (cooldown and dedupe are audited there).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from flywheel.drift.profile import ReferenceProfile
from flywheel.drift.report import render_html
from flywheel.drift.scorer import DriftResult, observe_window, score_window
from flywheel.drift.statistics import DriftPolicy
from flywheel.errors import ModelNotFoundError
from flywheel.serving.capture import DEFAULT_CAPTURE_PREFIX, decode_capture

if TYPE_CHECKING:
    from datetime import datetime

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.clock import Clock
    from flywheel.registry.service import RegistryService
    from flywheel.serving.capture import CaptureSource
    from flywheel.workflows.ports import EventPublisher

DRIFT_DETECTED = "DriftDetected"


class DriftRun(BaseModel):
    """What one scoring run found and where its report is."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int | None
    status: str  # scored | skipped
    reason: str | None = None
    rows: int = 0
    drift_detected: bool = False
    share_drifted: float = 0.0
    drifted: tuple[str, ...] = ()
    report_json: str | None = None
    report_html: str | None = None
    event_id: str | None = None
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

    def partitions(self, model: str, version: int, now: datetime, hours: int) -> list[str]:
        """Capture prefixes of the window: the current hour and the ``hours`` before it."""
        return [
            f"{self.capture_prefix}model={model}/version={version}/"
            f"date={moment:%Y-%m-%d}/hour={moment:%H}/"
            for moment in (now - timedelta(hours=h) for h in range(hours, -1, -1))
        ]

    def run(self, model: str, *, window_hours: int = 1) -> DriftRun:
        try:
            champion = self.registry.get_model(model).champion
        except ModelNotFoundError:
            return DriftRun(model=model, version=None, status="skipped", reason="not registered")
        if champion is None:
            return DriftRun(model=model, version=None, status="skipped", reason="no champion")
        version = self.registry.get_version(model, champion)
        if version.reference_profile is None:
            return DriftRun(
                model=model, version=champion, status="skipped", reason="no reference profile"
            )
        reference = ReferenceProfile.model_validate(
            self.artifacts.get_json(version.reference_profile)
        )
        now = self.clock.now()
        rows = [
            row
            for prefix in self.partitions(model, champion, now, window_hours)
            for key in self.capture.keys(prefix)
            for row in decode_capture(self.capture.get(key))
        ]
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
        result = score_window(reference, columns, self.policy, labels=labels)
        window = observe_window(reference, columns)
        stamp = f"{now:%Y-%m-%dT%H%M%S}"
        base = f"{self.reports_prefix}{model}/drift/{stamp}"
        json_ref = self.artifacts.put_json(f"{base}.json", result.model_dump(mode="json"))
        html = render_html(result, reference, window, title=f"Drift: {model} v{champion}")
        html_ref = self.artifacts.put(
            f"{base}.html", html.encode("utf-8"), content_type="text/html; charset=utf-8"
        )
        drifted = tuple(f.feature for f in result.features if f.drifted)
        event_id = None
        if result.drift_detected:
            event_id = self.events.publish(
                DRIFT_DETECTED,
                {
                    "model_name": model,
                    "version": champion,
                    "share_drifted": round(result.share_drifted, 4),
                    "drifted_features": list(drifted),
                    "rows": result.current_rows,
                    "report": html_ref.uri,
                    "result": json_ref.uri,
                },
            )
        return DriftRun(
            model=model,
            version=champion,
            status="scored",
            rows=result.current_rows,
            drift_detected=result.drift_detected,
            share_drifted=result.share_drifted,
            drifted=drifted,
            report_json=json_ref.uri,
            report_html=html_ref.uri,
            event_id=event_id,
            result=result,
        )


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool | str):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
