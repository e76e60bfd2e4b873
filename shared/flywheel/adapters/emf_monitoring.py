"""Per-feature drift metrics as CloudWatch embedded metric format (EMF) documents.

A dimension value is one member of an EMF document, so metrics with a ``Feature``
dimension need one document per feature. Each document stays well inside EMF's
limits (at most 100 metrics and 30 dimensions per document: metrics are split into
documents of at most :data:`MAX_METRICS` when there are more), and they are written
to stdout in one batch at the end of a run, next to the handler's own Powertools
metrics.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from flywheel.drift.scorer import FeatureDrift

__all__ = [
    "MAX_DIMENSIONS",
    "MAX_METRICS",
    "emf_documents",
    "feature_drift_documents",
    "write_documents",
]

MAX_METRICS = 100
MAX_DIMENSIONS = 30


def emf_documents(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, tuple[float, str]],
    *,
    properties: Mapping[str, Any] | None = None,
    timestamp_ms: int | None = None,
) -> list[dict[str, Any]]:
    """EMF documents for ``metrics`` (name -> (value, unit)) under one dimension set.

    Examples
    --------
    >>> docs = emf_documents("NS", {"Model": "m"}, {f"M{i}": (i, "Count") for i in range(150)})
    >>> [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in docs]
    [100, 50]
    """
    if len(dimensions) > MAX_DIMENSIONS:
        raise ValueError(f"EMF allows at most {MAX_DIMENSIONS} dimensions per set")
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    names = list(metrics)
    documents = []
    for start in range(0, len(names), MAX_METRICS):
        chunk = names[start : start + MAX_METRICS]
        documents.append(
            {
                "_aws": {
                    "Timestamp": stamp,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": namespace,
                            "Dimensions": [list(dimensions)],
                            "Metrics": [{"Name": n, "Unit": metrics[n][1]} for n in chunk],
                        }
                    ],
                },
                **(properties or {}),
                **dimensions,
                **{n: metrics[n][0] for n in chunk},
            }
        )
    return documents


def feature_drift_documents(
    namespace: str, model: str, version: int | None, features: Sequence[FeatureDrift]
) -> list[dict[str, Any]]:
    """One document per scored feature: ``DriftScore`` (the verdict's statistic),
    ``FeatureDrifted`` (0/1) and the distances computed for it, dimensions
    ``[Model, Feature]``; version, method and threshold ride along as properties.

    Examples
    --------
    >>> import numpy as np
    >>> from flywheel.drift.profile import build_profile
    >>> from flywheel.drift.scorer import score_window
    >>> ref = build_profile(np.arange(1000.0).reshape(-1, 1), ["x"])
    >>> result = score_window(ref, {"x": np.arange(500.0, 1500.0)})
    >>> doc = feature_drift_documents("NS", "m", 1, result.features)[0]
    >>> doc["Feature"], doc["FeatureDrifted"], doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    ('x', 1, [['Model', 'Feature']])
    """
    documents = []
    for feature in features:
        if feature.score is None or feature.method is None or not math.isfinite(feature.score):
            continue  # insufficient data or disabled: nothing was measured
        stats = feature.statistics
        metrics: dict[str, tuple[float, str]] = {
            "DriftScore": (feature.score, "None"),
            "FeatureDrifted": (int(feature.drifted), "Count"),
        }
        for name, value in (
            ("PSI", stats.psi),
            ("Wasserstein", stats.wasserstein),
            ("JensenShannon", stats.jensen_shannon),
            ("KsStatistic", stats.ks_statistic),
        ):
            if value is not None and math.isfinite(value):
                metrics[name] = (value, "None")
        documents += emf_documents(
            namespace,
            {"Model": model, "Feature": feature.feature},
            metrics,
            properties={
                "Version": str(version),
                "Method": feature.method.value,
                "Threshold": feature.threshold,
            },
        )
    return documents


def write_documents(documents: Sequence[Mapping[str, Any]], stream: TextIO | None = None) -> int:
    """Write EMF documents, one JSON line each (none when Powertools metrics are disabled)."""
    if is_metrics_disabled():
        return 0
    out = stream or sys.stdout
    for document in documents:
        out.write(json.dumps(document, separators=(",", ":"), allow_nan=False) + "\n")
    return len(documents)
