"""LightGBM behind Flywheel's parameter checks (imported only when a config uses it).

The classes are LightGBM's own with scikit-learn parameter constraints for the
hyperparameters a config may set; anything else is refused as unknown.  The
objectives are those :mod:`flywheel.training._onnx_trees` writes in float64.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.utils._param_validation import Interval, StrOptions

#: Set on every LightGBM estimator: one thread unless the config fixes a count,
#: deterministic histograms, no console output.
FIXED_PARAMS: dict[str, Any] = {"deterministic": True, "force_row_wise": True, "verbose": -1}

_COMMON: dict[str, list[Any]] = {
    "boosting_type": [StrOptions({"gbdt", "dart"})],
    "num_leaves": [Interval(Integral, 2, 131072, closed="both")],
    "max_depth": [Interval(Integral, None, None, closed="neither")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "n_estimators": [Interval(Integral, 1, None, closed="left")],
    "subsample_for_bin": [Interval(Integral, 2, None, closed="left")],
    "min_split_gain": [Interval(Real, 0, None, closed="left")],
    "min_child_weight": [Interval(Real, 0, None, closed="left")],
    "min_child_samples": [Interval(Integral, 0, None, closed="left")],
    "subsample": [Interval(Real, 0, 1, closed="right")],
    "subsample_freq": [Interval(Integral, 0, None, closed="left")],
    "colsample_bytree": [Interval(Real, 0, 1, closed="right")],
    "reg_alpha": [Interval(Real, 0, None, closed="left")],
    "reg_lambda": [Interval(Real, 0, None, closed="left")],
    "n_jobs": [Interval(Integral, 1, None, closed="left"), None],
    "importance_type": [StrOptions({"split", "gain"})],
}


class LightGBMClassifier(LGBMClassifier):
    """``lightgbm.LGBMClassifier`` with Flywheel's accepted hyperparameters.

    Examples
    --------
    >>> LightGBMClassifier(n_estimators=0)._validate_params()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    sklearn.utils._param_validation.InvalidParameterError: The 'n_estimators' parameter ...
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_COMMON,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }


class LightGBMRegressor(LGBMRegressor):
    """``lightgbm.LGBMRegressor`` with Flywheel's accepted hyperparameters.

    Examples
    --------
    >>> sorted(LightGBMRegressor._parameter_constraints["objective"][0].options)[:3]
    ['fair', 'gamma', 'huber']
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_COMMON,
        "objective": [
            StrOptions(
                {
                    "regression",
                    "regression_l1",
                    "huber",
                    "fair",
                    "quantile",
                    "mape",
                    "poisson",
                    "gamma",
                    "tweedie",
                }
            ),
            None,
        ],
    }
