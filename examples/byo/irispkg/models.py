"""Model builders for ``entrypoint:`` in a training config.

Each returns an *unfitted* scikit-learn pipeline; Flywheel seeds, fits, converts to
ONNX and checks parity. Keyword arguments come from the config's ``hyperparameters``.
"""

from __future__ import annotations

from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build(C: float = 1.0, n_components: int = 3) -> Pipeline:  # noqa: N803 (scikit-learn's name)
    """Scale, project onto ``n_components`` principal components, then logistic regression.

    Examples
    --------
    >>> [name for name, _ in build().steps]
    ['scale', 'pca', 'model']
    """
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("pca", PCA(n_components=n_components)),
            ("model", LogisticRegression(C=C, max_iter=1000)),
        ]
    )
