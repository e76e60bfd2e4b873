"""Re-train a registered version from its lineage and say how closely it came back.

Byte stability (measured with scikit-learn 1.9.1, skl2onnx 1.20.0, onnx 1.23.2,
onnxruntime 1.32.0, numpy 2.4.6, on breast_cancer, wine and diabetes, two runs
per estimator and precision): the ONNX bytes are identical across runs for every
estimator and precision, LightGBM 4.7.0 and XGBoost 3.2.0 (one thread) included.
Two things make that so: skl2onnx names its graph with a random UUID, which
:func:`~flywheel.training.conversion.convert_to_onnx` replaces with a fixed
name, and the ONNX metadata carries no run id or clock.  The same seed, data and
library set therefore give the same ``onnx_sha256``; a different library set can
change the bytes (and, for gradient-boosted models, the numbers), which the report
shows through ``environment_match`` and ``library_version_diffs``.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from flywheel.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    FlywheelError,
    TrainingError,
)
from flywheel.models import Frozen
from flywheel.training.config import parse_config
from flywheel.training.conversion import onnx_outputs
from flywheel.training.lineage import dependency_lock_hash, library_versions
from flywheel.training.trainer import TrainingOutcome, load_configured_dataset, train

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from flywheel.registry.models import VersionDraft
    from flywheel.training.datasets import Dataset

DEFAULT_TOLERANCE = 1e-9


class MetricDiff(Frozen):
    """One metric, before and after (``None`` when a side lacks it)."""

    original: float | None
    reproduced: float | None
    abs_diff: float | None


class ReproduceReport(Frozen):
    """How a re-trained model compares with the registered one.

    ``reproduced`` is the verdict: same data, metrics within tolerance, and ONNX
    outputs within tolerance on the holdout.  Byte-identical ONNX is reported
    but not required (a different library set may serialise differently).
    """

    model: str
    original_run_id: str
    reproduced_run_id: str
    tolerance: float
    metrics_match: bool
    metric_diffs: dict[str, MetricDiff]
    predictions_match: bool
    max_prediction_diff: float
    labels_match: bool | None = None
    holdout_rows: int
    onnx_sha256_match: bool
    original_onnx_sha256: str
    reproduced_onnx_sha256: str
    dataset_sha256_match: bool
    environment_match: bool
    library_version_diffs: dict[str, tuple[str, str]] = Field(default_factory=dict)
    code_commit_original: str | None = None

    @property
    def reproduced(self) -> bool:
        return self.dataset_sha256_match and self.metrics_match and self.predictions_match


def _metric_diffs(
    original: Mapping[str, float], reproduced: Mapping[str, float]
) -> dict[str, MetricDiff]:
    diffs: dict[str, MetricDiff] = {}
    for name in sorted(set(original) | set(reproduced)):
        a, b = original.get(name), reproduced.get(name)
        diff = abs(a - b) if a is not None and b is not None else None
        diffs[name] = MetricDiff(original=a, reproduced=b, abs_diff=diff)
    return diffs


def _within(diff: float | None, tolerance: float) -> bool:
    return diff is not None and not math.isnan(diff) and diff <= tolerance


def reproduce(
    version: VersionDraft,
    onnx_bytes: bytes | None = None,
    *,
    fetch: Callable[[str], bytes] | None = None,
    dataset: Dataset | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    run_id: str | None = None,
) -> ReproduceReport:
    """Re-train ``version`` from ``version.lineage`` and compare with the original.

    Parameters
    ----------
    version
        The registered version (a ``ModelVersion`` or its draft): its lineage
        carries the training config, the seed and the dataset hash; its metrics
        are the originals.
    onnx_bytes
        The registered ONNX bytes (default: ``fetch(version.artifact.uri)``);
        checked against ``version.artifact.sha256`` either way.
    fetch
        Reads ``s3://`` datasets (and the artifact when ``onnx_bytes`` is not given).
    dataset
        Use this data instead of loading ``lineage.training_config.dataset`` (which,
        for a version trained from a feature view, names the joined snapshot).
    tolerance
        Largest absolute difference accepted for each metric and ONNX output.
    run_id
        Run id of the re-training.

    Raises
    ------
    ArtifactIntegrityError
        The ONNX bytes are not the registered artifact.
    ArtifactNotFoundError
        No ``onnx_bytes`` and no ``fetch`` to read the artifact with.
    ParityError
        The re-trained model fails its own parity check.
    ConfigError
        The stored training config no longer validates.
    TrainingError
        The version was imported as ONNX: there is nothing to re-train.

    Examples
    --------
    >>> from flywheel.registry.models import ArtifactRef
    >>> from flywheel.training.trainer import train_from_config
    >>> from flywheel.training.config import parse_config
    >>> outcome = train_from_config(parse_config({
    ...     "model": "wine", "task": "classification",
    ...     "dataset": {"source": "sklearn:wine"}, "estimator": "gradient_boosting",
    ...     "hyperparameters": {"n_estimators": 10}, "seed": 3,
    ... }))
    >>> draft = outcome.version_draft(ArtifactRef(
    ...     uri="memory://wine/1.onnx", sha256=outcome.onnx_sha256,
    ...     size_bytes=len(outcome.onnx_bytes),
    ... ))
    >>> report = reproduce(draft, outcome.onnx_bytes)
    >>> (report.reproduced, report.onnx_sha256_match, report.max_prediction_diff)
    (True, True, 0.0)
    """
    lineage = version.lineage
    if not lineage.reproducible:
        raise TrainingError(
            f"lineage: version {getattr(version, 'version', '?')} of {version.name!r} was "
            "imported as ONNX (flywheel register): its training data, code and seed are "
            "unknown, so it cannot be re-trained",
            field="lineage",
        )
    if onnx_bytes is None:
        if fetch is None:
            raise ArtifactNotFoundError(
                "onnx_bytes: pass the registered ONNX bytes or a fetch function to read "
                f"{version.artifact.uri}",
                field="onnx_bytes",
            )
        onnx_bytes = fetch(version.artifact.uri)
    original_sha = hashlib.sha256(onnx_bytes).hexdigest()
    if original_sha != version.artifact.sha256:
        raise ArtifactIntegrityError(
            "onnx_bytes: the bytes do not match the registered artifact's SHA-256",
            field="onnx_bytes",
        )
    config = parse_config({**lineage.training_config, "seed": lineage.random_seed})
    if config.search is not None and lineage.search is not None:
        # The same trials as recorded, whatever the time budget allows today.
        pinned = {"max_trials": int(lineage.search["trials"]), "max_minutes": None}
        config = config.model_copy(update={"search": config.search.model_copy(update=pinned)})
    if dataset is None:
        dataset = load_configured_dataset(config, fetch=fetch)
    outcome: TrainingOutcome = train(
        config, dataset, run_id=run_id, feature_view=lineage.feature_view
    )

    metric_diffs = _metric_diffs(version.metrics, outcome.metrics)
    metrics_match = all(_within(d.abs_diff, tolerance) for d in metric_diffs.values())

    labels_match: bool | None = None
    try:
        before = onnx_outputs(onnx_bytes, outcome.X_holdout, task=config.task)
        after = onnx_outputs(outcome.onnx_bytes, outcome.X_holdout, task=config.task)
    except FlywheelError:
        max_diff = math.inf
    else:
        if before.values.shape != after.values.shape:
            max_diff = math.inf
        else:
            diff = np.abs(before.values - after.values)
            max_diff = float(diff.max()) if diff.size else 0.0
            if math.isnan(max_diff):
                max_diff = math.inf
        if before.labels is not None and after.labels is not None:
            labels_match = bool(np.array_equal(before.labels, after.labels))

    current_versions = library_versions()
    version_diffs = {
        name: (lineage.library_versions.get(name, "unknown"), current_versions.get(name, "unknown"))
        for name in sorted(set(lineage.library_versions) | set(current_versions))
        if lineage.library_versions.get(name) != current_versions.get(name)
    }
    return ReproduceReport(
        model=version.name,
        original_run_id=lineage.training_run_id,
        reproduced_run_id=outcome.run_id,
        tolerance=tolerance,
        metrics_match=metrics_match,
        metric_diffs=metric_diffs,
        predictions_match=_within(max_diff, tolerance) and labels_match is not False,
        max_prediction_diff=max_diff,
        labels_match=labels_match,
        holdout_rows=outcome.n_holdout,
        onnx_sha256_match=outcome.onnx_sha256 == original_sha,
        original_onnx_sha256=original_sha,
        reproduced_onnx_sha256=outcome.onnx_sha256,
        dataset_sha256_match=dataset.sha256 == lineage.dataset_sha256,
        environment_match=dependency_lock_hash() == lineage.dependency_lock_hash,
        library_version_diffs=version_diffs,
        code_commit_original=lineage.code_commit,
    )
