"""XGBoost behind Flywheel's parameter checks (imported only when a config uses it).

The classes are XGBoost's own with scikit-learn parameter constraints for the
hyperparameters a config may set; anything else is refused as unknown.  The
classifier takes any class labels (XGBoost's wants ``0..n-1``) and predicts them.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from xgboost import XGBClassifier, XGBRegressor

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Set on every XGBoost estimator: one thread unless the config fixes a count, CPU, quiet.
FIXED_PARAMS: dict[str, Any] = {"device": "cpu", "verbosity": 0}

_POSITIVE_OR_NONE = [Interval(Real, 0, None, closed="left"), None]
_FRACTION_OR_NONE = [Interval(Real, 0, 1, closed="right"), None]

_COMMON: dict[str, list[Any]] = {
    "n_estimators": [Interval(Integral, 1, None, closed="left"), None],
    "max_depth": [Interval(Integral, 0, None, closed="left"), None],
    "max_leaves": [Interval(Integral, 0, None, closed="left"), None],
    "max_bin": [Interval(Integral, 2, None, closed="left"), None],
    "grow_policy": [StrOptions({"depthwise", "lossguide"}), None],
    "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
    "tree_method": [StrOptions({"hist", "approx", "exact"}), None],
    "n_jobs": [Interval(Integral, 1, None, closed="left"), None],
    "gamma": _POSITIVE_OR_NONE,
    "min_child_weight": _POSITIVE_OR_NONE,
    "max_delta_step": _POSITIVE_OR_NONE,
    "subsample": _FRACTION_OR_NONE,
    "colsample_bytree": _FRACTION_OR_NONE,
    "colsample_bylevel": _FRACTION_OR_NONE,
    "colsample_bynode": _FRACTION_OR_NONE,
    "reg_alpha": _POSITIVE_OR_NONE,
    "reg_lambda": _POSITIVE_OR_NONE,
    "num_parallel_tree": [Interval(Integral, 1, None, closed="left"), None],
    "importance_type": [
        StrOptions({"gain", "weight", "cover", "total_gain", "total_cover"}),
        None,
    ],
}


class XGBoostClassifier(XGBClassifier):
    """``xgboost.XGBClassifier`` fitted on any class labels; ``classes_`` are the sorted labels.

    Examples
    --------
    >>> model = XGBoostClassifier(n_estimators=5, min_child_weight=0, n_jobs=1).fit(
    ...     [[0.0], [1.0], [2.0], [3.0]], ["no", "no", "yes", "yes"]
    ... )
    >>> (model.classes_.tolist(), model.predict([[0.0], [3.0]]).tolist())
    (['no', 'yes'], ['no', 'yes'])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_COMMON,
        "scale_pos_weight": [Interval(Real, 0, None, closed="neither"), None],
    }

    def fit(self, X: Any, y: Any, **kwargs: Any) -> XGBoostClassifier:  # noqa: N803
        """Fit on ``y`` encoded as positions in its sorted unique labels."""
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        # XGBoost's fit checks the codes against ``classes_``: its positions until fitted.
        self.class_labels_: NDArray[Any] = np.arange(labels.size)
        super().fit(X, codes, **kwargs)
        self.class_labels_ = labels
        return self

    @property
    def classes_(self) -> NDArray[Any]:
        """The class labels, sorted (columns of ``predict_proba``)."""
        return self.class_labels_

    def predict(self, X: Any, **kwargs: Any) -> NDArray[Any]:  # noqa: N803
        """Class labels (not XGBoost's class positions)."""
        positions = np.asarray(super().predict(X, **kwargs), dtype=np.int64)
        return self.class_labels_[positions]


class XGBoostRegressor(XGBRegressor):
    """``xgboost.XGBRegressor`` with Flywheel's accepted hyperparameters.

    Examples
    --------
    >>> sorted(XGBoostRegressor._parameter_constraints["objective"][0].options)
    ['reg:absoluteerror', 'reg:pseudohubererror', 'reg:squarederror']
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_COMMON,
        "objective": [
            StrOptions({"reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror"}),
            None,
        ],
    }
