"""Target leakage: how well one feature alone predicts the label, cross-validated.

Numbers (and booleans) get a depth-limited decision tree on the single column; categories
and text get the label's distribution per value learned on the other folds.  The score is
the out-of-fold ROC AUC (classification; one-vs-rest macro average for more than two
classes) or R² (regression).  ADR 67 gives the rule and its measured behaviour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Depth of the single-feature tree (at most 64 leaves).
TREE_DEPTH = 6
#: Folds of the cross-validation (fewer when the smallest class is smaller).
FOLDS = 5


def _folds(y: NDArray[Any], classification: bool, seed: int) -> list[NDArray[np.intp]] | None:
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(y)
    if classification:
        smallest = int(np.bincount(np.asarray(y, dtype=np.int64)).min(initial=n))
        splits = min(FOLDS, smallest)
        if splits < 2:
            return None
        splitter: Any = StratifiedKFold(splits, shuffle=True, random_state=seed)
    else:
        if n < 2 * FOLDS:
            return None
        splitter = KFold(FOLDS, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros((n, 1)), y)]


def _tree_predictions(
    x: NDArray[np.float64], y: NDArray[Any], folds: list[NDArray[np.intp]], n_classes: int
) -> NDArray[np.float64]:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    finite = x[np.isfinite(x)]
    x = np.where(np.isfinite(x), x, (finite.min() - 1.0) if finite.size else 0.0)[:, None]
    leaf = max(5, len(y) // 200)
    out = np.zeros((len(y), max(n_classes, 1)))
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        if n_classes:
            model: Any = DecisionTreeClassifier(
                max_depth=TREE_DEPTH, min_samples_leaf=leaf, random_state=0
            )
            model.fit(x[train], y[train])
            out[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
        else:
            model = DecisionTreeRegressor(
                max_depth=TREE_DEPTH, min_samples_leaf=leaf, random_state=0
            )
            model.fit(x[train], y[train])
            out[test, 0] = model.predict(x[test])
    return out


def _value_predictions(
    values: NDArray[Any], y: NDArray[Any], folds: list[NDArray[np.intp]], n_classes: int
) -> NDArray[np.float64]:
    keys = np.array([repr(v) for v in values.tolist()], dtype=object)
    _, codes = np.unique(keys, return_inverse=True)
    width = max(n_classes, 1)
    targets = np.eye(n_classes)[y] if n_classes else np.asarray(y, dtype=np.float64)[:, None]
    out = np.zeros((len(y), width))
    n_codes = int(codes.max()) + 1
    for test in folds:
        train = np.setdiff1d(np.arange(len(y)), test)
        sums = np.zeros((n_codes, width))
        np.add.at(sums, codes[train], targets[train])
        counts = np.bincount(codes[train], minlength=n_codes)[:, None]
        prior = targets[train].mean(axis=0)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), prior)
        out[test] = means[codes[test]]
    return out


def _score(y: NDArray[Any], predicted: NDArray[np.float64], n_classes: int) -> float:
    from sklearn.metrics import r2_score, roc_auc_score

    if not n_classes:
        return float(r2_score(y, predicted[:, 0]))
    if n_classes == 2:
        return float(roc_auc_score(y, predicted[:, 1]))
    total = predicted.sum(axis=1, keepdims=True)
    proba = np.where(total > 0, predicted / np.where(total > 0, total, 1), 1.0 / n_classes)
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def single_feature_scores(
    X: NDArray[Any],  # noqa: N803
    y: NDArray[Any],
    names: tuple[str, ...],
    numeric: tuple[bool, ...],
    *,
    n_classes: int,
    max_rows: int,
    seed: int = 0,
) -> dict[str, float]:
    """Each feature's out-of-fold score at predicting ``y`` on its own.

    ``n_classes`` is 0 for regression. At most ``max_rows`` rows are used (a seeded sample).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400)
    >>> X = np.column_stack([y * 3.0, rng.normal(size=400)])
    >>> scores = single_feature_scores(X, y, ("copy", "noise"), (True, True), n_classes=2,
    ...                                max_rows=1000)
    >>> round(scores["copy"], 3), scores["noise"] < 0.7
    (1.0, True)
    """
    if len(y) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), max_rows, replace=False))
        X, y = X[keep], y[keep]  # noqa: N806
    folds = _folds(y, n_classes > 0, seed)
    if folds is None:
        return {}
    scores: dict[str, float] = {}
    for j, name in enumerate(names):
        column = X[:, j]
        if numeric[j]:
            values = (
                np.asarray([np.nan if v is None else v for v in column.tolist()], dtype=np.float64)
                if column.dtype == object
                else np.asarray(column, dtype=np.float64)
            )
            if not np.isfinite(values).any():
                continue
            predicted = _tree_predictions(values, y, folds, n_classes)
        else:
            predicted = _value_predictions(column, y, folds, n_classes)
        scores[name] = _score(y, predicted, n_classes)
    return scores
