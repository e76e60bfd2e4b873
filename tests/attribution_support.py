"""A small explainable champion and its captured traffic, for attribution drift tests.

Logistic regression on four breast_cancer features, trained by the real pipeline (exact
linear SHAP explainer, training importance on the holdout). ``worst radius`` dominates
its importance; traffic where that feature is stuck at its training mean gives it no
attribution at all, so the ranking changes while three of the four features do not move.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import numpy as np

from flywheel.serving.capture import capture_key, encode_rows

MODEL = "cancer"
FEATURES = ["worst radius", "mean texture", "mean smoothness", "mean symmetry"]
TOP = "worst radius"


@functools.cache
def outcome() -> Any:
    """Train once per test session (about a second)."""
    from flywheel.training.config import parse_config
    from flywheel.training.trainer import train_from_config

    return train_from_config(
        parse_config(
            {
                "model": MODEL,
                "task": "classification",
                "dataset": {"source": "sklearn:breast_cancer", "features": FEATURES},
                "estimator": "logistic_regression",
                "seed": 0,
            }
        )
    )


def register_champion(registry: Any, artifacts: Any, *, explainer: bool = True) -> Any:
    """Store the model, explainer and profile; register, approve and promote version 1."""
    trained = outcome()
    model = artifacts.put(f"models/{MODEL}/1/model.onnx", trained.onnx_bytes)
    explained = (
        artifacts.put(f"models/{MODEL}/1/explainer.npz", trained.explainer_bytes)
        if explainer
        else None
    )
    profile = artifacts.put_json(
        f"models/{MODEL}/1/profile.json", trained.profile.model_dump(mode="json")
    )
    draft = trained.version_draft(model, explainer=explained, reference_profile=profile)
    version = registry.register(draft, actor="ci")
    registry.request_approval(MODEL, version.version, actor="ci")
    registry.approve(MODEL, version.version, actor="ana", reason="holdout accuracy")
    return registry.promote(MODEL, version.version, actor="ana", reason="first release")


def training_mean(feature: str) -> float:
    """The feature's mean on the training split (the linear explainer's reference)."""
    import hashlib

    from flywheel.explain.artifact import Explainer

    data = outcome().explainer_bytes
    explainer = Explainer.from_bytes(data, expected_sha256=hashlib.sha256(data).hexdigest())
    return float(explainer.arrays["linear.means"][explainer.columns.index(feature)])


def records(rows: int, *, stuck: bool = False, seed: int = 0) -> list[dict[str, float]]:
    """``rows`` records drawn from the dataset; ``stuck``: ``worst radius`` at its mean."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    x = data.data[:, [names.index(f) for f in FEATURES]]
    x = x[np.random.default_rng(seed).integers(0, len(x), rows)]
    if stuck:
        x[:, 0] = training_mean(TOP)
    return [dict(zip(FEATURES, row, strict=True)) for row in x.tolist()]


def captured(rows: list[dict[str, float]], when: datetime, *, version: int = 1) -> bytes:
    """The capture object serving writes for these records (one row each)."""
    return encode_rows(
        [
            {
                "request_id": f"req-{i}",
                "row": 0,
                "timestamp": when.isoformat(),
                "model": MODEL,
                "version": version,
                "variant": "champion",
                "features": record,
                "prediction": "benign",
                "entity_id": None,
            }
            for i, record in enumerate(rows)
        ]
    )


def capture(sink: Any, rows: list[dict[str, float]], when: datetime) -> None:
    """Put the capture object of ``rows`` in the hour partition of ``when``."""
    sink.put(capture_key(MODEL, 1, when.timestamp()), captured(rows, when))
