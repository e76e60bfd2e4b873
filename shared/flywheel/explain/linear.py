"""Exact SHAP values of a linear model with independent features (interventional).

``φ_j = w_j (x_j - E[x_j])`` per output and ``base = b + w · E[x]``: what
``shap.LinearExplainer`` computes with ``feature_perturbation="interventional"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["LinearShap"]


@dataclass(frozen=True)
class LinearShap:
    """SHAP values of ``x @ coef.T + intercept`` against the reference means.

    Examples
    --------
    >>> explainer = LinearShap(coef=np.array([[2.0, -1.0]]), intercept=np.array([0.5]),
    ...                        means=np.array([1.0, 1.0]))
    >>> explainer.base_values.tolist(), explainer.shap_values(np.array([[2.0, 0.0]]))[0].tolist()
    ([1.5], [[2.0], [1.0]])
    """

    coef: NDArray[np.float64]  # [outputs, features]
    intercept: NDArray[np.float64]  # [outputs]
    means: NDArray[np.float64]  # [features]

    @property
    def base_values(self) -> NDArray[np.float64]:
        """``intercept + coef @ means``: the output at the reference means."""
        return np.asarray(self.intercept + self.coef @ self.means, dtype=np.float64)

    def shap_values(self, x: NDArray[Any]) -> NDArray[np.float64]:
        """``[rows, features, outputs]``: ``coef * (x - means)``.

        Examples
        --------
        >>> LinearShap(np.array([[1.0]]), np.zeros(1), np.zeros(1)).shap_values(
        ...     np.array([[3.0]])).tolist()
        [[[3.0]]]
        """
        centred = np.asarray(x, dtype=np.float64) - self.means
        return centred[:, :, None] * self.coef.T[None, :, :]
