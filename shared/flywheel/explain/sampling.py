"""Model-agnostic SHAP estimates: seeded antithetic permutation sampling over a background.

For any model given as a function of a matrix, each sampled feature ordering walks
from a background row to the explained row one feature at a time; the output
differences are that ordering's marginal contributions.  Every ordering adds up
exactly (``f(x) - f(background)``), so ``base + Σ φ = f(x)`` holds to rounding, and
the estimate converges to the interventional SHAP values with the background as
reference.  The error bound is three standard errors of the mean over orderings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

__all__ = ["PermutationShap", "SampledValues"]


@dataclass(frozen=True)
class SampledValues:
    """Estimated SHAP values ``[rows, features, outputs]`` and their error bound."""

    values: NDArray[np.float64]
    base_values: NDArray[np.float64]
    #: Largest three-standard-error half-width over every value (same units).
    error_bound: float


@dataclass(frozen=True)
class PermutationShap:
    """Antithetic permutation sampling of SHAP values for ``model`` (``[n, m] -> [n, k]``).

    Examples
    --------
    >>> def model(x):  # a product: no closed form to lean on, exact Shapley is known
    ...     return (x[:, 0] * x[:, 1])[:, None]
    >>> explainer = PermutationShap(background=np.zeros((1, 2)), permutations=4, seed=0)
    >>> result = explainer.explain(model, np.array([[2.0, 3.0]]))
    >>> result.values[0, :, 0].tolist(), result.error_bound > 0  # two orderings disagree
    ([3.0, 3.0], True)
    """

    #: ``[rows, features]``: numbers, or objects (raw records with strings) for a model
    #: that takes them; the explained rows are then objects too.
    background: NDArray[Any]
    permutations: int = 10
    seed: int = 0

    def explain(
        self, model: Callable[[NDArray[Any]], NDArray[Any]], x: NDArray[Any]
    ) -> SampledValues:
        """Estimate the SHAP values of every row of ``x`` (``[rows, features]``)."""
        dtype: Any = object if np.asarray(self.background).dtype == object else np.float64
        x = np.asarray(x, dtype=dtype)
        rows, m = x.shape
        background = np.asarray(self.background, dtype=dtype)
        base = np.asarray(model(background), dtype=np.float64).reshape(background.shape[0], -1)
        base_values = base.mean(axis=0)
        k = base_values.shape[0]
        rng = np.random.default_rng(self.seed)
        orders = [rng.permutation(m) for _ in range((self.permutations + 1) // 2)]
        orders += [order[::-1] for order in orders]  # antithetic: each ordering reversed
        samples = np.zeros((len(orders), rows, m, k))
        b = background.shape[0]
        for p, order in enumerate(orders):
            # [rows, steps + 1, background, features]: step s switches order[:s] to x.
            path = np.broadcast_to(background, (rows, m + 1, b, m)).copy()
            for step, feature in enumerate(order.tolist(), start=1):
                path[:, step:, :, feature] = x[:, None, None, feature]
            out = np.asarray(model(path.reshape(-1, m)), dtype=np.float64)
            out = out.reshape(rows, m + 1, b, k).mean(axis=2)
            samples[p][:, order, :] = np.diff(out, axis=1)
        values = samples.mean(axis=0)
        spread = samples.std(axis=0, ddof=1) if len(orders) > 1 else np.zeros_like(values)
        bound = float(3.0 * spread.max() / np.sqrt(len(orders))) if values.size else 0.0
        return SampledValues(values=values, base_values=base_values, error_bound=bound)
