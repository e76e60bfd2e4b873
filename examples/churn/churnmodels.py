"""A team's own model for the churn table: ``entrypoint: churnmodels:build``.

Flywheel calls ``build`` with the config's hyperparameters (and each search candidate's),
fits what it returns on the preprocessed table (categories one-hot, text TF-IDF, gaps
filled), converts it to ONNX with that preprocessing in front, and checks parity.
"""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build(C: float = 1.0, balanced: bool = True) -> Pipeline:  # noqa: N803 (scikit-learn's name)
    """Scaled logistic regression, weighting the rarer churners up when ``balanced``."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "model",
                LogisticRegression(
                    C=C, class_weight="balanced" if balanced else None, max_iter=2000
                ),
            ),
        ]
    )
