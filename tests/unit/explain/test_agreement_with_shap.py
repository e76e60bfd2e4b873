"""Exact explanations agree with shap (dev-only) on the bundled datasets and estimators.

Attributions match ``shap.TreeExplainer`` / ``shap.LinearExplainer`` to 1e-6, and
``base + Σφ`` equals the served ONNX model's output in the documented space to 1e-9.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from flywheel.training.config import parse_config
from flywheel.training.datasets import load_dataset
from flywheel.training.explainers import build_explainer
from flywheel.training.trainer import train

shap = pytest.importorskip("shap")
os.environ.setdefault("OMP_NUM_THREADS", "1")

TREES = ["random_forest", "gradient_boosting", "hist_gradient_boosting", "lightgbm", "xgboost"]
LINEAR = {"classification": ["logistic_regression"], "regression": ["linear_regression", "ridge"]}
DATASETS = {
    "sklearn:breast_cancer": "classification",
    "sklearn:iris": "classification",
    "sklearn:wine": "classification",
    "sklearn:diabetes": "regression",
}
SMALL = {"random_forest": {"n_estimators": 20}, "gradient_boosting": {"n_estimators": 30}}


def _cases() -> list[tuple[str, str]]:
    return [
        (source, estimator)
        for source, task in DATASETS.items()
        for estimator in TREES + LINEAR[task]
    ]


def _trained(source: str, estimator: str):
    config = parse_config(
        {
            "model": "explained",
            "task": DATASETS[source],
            "dataset": {"source": source},
            "estimator": estimator,
            "hyperparameters": SMALL.get(estimator, {}),
        }
    )
    return train(config, load_dataset(source))


def _model_output(outcome, x: np.ndarray, space: str) -> np.ndarray:
    """The model's output in the explanation's space (parity ties it to the ONNX model).

    Margins come from the model itself: recovering them from probabilities near 0 or 1
    would lose more than the 1e-9 being checked.
    """
    fitted = outcome.estimator
    if space in ("value", "log_value"):
        values = np.asarray(fitted.predict(x), np.float64)
        return (np.log(values) if space == "log_value" else values).reshape(len(x), -1)
    if space == "probability":
        values = np.asarray(fitted.predict_proba(x), np.float64)
        return values[:, 1:] if values.shape[1] == 2 else values
    if hasattr(fitted, "get_booster"):
        import xgboost

        margin = fitted.get_booster().predict(xgboost.DMatrix(x), output_margin=True)
    elif hasattr(fitted, "booster_"):
        margin = fitted.predict(x, raw_score=True)
    else:
        margin = fitted.decision_function(x)
    return np.asarray(margin, np.float64).reshape(len(x), -1)


def _reference(estimator_name: str, fitted, x_train, x):
    step = fitted.steps[-1][1] if hasattr(fitted, "steps") else fitted
    if estimator_name in TREES:
        explainer = shap.TreeExplainer(step)
        return np.asarray(explainer.shap_values(x))
    scaler = fitted.steps[0][1]
    masker = shap.maskers.Independent(scaler.transform(x_train), max_samples=len(x_train))
    explainer = shap.LinearExplainer(step, masker)
    return np.asarray(explainer.shap_values(scaler.transform(x)))


@pytest.mark.parametrize(("source", "estimator"), _cases())
def test_attributions_match_shap_and_add_up_to_the_served_output(source, estimator):
    # Given a model trained the way Flywheel trains it
    outcome = _trained(source, estimator)
    dataset = load_dataset(source)
    x_train = np.asarray(dataset.X, dtype=np.float64)  # the reference mean needs the train split
    from flywheel.training.trainer import split_indices

    train_idx, _ = split_indices(
        dataset.y,
        task=outcome.config.task,
        test_size=outcome.config.test_size,
        seed=outcome.config.seed,
    )
    x_train = x_train[train_idx]
    explainer = build_explainer(
        outcome.estimator,
        task=outcome.config.task,
        classes=dataset.classes,
        feature_names=dataset.feature_names,
        x_train=x_train,
        converter=outcome.converter,
    )
    x = outcome.X_holdout[:40]
    # When it is explained
    explanation = explainer.explain(x)
    ours = explanation.values
    # Then base + Σφ is the served output in the documented space
    total = explanation.base_values + ours.sum(axis=1)
    served = _model_output(outcome, x, explanation.space)
    tolerance = 1e-9 if estimator != "xgboost" else 1e-6  # XGBoost sums float32 leaves
    assert np.abs(total - served).max() <= tolerance * max(1.0, np.abs(served).max())
    # And the attributions are shap's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reference = _reference(estimator, outcome.estimator, x_train, x)
        except shap.utils._exceptions.InvalidModelError:
            pytest.skip("shap does not explain this model (multiclass GradientBoosting)")
    if reference.ndim == 2:
        reference = reference[:, :, None]
    if reference.shape[2] != ours.shape[2]:  # binary: shap also returns the negative class
        reference = reference[:, :, -ours.shape[2] :]
    limit = 1e-6
    if estimator == "xgboost":  # shap returns XGBoost's attributions in float32
        limit = 1e-6 * max(1.0, float(np.abs(reference).max()) * 8)
    assert np.abs(ours - reference).max() <= limit
