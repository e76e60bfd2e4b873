"""Scheduled drift scoring: the champion's captured traffic against its reference profile.

One run per model: read the capture partitions of the window (by hour), score every
feature against the reference profile stored with the version, measure attribution
drift on a seeded sample of the window (ADR 73), store a JSON result and an HTML report
(with the selection rates per group of the protected attribute, when the model's config
names one), and publish ``DriftDetected`` with the evidence when the dataset-level
verdict is drift or the importance ranking broke the model's ``min_ndcg``. The training
workflow's run lock turns that event into at most one retraining run (cooldown and
dedupe are audited there).
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.drift.attribution import AttributionDrift, AttributionPolicy
from flywheel.drift.profile import ReferenceProfile, text_columns
from flywheel.drift.scorer import DriftResult, PredictionDrift, score_window
from flywheel.drift.statistics import DriftPolicy
from flywheel.errors import FlywheelError, InvalidInputError
from flywheel.monitoring.attribution import RecordSample, measure_attribution_drift
from flywheel.monitoring.feedback import hourly_prefixes
from flywheel.monitoring.report import render_html
from flywheel.monitoring.runs import MonitorRun, champion_of, report_run
from flywheel.serving.capture import DEFAULT_CAPTURE_PREFIX, decode_capture
from flywheel.serving.comparison import PREDICTION_ALPHA, prediction_shift_of_scores, row_score
from flywheel.serving.service import ServedModel

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from datetime import datetime

    from numpy.typing import NDArray

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.clock import Clock
    from flywheel.drift.bias import BiasResult
    from flywheel.drift.profile import NumericProfile
    from flywheel.monitoring.policy import ProtectedAttribute
    from flywheel.registry.models import ModelVersion
    from flywheel.registry.service import RegistryService
    from flywheel.serving.capture import CaptureSource
    from flywheel.workflows.config import ModelConfigStore
    from flywheel.workflows.ports import EventPublisher

DRIFT_DETECTED = "DriftDetected"
BATCH_ROWS = 50_000
"""Captured rows decoded at a time: about 150 MB as Python objects for 30 features."""


class DriftRun(MonitorRun):
    """What one scoring run found and where its report is.

    ``drift_detected``: the run published ``DriftDetected`` (dataset drift, attribution
    drift, or both).
    """

    rows: int = 0
    drift_detected: bool = False
    share_drifted: float = 0.0
    drifted: tuple[str, ...] = ()
    #: NDCG of the window's importance ranking (``None``: not measured; see the report).
    attribution_ndcg: float | None = None
    attribution_drifted: bool = False
    result: DriftResult | None = None


class DriftMonitor:
    """Score a model's recent captured traffic for data drift.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> from flywheel.clock import FixedClock
    >>> from flywheel.composition import InMemoryPlatform
    >>> from flywheel.serving.capture import capture_key, encode_rows
    >>> from flywheel.training.config import parse_config
    >>> from flywheel.training.trainer import train_from_config
    >>> platform = InMemoryPlatform(clock=FixedClock(datetime(2026, 3, 1, 12, tzinfo=UTC)))
    >>> artifacts, registry, clock = platform.artifacts, platform.registry, platform.clock
    >>> outcome = train_from_config(parse_config({
    ...     "model": "iris", "task": "classification",
    ...     "dataset": {"source": "sklearn:iris"}, "estimator": "logistic_regression",
    ... }))
    >>> model = artifacts.put("models/iris/1/model.onnx", outcome.onnx_bytes)
    >>> profile = artifacts.put_json("models/iris/1/profile.json", outcome.profile.model_dump())
    >>> _ = registry.register(outcome.version_draft(model, reference_profile=profile), actor="ci")
    >>> _ = registry.request_approval("iris", 1, actor="ci")
    >>> _ = registry.approve("iris", 1, actor="ana", reason="holdout accuracy")
    >>> _ = registry.promote("iris", 1, actor="ana", reason="first release")
    >>> def capture(rows):  # what serving writes: one row per scored record
    ...     features = [dict(zip(outcome.input_schema.feature_names, row)) for row in rows]
    ...     body = encode_rows([{"features": f, "prediction": "setosa"} for f in features])
    ...     platform.capture.put(capture_key("iris", 1, clock.now().timestamp()), body)
    >>> monitor = DriftMonitor(registry=registry, artifacts=artifacts, capture=platform.capture,
    ...                        events=platform.events(), clock=clock)
    >>> capture(outcome.X_holdout.tolist())  # traffic like the holdout
    >>> monitor.run("iris").drift_detected
    False
    >>> _ = clock.advance(timedelta(hours=2))
    >>> capture((outcome.X_holdout * 1.5).tolist())  # every feature 50% larger
    >>> run = monitor.run("iris")
    >>> run.drift_detected, [detail_type for detail_type, _ in platform.published.events]
    (True, ['DriftDetected'])
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
        batch_rows: int = BATCH_ROWS,
        attribution: AttributionPolicy | None = None,
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
        self.batch_rows = batch_rows
        #: For models without a stored config (theirs is ``monitoring.attribution``).
        self.attribution = attribution or AttributionPolicy()

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
        attribution = self._attribution_policy(model)
        not_measured = _attribution_unavailable(version, attribution)
        stream = _CaptureStream(
            self.capture,
            self.partitions(model, champion, now, window_hours),
            reference.features,
            self._protected(model),
            self.batch_rows,
            categorical=frozenset(reference.categorical),
            text=reference.text,
            sample=(
                RecordSample(attribution.sample_rows, attribution.seed)
                if not_measured is None
                else None
            ),
        )
        window = reference.observe_batches(stream.batches())
        if window.rows < self.min_rows:
            return DriftRun(
                model=model,
                version=champion,
                status="skipped",
                reason=f"{window.rows} captured rows; at least {self.min_rows} are needed",
                rows=window.rows,
            )
        labels = {"model": model, "version": str(champion), "window_end": now.isoformat()}
        result = score_window(reference, window, self.policy, labels=labels)
        if reference.predictions is not None:
            predictions = self._prediction_drift(reference.predictions, stream.scores)
            result = result.model_copy(update={"prediction_drift": predictions})
        attributions = (
            AttributionDrift.skipped(not_measured)
            if not_measured is not None
            else self._attribution_drift(model, champion, stream, attribution)
        )
        result = result.model_copy(update={"attribution_drift": attributions})
        detected = result.drift_detected or attributions.drifted
        stamp = f"{now:%Y-%m-%dT%H%M%S}"
        base = f"{self.reports_prefix}{model}/drift/{stamp}"
        html = render_html(
            result,
            reference,
            window,
            title=f"Drift: {model} v{champion}",
            bias=self._bias(stream),
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
        if attributions.ndcg is not None:
            evidence["attribution_ndcg"] = round(attributions.ndcg, 4)
            evidence["attribution_min_ndcg"] = attributions.threshold
        evidence["reasons"] = _reasons(result, attributions)
        reported = report_run(
            self.artifacts,
            self.events,
            base=base,
            document=json.loads(result.model_dump_json()),  # inf as "Infinity"
            html=html,
            detail_type=DRIFT_DETECTED,
            evidence=evidence if detected else None,
        )
        return DriftRun(
            model=model,
            version=champion,
            status="scored",
            rows=result.current_rows,
            drift_detected=detected,
            share_drifted=result.share_drifted,
            drifted=drifted,
            attribution_ndcg=attributions.ndcg,
            attribution_drifted=attributions.drifted,
            result=result,
            **reported,
        )

    def _prediction_drift(
        self, holdout: NumericProfile, scores: list[float]
    ) -> PredictionDrift | None:
        """The window's scores against the holdout's deciles (``None``: too few scores)."""
        shift = prediction_shift_of_scores(holdout, scores, min_rows=self.min_rows)
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

    def _protected(self, model: str) -> ProtectedAttribute | None:
        stored = self.configs.find(model) if self.configs is not None else None
        return stored.config.monitoring.bias if stored is not None else None

    def _attribution_policy(self, model: str) -> AttributionPolicy:
        stored = self.configs.find(model) if self.configs is not None else None
        return stored.config.monitoring.attribution if stored is not None else self.attribution

    def _attribution_drift(
        self, model: str, version: int, stream: _CaptureStream, policy: AttributionPolicy
    ) -> AttributionDrift:
        """Explain the window's sample with the version's verified explainer (ADR 73)."""
        sample = stream.sample
        assert sample is not None
        if sample.seen < policy.min_rows:
            return AttributionDrift.skipped(
                f"{sample.seen} captured rows; at least {policy.min_rows} are needed"
            )
        try:
            served = ServedModel.load(
                self.registry.registry,
                self.artifacts,
                model,
                version,
                max_records=policy.sample_rows,
            )
            return measure_attribution_drift(served, sample, policy)
        except FlywheelError as err:  # a failed artifact check must not stop drift scoring
            return AttributionDrift.skipped(f"not measured: {err.message}")

    def _bias(self, stream: _CaptureStream) -> BiasResult | None:
        """Selection rates per group of the configured protected attribute (no labels here)."""
        if stream.attribute is None:
            return None
        try:
            return stream.attribute.measure(stream.groups, stream.predictions)
        except InvalidInputError:
            return None


def _attribution_unavailable(version: ModelVersion, policy: AttributionPolicy) -> str | None:
    """Why attribution drift cannot be measured for ``version`` (``None``: it can)."""
    if not policy.enabled:
        return "turned off in the model's config (monitoring.attribution.enabled)"
    if version.explainer is None:
        return f"version {version.version} was registered without an explainer"
    if not version.importance:
        return f"version {version.version} has no training importance to compare with"
    return None


def _reasons(result: DriftResult, attributions: AttributionDrift) -> list[str]:
    """Why the window counts as drift, one line per signal that breached."""
    reasons = []
    if result.drift_detected:
        reasons.append(
            f"dataset drift: {result.drifted_features} of {result.scored_features} features "
            f"drifted (threshold {result.policy.drift_share:.0%})"
        )
    if attributions.drifted and attributions.ndcg is not None:
        reasons.append(
            f"attribution drift: NDCG {attributions.ndcg:.3f} < {attributions.threshold:g}"
        )
    return reasons


class _CaptureStream:
    """A window's capture files as column batches of at most ``batch_rows`` rows.

    Memory holds one batch of decoded rows (a row is a few kB as Python objects, so a
    million-row window no longer needs gigabytes), plus one score per row, with a
    protected attribute its value and the prediction, and with attribution drift a
    sample of at most ``sample.size`` records.
    """

    def __init__(
        self,
        source: CaptureSource,
        prefixes: list[str],
        features: tuple[str, ...],
        attribute: ProtectedAttribute | None,
        batch_rows: int,
        *,
        categorical: frozenset[str] = frozenset(),
        text: Mapping[str, tuple[str, ...]] | None = None,
        sample: RecordSample | None = None,
    ) -> None:
        self.source, self.prefixes, self.features = source, prefixes, features
        self.sample = sample
        self.categorical = categorical
        self.text = dict(text or {})
        self.attribute, self.batch_rows = attribute, batch_rows
        self.scores: list[float] = []
        self.groups: list[Any] = []
        self.predictions: list[Any] = []

    def batches(self) -> Iterator[dict[str, NDArray[Any]]]:
        pending: list[dict[str, Any]] = []
        for prefix in self.prefixes:
            for key in self.source.keys(prefix):
                rows = decode_capture(self.source.get(key))
                self._collect(rows)
                pending.extend(rows)
                if len(pending) >= self.batch_rows:
                    yield _columns(pending, self.features, self.categorical, self.text)
                    pending = []
        if pending:
            yield _columns(pending, self.features, self.categorical, self.text)

    def _collect(self, rows: list[dict[str, Any]]) -> None:
        self.scores.extend(s for s in map(row_score, rows) if s is not None)
        if self.sample is not None:
            self.sample.offer([row["features"] for row in rows])
        if self.attribute is not None:
            name = self.attribute.attribute
            self.groups.extend(row["features"].get(name) for row in rows)
            self.predictions.extend(row.get("prediction") for row in rows)


def _columns(
    rows: list[dict[str, Any]],
    names: tuple[str, ...],
    categorical: frozenset[str] = frozenset(),
    text: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, NDArray[Any]]:
    """Feature columns of captured rows, as the model saw them: numbers, ``true`` as 1,
    ``null`` as NaN (missing); categorical features as their values (``None``: missing);
    text features as their length and share of known words."""
    features = [row["features"] for row in rows]
    derived: dict[str, NDArray[Any]] = {}
    for name, vocabulary in (text or {}).items():
        derived.update(text_columns(name, [f.get(name) for f in features], vocabulary))
    names = tuple(n for n in names if n not in derived)
    categories = {
        n: np.array([_category(f.get(n)) for f in features], dtype=object)
        for n in names
        if n in categorical
    }
    numeric = tuple(n for n in names if n not in categorical)
    try:
        matrix = np.array([[f.get(n) for n in numeric] for f in features], dtype=np.float64)
    except (TypeError, ValueError):  # a value that is no number (not from a validated request)
        return {**{n: np.array([_number(f.get(n)) for f in features]) for n in numeric},
                **categories, **derived}  # fmt: skip
    columns = np.ascontiguousarray(matrix.reshape(len(features), len(numeric)).T)
    return {**{n: columns[j] for j, n in enumerate(numeric)}, **categories, **derived}


def _category(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: Any) -> float:
    if value is None or isinstance(value, str):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
