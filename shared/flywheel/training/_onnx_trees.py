"""Write scikit-learn tree ensembles as one float64 ONNX ``TreeEnsemble`` (``ai.onnx.ml`` 5).

``TreeEnsemble`` (``ai.onnx.ml`` opset 5, onnxruntime >= 1.21) takes double thresholds,
double leaf weights and returns doubles, so the graph reproduces scikit-learn's
arithmetic, which skl2onnx 1.20's float32 tree operators cannot (ADR 4).  Anything this
module does not model (categorical splits, unknown losses, multi-output targets) raises
:class:`UnsupportedTreeModelError`, and the caller falls back to skl2onnx in float32.

Notes
-----
* Routing. ``RandomForest*`` and ``GradientBoosting*`` cast ``X`` to float32
  before comparing it with float64 thresholds (scikit-learn's ``DTYPE``), so the
  graph casts ``double -> float -> double`` first.  ``HistGradientBoosting*``
  compares float64 ``X`` with float64 thresholds, so the graph does not cast.
  A row therefore takes the same path through every tree as in scikit-learn.
* Leaves. Leaf weights are scikit-learn's float64 leaf values (times the learning
  rate for ``GradientBoosting*``, whose Cython loop multiplies at predict time).
  Only the order of the float64 sums can differ, a few ulps.
* Link. Baselines are added with ``Add``; then ``Sigmoid`` (binary), ``Softmax``
  (multiclass), ``Exp`` (log-link regression) or nothing.

``TreeEnsemble`` leaves feed a single target each, so a multiclass random forest
repeats every tree once per class (model size grows with the class count); a
binary forest carries the positive class only and the graph computes ``1 - p``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx
    from numpy.typing import NDArray

IR_VERSION = 10
OPSETS = {"": 21, "ai.onnx.ml": 5}
INPUT_NAME = "input"
LABEL_OUTPUT = "label"
PROBABILITY_OUTPUT = "probabilities"
PREDICTION_OUTPUT = "prediction"


class UnsupportedTreeModelError(Exception):
    """The estimator uses something the float64 tree writer does not model."""


@dataclass
class _Ensemble:
    """Flat ``TreeEnsemble`` attributes, appended tree by tree."""

    n_targets: int
    featureids: list[NDArray[np.int64]] = field(default_factory=list)
    splits: list[NDArray[np.float64]] = field(default_factory=list)
    missing_true: list[NDArray[np.int64]] = field(default_factory=list)
    truenodeids: list[NDArray[np.int64]] = field(default_factory=list)
    trueleafs: list[NDArray[np.int64]] = field(default_factory=list)
    falsenodeids: list[NDArray[np.int64]] = field(default_factory=list)
    falseleafs: list[NDArray[np.int64]] = field(default_factory=list)
    leaf_targetids: list[NDArray[np.int64]] = field(default_factory=list)
    leaf_weights: list[NDArray[np.float64]] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)
    n_nodes: int = 0
    n_leaves: int = 0

    def add_tree(
        self,
        *,
        left: NDArray[np.int64],
        right: NDArray[np.int64],
        feature: NDArray[np.int64],
        threshold: NDArray[np.float64],
        missing_left: NDArray[np.int64],
        leaf_values: NDArray[np.float64],
        target: int,
    ) -> None:
        """Append one binary tree given as scikit-learn-style parallel arrays.

        ``left[i] < 0`` marks node ``i`` as a leaf; node 0 is the root.
        """
        is_leaf = left < 0
        interior = np.flatnonzero(~is_leaf)
        leaves = np.flatnonzero(is_leaf)
        if interior.size == 0:
            # A tree that is a single leaf: one node whose branches both reach it.
            self.roots.append(self.n_nodes)
            self._append_nodes(
                featureids=np.zeros(1, np.int64),
                splits=np.zeros(1, np.float64),
                missing_true=np.ones(1, np.int64),
                truenodeids=np.array([self.n_leaves], np.int64),
                trueleafs=np.ones(1, np.int64),
                falsenodeids=np.array([self.n_leaves], np.int64),
                falseleafs=np.ones(1, np.int64),
            )
            self._append_leaves(leaf_values[leaves[:1]], target)
            return
        if interior[0] != 0:
            raise UnsupportedTreeModelError("tree root is not node 0")
        position = np.empty(left.shape[0], dtype=np.int64)
        position[interior] = np.arange(interior.size, dtype=np.int64) + self.n_nodes
        position[leaves] = np.arange(leaves.size, dtype=np.int64) + self.n_leaves
        true_child = left[interior]
        false_child = right[interior]
        self.roots.append(self.n_nodes)
        self._append_nodes(
            featureids=feature[interior].astype(np.int64),
            splits=threshold[interior].astype(np.float64),
            missing_true=missing_left[interior].astype(np.int64),
            truenodeids=position[true_child],
            trueleafs=is_leaf[true_child].astype(np.int64),
            falsenodeids=position[false_child],
            falseleafs=is_leaf[false_child].astype(np.int64),
        )
        self._append_leaves(leaf_values[leaves], target)

    def _append_nodes(self, **arrays: NDArray[Any]) -> None:
        for name, values in arrays.items():
            getattr(self, name).append(values)
        self.n_nodes += int(arrays["featureids"].shape[0])

    def _append_leaves(self, weights: NDArray[np.float64], target: int) -> None:
        self.leaf_weights.append(np.asarray(weights, dtype=np.float64))
        self.leaf_targetids.append(np.full(weights.shape[0], target, dtype=np.int64))
        self.n_leaves += int(weights.shape[0])

    def node(self, input_name: str, output_name: str) -> onnx.NodeProto:
        from onnx import TensorProto, helper, numpy_helper

        def ints(parts: list[NDArray[np.int64]]) -> list[int]:
            return [int(v) for v in np.concatenate(parts).tolist()]

        splits = np.concatenate(self.splits).astype(np.float64)
        weights = np.concatenate(self.leaf_weights).astype(np.float64)
        return helper.make_node(
            "TreeEnsemble",
            [input_name],
            [output_name],
            domain="ai.onnx.ml",
            name="trees",
            n_targets=self.n_targets,
            aggregate_function=1,  # SUM
            post_transform=0,  # NONE
            tree_roots=list(self.roots),
            nodes_featureids=ints(self.featureids),
            nodes_splits=numpy_helper.from_array(splits, "nodes_splits"),
            nodes_modes=helper.make_tensor(
                "nodes_modes", TensorProto.UINT8, [self.n_nodes], [0] * self.n_nodes
            ),
            nodes_missing_value_tracks_true=ints(self.missing_true),
            nodes_truenodeids=ints(self.truenodeids),
            nodes_trueleafs=ints(self.trueleafs),
            nodes_falsenodeids=ints(self.falsenodeids),
            nodes_falseleafs=ints(self.falseleafs),
            leaf_targetids=ints(self.leaf_targetids),
            leaf_weights=numpy_helper.from_array(weights, "leaf_weights"),
        )


@dataclass
class _Graph:
    """A small builder for the nodes around the ensemble."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def add(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def constant(self, name: str, value: NDArray[Any]) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name


def _is_classifier(estimator: Any) -> bool:
    return hasattr(estimator, "classes_")


def _sklearn_tree_arrays(tree: Any) -> dict[str, NDArray[Any]]:
    left = np.asarray(tree.children_left, dtype=np.int64)
    missing = getattr(tree, "missing_go_to_left", None)
    return {
        "left": left,
        "right": np.asarray(tree.children_right, dtype=np.int64),
        "feature": np.asarray(tree.feature, dtype=np.int64),
        "threshold": np.asarray(tree.threshold, dtype=np.float64),
        "missing_left": (
            np.zeros(left.shape[0], np.int64)
            if missing is None
            else np.asarray(missing, dtype=np.int64)
        ),
    }


def _check_single_output(estimator: Any) -> None:
    if getattr(estimator, "n_outputs_", 1) != 1:
        raise UnsupportedTreeModelError("multi-output targets")


def _forest(estimator: Any) -> tuple[_Ensemble, NDArray[np.float64], str]:
    """Random forest: the mean of per-tree leaf values (class fractions or means)."""
    _check_single_output(estimator)
    trees = [e.tree_ for e in estimator.estimators_]
    if _is_classifier(estimator):
        n_classes = len(estimator.classes_)
        targets = [1] if n_classes == 2 else list(range(n_classes))
        ensemble = _Ensemble(n_targets=len(targets))
        for tree in trees:
            arrays = _sklearn_tree_arrays(tree)
            values = np.asarray(tree.value, dtype=np.float64)[:, 0, :]
            for slot, cls in enumerate(targets):
                ensemble.add_tree(**arrays, leaf_values=values[:, cls], target=slot)
    else:
        ensemble = _Ensemble(n_targets=1)
        for tree in trees:
            values = np.asarray(tree.value, dtype=np.float64)[:, 0, 0]
            ensemble.add_tree(**_sklearn_tree_arrays(tree), leaf_values=values, target=0)
    return ensemble, np.zeros(ensemble.n_targets), "mean"


def _gradient_boosting(estimator: Any) -> tuple[_Ensemble, NDArray[np.float64], str]:
    """GradientBoosting: ``baseline + sum(learning_rate * leaf value)`` per class."""
    if estimator.init not in (None, "zero"):
        raise UnsupportedTreeModelError("custom init estimator")
    stages = estimator.estimators_
    n_trees_per_stage = stages.shape[1]
    ensemble = _Ensemble(n_targets=n_trees_per_stage)
    rate = float(estimator.learning_rate)
    for stage in stages:
        for k, regressor in enumerate(stage):
            tree = regressor.tree_
            values = rate * np.asarray(tree.value, dtype=np.float64)[:, 0, 0]
            ensemble.add_tree(**_sklearn_tree_arrays(tree), leaf_values=values, target=k)
    n_features = int(estimator.n_features_in_)
    if estimator.init == "zero":
        baseline = np.zeros(n_trees_per_stage)
    else:
        baseline = np.asarray(
            estimator._raw_predict_init(np.zeros((1, n_features), dtype=np.float32)),
            dtype=np.float64,
        ).ravel()
    if _is_classifier(estimator):
        link = {"log_loss": "logit", "exponential": "logit2"}.get(str(estimator.loss))
        if link is None:
            raise UnsupportedTreeModelError(f"loss {estimator.loss!r}")
        if len(estimator.classes_) > 2:
            link = "softmax"
    else:
        link = "identity"
    return ensemble, baseline, link


def _hist_gradient_boosting(estimator: Any) -> tuple[_Ensemble, NDArray[np.float64], str]:
    """HistGradientBoosting: ``baseline + sum(leaf value)``; leaves already carry shrinkage."""
    predictors = estimator._predictors
    n_per_iter = len(predictors[0]) if predictors else 1
    ensemble = _Ensemble(n_targets=n_per_iter)
    for iteration in predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if np.any(nodes["is_categorical"]):
                raise UnsupportedTreeModelError("categorical splits")
            is_leaf = nodes["is_leaf"].astype(bool)
            left = np.where(is_leaf, -1, nodes["left"].astype(np.int64))
            ensemble.add_tree(
                left=left,
                right=nodes["right"].astype(np.int64),
                feature=nodes["feature_idx"].astype(np.int64),
                threshold=nodes["num_threshold"].astype(np.float64),
                missing_left=nodes["missing_go_to_left"].astype(np.int64),
                leaf_values=nodes["value"].astype(np.float64),
                target=k,
            )
    baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
    if _is_classifier(estimator):
        if str(estimator.loss) != "log_loss":
            raise UnsupportedTreeModelError(f"loss {estimator.loss!r}")
        link = "softmax" if len(estimator.classes_) > 2 else "logit"
    else:
        links = {
            "squared_error": "identity",
            "absolute_error": "identity",
            "quantile": "identity",
            "poisson": "exp",
            "gamma": "exp",
        }
        link_name = links.get(str(estimator.loss))
        if link_name is None:
            raise UnsupportedTreeModelError(f"loss {estimator.loss!r}")
        link = link_name
    return ensemble, baseline, link


def _family(estimator: Any) -> str:
    name = type(estimator).__name__
    for family in ("RandomForest", "HistGradientBoosting", "GradientBoosting"):
        if name.startswith(family):
            return family
    raise UnsupportedTreeModelError(f"estimator {name}")


def is_tree_ensemble(estimator: Any) -> bool:
    """Whether :func:`tree_ensemble_to_onnx` knows the estimator's family."""
    try:
        _family(estimator)
    except UnsupportedTreeModelError:
        return False
    return True


def tree_ensemble_to_onnx(estimator: Any, *, n_features: int) -> onnx.ModelProto:
    """Build the float64 ONNX graph for a fitted tree ensemble.

    Outputs: classifiers ``label`` (the class, ``str(classes_[i])``, string ``[N]``) and
    ``probabilities`` (double, ``[N, n_classes]``); regressors ``prediction``
    (double, ``[N, 1]``).

    Raises
    ------
    UnsupportedTreeModelError
        When the estimator uses something this writer does not model.
    """
    from onnx import TensorProto, helper

    family = _family(estimator)
    if family == "RandomForest":
        ensemble, baseline, link = _forest(estimator)
    elif family == "GradientBoosting":
        ensemble, baseline, link = _gradient_boosting(estimator)
    else:
        ensemble, baseline, link = _hist_gradient_boosting(estimator)

    g = _Graph()
    x = INPUT_NAME
    if family in ("RandomForest", "GradientBoosting"):
        # scikit-learn trees compare float32(x) with float64 thresholds.
        x = g.add("Cast", [x], "x_float32", to=TensorProto.FLOAT)
        x = g.add("Cast", [x], "x_rounded", to=TensorProto.DOUBLE)
    raw_name = "raw_sum"
    g.nodes.append(ensemble.node(x, raw_name))
    score = raw_name
    if link == "mean":
        n_trees = np.array(len(estimator.estimators_), dtype=np.float64)
        score = g.add("Div", [score, g.constant("n_trees", n_trees)], "score")
    elif np.any(baseline != 0.0):
        score = g.add("Add", [score, g.constant("baseline", baseline)], "score")

    outputs: list[onnx.ValueInfoProto]
    if _is_classifier(estimator):
        n_classes = len(estimator.classes_)
        if link == "softmax":
            proba = g.add("Softmax", [score], PROBABILITY_OUTPUT, axis=1)
        elif link == "mean" and n_classes > 2:
            proba = g.add("Identity", [score], PROBABILITY_OUTPUT)
        else:
            if link == "logit":
                positive = g.add("Sigmoid", [score], "p_positive")
            elif link == "logit2":
                two = g.constant("two", np.array(2.0, dtype=np.float64))
                positive = g.add("Sigmoid", [g.add("Mul", [score, two], "score2")], "p_positive")
            else:  # mean of class fractions: the forest's positive class
                positive = score
            one = g.constant("one", np.array(1.0, dtype=np.float64))
            negative = g.add("Sub", [one, positive], "p_negative")
            proba = g.add("Concat", [negative, positive], PROBABILITY_OUTPUT, axis=1)
        index = g.add("ArgMax", [proba], "label_index", axis=1, keepdims=0)
        names = np.array([str(c) for c in estimator.classes_], dtype=object)
        g.add("Gather", [g.constant("class_labels", names), index], LABEL_OUTPUT, axis=0)
        outputs = [
            helper.make_tensor_value_info(LABEL_OUTPUT, TensorProto.STRING, [None]),
            helper.make_tensor_value_info(
                PROBABILITY_OUTPUT, TensorProto.DOUBLE, [None, n_classes]
            ),
        ]
    else:
        if link == "exp":
            score = g.add("Exp", [score], "score_exp")
        g.add("Identity", [score], PREDICTION_OUTPUT)
        outputs = [helper.make_tensor_value_info(PREDICTION_OUTPUT, TensorProto.DOUBLE, [None, 1])]

    graph = helper.make_graph(
        g.nodes,
        f"flywheel_{type(estimator).__name__}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, [None, n_features])],
        outputs,
        initializer=g.initializers,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, v) for domain, v in OPSETS.items()],
        ir_version=IR_VERSION,
        producer_name="flywheel",
    )
