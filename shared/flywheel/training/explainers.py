"""Build the explainer artifact of a trained model (ADR 71).

Trees written by the float64 tree writer get exact TreeSHAP over the same node
arrays plus their training covers; ``StandardScaler`` + linear models exact linear
SHAP against the training means (the scaler folded into the coefficients); any
other model a seeded permutation sampler over a background sample of the training
split, evaluated on the ONNX model at serving.  With preprocessing in the graph,
the exact kinds explain the estimator's columns (``plan=pro``, ``note:refund``) and
carry the preprocessing as an ONNX graph; the sampler perturbs raw records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.errors import TrainingError
from flywheel.explain.artifact import Explainer
from flywheel.explain.linear import LinearShap
from flywheel.explain.sampling import PermutationShap
from flywheel.registry.models import Task
from flywheel.training import _onnx_trees
from flywheel.training.estimators import model_step

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from numpy.typing import NDArray

    from flywheel.training.preprocessing import Preprocessor

__all__ = [
    "BACKGROUND_ROWS",
    "PERMUTATIONS",
    "build_explainer",
    "explained_outputs",
    "features_function",
    "model_output_function",
    "unique_names",
]

#: Background rows and orderings of the sampling explainer (cost: rows x (features + 1) x
#: orderings model rows per explained row).
BACKGROUND_ROWS = 20
PERMUTATIONS = 10


def explained_outputs(task: Task, classes: Sequence[str]) -> tuple[str, ...]:
    """The outputs an explanation covers: the positive class of a binary classifier.

    Examples
    --------
    >>> explained_outputs(Task.CLASSIFICATION, ["no", "yes"])
    ('yes',)
    >>> explained_outputs(Task.REGRESSION, [])
    ('value',)
    """
    if task is Task.REGRESSION:
        return ("value",)
    return (classes[1],) if len(classes) == 2 else tuple(classes)


def _linear(fitted: Any, task: Task) -> LinearShap | None:
    step = model_step(fitted)
    coef = getattr(step, "coef_", None)
    intercept = getattr(step, "intercept_", None)
    if coef is None or intercept is None or not hasattr(step, "predict"):
        return None
    steps = list(getattr(fitted, "steps", [])[:-1])
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(intercept, dtype=np.float64))
    if any(type(transform).__name__ != "StandardScaler" for _, transform in steps):
        return None  # only scalers fold into the coefficients; anything else samples
    for _, transform in reversed(steps):
        mean = np.asarray(transform.mean_ if transform.with_mean else 0.0, dtype=np.float64)
        scale = np.asarray(transform.scale_ if transform.with_std else 1.0, dtype=np.float64)
        coef = coef / scale
        intercept = intercept - coef @ np.broadcast_to(mean, coef.shape[1:])
    if task is Task.CLASSIFICATION and type(step).__name__ != "LogisticRegression":
        return None
    return LinearShap(coef=coef, intercept=intercept, means=np.zeros(coef.shape[1]))


def unique_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` with repeats told apart (``#2``, ``#3``): attribution keys must differ.

    Examples
    --------
    >>> unique_names(["a", "b", "a"])
    ('a', 'b', 'a#2')
    """
    seen: dict[str, int] = {}
    taken = set(names)
    out: list[str] = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        candidate, n = name, seen[name]
        while n > 1 and (candidate := f"{name}#{n}") in taken:
            n += 1
        if n > 1:
            taken.add(candidate)
        out.append(candidate)
    return tuple(out)


def build_explainer(
    fitted: Any,
    *,
    task: Task,
    classes: Sequence[str],
    feature_names: Sequence[str],
    x_train: NDArray[Any],
    converter: str,
    seed: int = 0,
    preprocessor: Preprocessor | None = None,
    estimator_onnx: bytes | None = None,
) -> Explainer:
    """The explainer of ``fitted`` as converted (``converter``), in its documented space.

    ``x_train`` holds raw rows. With a ``preprocessor`` (fitted on them), ``fitted``
    is the estimator behind it and ``estimator_onnx`` its ONNX graph before the
    preprocessing was prepended.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    >>> fitted = LinearRegression().fit(X, X @ [2.0, 1.0])
    >>> e = build_explainer(fitted, task=Task.REGRESSION, classes=(), feature_names=("a", "b"),
    ...                     x_train=X, converter="skl2onnx")
    >>> e.kind, e.space, [round(v, 9) for v in e.explain(X[:1]).values[0, :, 0].tolist()]
    ('linear', 'value', [-2.0, 0.0])
    """
    outputs = explained_outputs(task, classes)
    features = tuple(feature_names)
    columns, column_feature = features, list(range(len(features)))
    x = np.asarray(x_train, dtype=object if preprocessor is not None else np.float64)
    if preprocessor is not None:
        columns = unique_names(preprocessor.output_names)
        column_feature = preprocessor.column_features
    step = model_step(fitted)
    explainer: Explainer | None = None
    if converter == "flywheel-trees" and _onnx_trees.is_tree_ensemble(step):
        arrays, space = _onnx_trees.tree_ensemble_arrays(step, n_features=len(columns))
        explainer = Explainer.tree(
            arrays, columns=columns, outputs=outputs, space=space, features=features,
            column_feature=column_feature,
        )  # fmt: skip
    linear = _linear(fitted, task) if explainer is None else None
    if linear is not None:
        matrix = preprocessor.transform(x) if preprocessor is not None else x
        linear = LinearShap(coef=linear.coef, intercept=linear.intercept, means=matrix.mean(axis=0))
        if task is Task.CLASSIFICATION and len(outputs) == 1 and linear.coef.shape[0] == 1:
            space = "log_odds"
        else:
            space = "margin" if task is Task.CLASSIFICATION else "value"
        explainer = Explainer.linear(
            linear, columns=columns, outputs=outputs, space=space, features=features,
            column_feature=column_feature,
        )  # fmt: skip
    if explainer is not None:
        if preprocessor is None:
            return explainer
        if estimator_onnx is None:
            raise ValueError("a model with preprocessing needs its estimator's ONNX graph")
        return explainer.with_preprocessing(_features_graph(preprocessor, estimator_onnx))
    rng = np.random.default_rng(seed)
    rows = rng.choice(x.shape[0], size=min(BACKGROUND_ROWS, x.shape[0]), replace=False)
    sampler = PermutationShap(background=x[np.sort(rows)], permutations=PERMUTATIONS, seed=seed)
    space = "probability" if task is Task.CLASSIFICATION else "value"
    strings: list[int] = []
    if preprocessor is not None:  # raw records: the sampler perturbs input features
        kinds = set(preprocessor.string_features)
        strings = [j for j, name in enumerate(features) if name in kinds]
    return Explainer.sampling(
        sampler, columns=features, outputs=outputs, space=space,
        records=preprocessor is not None, string_columns=strings,
    )  # fmt: skip


def _features_graph(preprocessor: Preprocessor, estimator_onnx: bytes) -> bytes:
    """The preprocessing-only ONNX graph, checked like the served model."""
    import onnx

    graph = preprocessor.features_graph(onnx.load_from_string(estimator_onnx))
    try:
        onnx.checker.check_model(graph, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise TrainingError(
            "estimator: the preprocessing graph fails the ONNX checker", field="estimator"
        ) from err
    serialized: bytes = graph.SerializeToString()
    return serialized


def features_function(
    graph: bytes, split: Callable[[NDArray[Any]], tuple[NDArray[np.float64], NDArray[Any]]]
) -> Callable[[NDArray[Any]], NDArray[np.float64]]:
    """Raw rows → the estimator's columns, by the explainer's preprocessing graph.

    What serving runs before an exact explainer of a model with preprocessing.

    Examples
    --------
    >>> from flywheel.training.preprocessing import fit_preprocessor
    >>> pre = fit_preprocessor(np.array([[1.0, "a"], [np.nan, "b"]], dtype=object),
    ...                        ["x", "c"], {"x": "float", "c": "categorical"})
    >>> expand = features_function(pre.features_graph().SerializeToString(), pre.split)
    >>> expand(np.array([[None, "a"]], dtype=object)).tolist()
    [[1.0, 1.0, 0.0]]
    """
    from flywheel.training.conversion import onnx_session

    session = onnx_session(graph)
    names = {i.name for i in session.get_inputs()}

    def run(x: NDArray[Any]) -> NDArray[np.float64]:
        numbers, strings = split(x)
        feed = {n: v for n, v in (("input", numbers), ("strings", strings)) if n in names}
        (features,) = session.run(["features"], feed)
        return np.asarray(features, dtype=np.float64)

    return run


def model_output_function(
    session: Any,
    *,
    task: Task,
    classes: Sequence[str],
    split: Callable[[NDArray[Any]], tuple[NDArray[np.float64], NDArray[Any]]] | None = None,
) -> Callable[[NDArray[Any]], NDArray[np.float64]]:
    """``X -> [rows, outputs]``: the ONNX model's probabilities (explained classes) or values.

    What the sampling explainer perturbs at training (global importance); ``split``
    feeds a model with preprocessing its raw rows.
    """
    from flywheel.training.conversion import onnx_outputs

    keep = [1] if task is Task.CLASSIFICATION and len(classes) == 2 else None

    def run(x: NDArray[Any]) -> NDArray[np.float64]:
        values = onnx_outputs(session, x, task=task, split=split).values
        if task is Task.REGRESSION:
            return values.reshape(-1, 1)
        return values[:, keep] if keep is not None else values

    return run
