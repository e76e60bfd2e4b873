"""Exact explanations agree with shap (dev-only) on the bundled datasets and estimators.

Attributions match ``shap.TreeExplainer`` / ``shap.LinearExplainer`` to 1e-6, and
``base + Σφ`` equals the served ONNX model's output in the documented space to 1e-9.
"""

from __future__ import annotations

import hashlib
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


# -- typed features: preprocessing inside the graph ---------------------------------------------
TYPED = [
    ("classification", "random_forest"),
    ("classification", "gradient_boosting"),
    ("classification", "hist_gradient_boosting"),
    ("classification", "lightgbm"),
    ("classification", "xgboost"),
    ("classification", "logistic_regression"),
    ("regression", "hist_gradient_boosting"),
    ("regression", "ridge"),
]


def _typed_case(task: str, estimator: str):
    """The churn table trained with ``estimator``, its explainer, and its fitted preprocessing."""
    from flywheel.explain.artifact import Explainer
    from flywheel.training.preprocessing import fit_preprocessor
    from flywheel.training.trainer import load_configured_dataset, split_indices
    from tests.typed_support import churn_config, trained_churn

    outcome = trained_churn(estimator, task=task)
    config = parse_config(churn_config(estimator, task=task))
    dataset = load_configured_dataset(config)
    train_idx, _ = split_indices(
        dataset.y, task=config.task, test_size=config.test_size, seed=config.seed
    )
    kinds = dict(zip(dataset.feature_names, dataset.feature_dtypes, strict=True))
    pre = fit_preprocessor(
        dataset.X[train_idx], dataset.feature_names, kinds, dict(config.features)
    )
    data = outcome.explainer_bytes
    assert data is not None
    explainer = Explainer.from_bytes(data, expected_sha256=hashlib.sha256(data).hexdigest())
    return outcome, explainer, pre, pre.transform(dataset.X[train_idx])


@pytest.mark.parametrize(("task", "estimator"), TYPED)
def test_typed_models_are_explained_exactly_per_column_and_per_input_feature(task, estimator):
    from flywheel.training.explainers import features_function

    # Given a model trained on categories, text, gaps and booleans
    outcome, explainer, pre, x_train = _typed_case(task, estimator)
    raw = outcome.X_holdout[:40]
    assert explainer.kind == ("linear" if estimator in ("logistic_regression", "ridge") else "tree")
    assert explainer.preprocessing is not None
    # When the artifact's own preprocessing graph expands the raw records
    x = features_function(explainer.preprocessing, pre.split)(raw)
    # Then it is the matrix the estimator was trained on
    assert np.abs(x - pre.transform(raw)).max() <= 1e-12
    explanation = explainer.explain(x, expanded=True)
    # And base + Σφ over the columns is the served output in the documented space
    total = explanation.base_values + explanation.expanded.sum(axis=1)
    served = _model_output(outcome, x, explanation.space)
    tolerance = 1e-9 if estimator != "xgboost" else 1e-6
    assert np.abs(total - served).max() <= tolerance * max(1.0, np.abs(served).max())
    # And each input feature's attribution is the sum of its columns (one-hot, n-grams, flags)
    owners = np.asarray(pre.column_features)
    for f, name in enumerate(explanation.features):
        summed = explanation.expanded[:, owners == f, :].sum(axis=1)
        assert np.abs(explanation.values[:, f, :] - summed).max() <= 1e-12, name
    assert list(explanation.features) == list(outcome.input_schema.feature_names)
    assert "plan=basic" in explanation.columns
    assert "age__missing" in explanation.columns
    assert any(c.startswith("support_note:") for c in explanation.columns)
    assert set(outcome.importance) == set(explanation.features)
    # And the per-column attributions are shap's on the expanded matrix
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = _reference(estimator, outcome.estimator, x_train, x)
    if reference.ndim == 2:
        reference = reference[:, :, None]
    if reference.shape[2] != explanation.expanded.shape[2]:
        reference = reference[:, :, -explanation.expanded.shape[2] :]
    limit = 1e-6
    if estimator == "xgboost":
        limit = 1e-6 * max(1.0, float(np.abs(reference).max()) * 8)
    assert np.abs(explanation.expanded - reference).max() <= limit
