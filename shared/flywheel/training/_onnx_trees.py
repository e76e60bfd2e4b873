"""Write tree ensembles as one ONNX ``TreeEnsemble`` (``ai.onnx.ml`` 5) with double outputs.

scikit-learn's forests and boosters and LightGBM are written in float64; XGBoost in its
own float32 arithmetic, replayed to the bit (ADR 5).

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

    from flywheel.explain.trees import TreeArrays

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
    #: ``nodes_modes`` of every node: 0 is ``x <= split``, 1 is ``x < split``.
    mode: int = 0
    #: Type of the splits, the leaf weights and so of the ensemble's input and output.
    dtype: type[np.floating[Any]] = np.float64
    featureids: list[NDArray[np.int64]] = field(default_factory=list)
    splits: list[NDArray[np.float64]] = field(default_factory=list)
    missing_true: list[NDArray[np.int64]] = field(default_factory=list)
    truenodeids: list[NDArray[np.int64]] = field(default_factory=list)
    trueleafs: list[NDArray[np.int64]] = field(default_factory=list)
    falsenodeids: list[NDArray[np.int64]] = field(default_factory=list)
    falseleafs: list[NDArray[np.int64]] = field(default_factory=list)
    leaf_targetids: list[NDArray[np.int64]] = field(default_factory=list)
    leaf_weights: list[NDArray[np.float64]] = field(default_factory=list)
    #: Training cover (sample weight, count or hessian sum) of every node and leaf,
    #: in the same numbering: what TreeSHAP needs and ONNX does not store.
    node_covers: list[NDArray[np.float64]] = field(default_factory=list)
    leaf_covers: list[NDArray[np.float64]] = field(default_factory=list)
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
        cover: NDArray[np.float64] | None = None,
    ) -> None:
        """Append one binary tree given as scikit-learn-style parallel arrays.

        ``left[i] < 0`` marks node ``i`` as a leaf; node 0 is the root.
        """
        is_leaf = left < 0
        covers = np.ones(left.shape[0]) if cover is None else np.asarray(cover, np.float64)
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
                node_covers=covers[leaves[:1]],
            )
            self._append_leaves(leaf_values[leaves[:1]], target, covers[leaves[:1]])
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
            node_covers=covers[interior],
        )
        self._append_leaves(leaf_values[leaves], target, covers[leaves])

    def _append_nodes(self, **arrays: NDArray[Any]) -> None:
        for name, values in arrays.items():
            getattr(self, name).append(values)
        self.n_nodes += int(arrays["featureids"].shape[0])

    def _append_leaves(
        self, weights: NDArray[np.float64], target: int, covers: NDArray[np.float64]
    ) -> None:
        self.leaf_weights.append(np.asarray(weights, dtype=np.float64))
        self.leaf_covers.append(np.asarray(covers, dtype=np.float64))
        self.leaf_targetids.append(np.full(weights.shape[0], target, dtype=np.int64))
        self.n_leaves += int(weights.shape[0])

    def node(self, input_name: str, output_name: str) -> onnx.NodeProto:
        from onnx import TensorProto, helper, numpy_helper

        def ints(parts: list[NDArray[np.int64]]) -> list[int]:
            return [int(v) for v in np.concatenate(parts).tolist()]

        splits = np.concatenate(self.splits).astype(self.dtype)
        weights = np.concatenate(self.leaf_weights).astype(self.dtype)
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
                "nodes_modes", TensorProto.UINT8, [self.n_nodes], [self.mode] * self.n_nodes
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
        "cover": np.asarray(tree.weighted_n_node_samples, dtype=np.float64),
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
                cover=nodes["count"].astype(np.float64),
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


#: LightGBM objectives (the first word of the booster's ``objective``) and their links.
_LIGHTGBM_LINKS = {
    "binary": "logit",
    "multiclass": "softmax",
    "regression": "identity",
    "regression_l1": "identity",
    "huber": "identity",
    "fair": "identity",
    "quantile": "identity",
    "mape": "identity",
    "poisson": "exp",
    "gamma": "exp",
    "tweedie": "exp",
}


def _lightgbm_tree(root: dict[str, Any]) -> dict[str, NDArray[Any]]:
    """A LightGBM ``tree_structure`` as parallel arrays, nodes numbered depth first.

    LightGBM sends ``NaN`` to ``default_left`` when the node's ``missing_type`` is
    ``NaN``; otherwise it reads ``NaN`` as ``0.0``, so ``NaN`` goes where zero goes.
    """
    left: list[int] = []
    right: list[int] = []
    feature: list[int] = []
    threshold: list[float] = []
    missing_left: list[int] = []
    values: list[float] = []
    cover: list[float] = []

    def visit(node: dict[str, Any]) -> int:
        index = len(left)
        for column in (left, right, feature, missing_left):
            column.append(-1)
        threshold.append(0.0)
        values.append(float(node.get("leaf_value", 0.0)))
        cover.append(float(node.get("internal_count", node.get("leaf_count", 1))))
        if "split_index" not in node:
            return index
        if node["decision_type"] != "<=":
            raise UnsupportedTreeModelError("categorical splits")
        split = float(node["threshold"])
        missing = str(node["missing_type"])
        if missing == "NaN":
            goes_left = bool(node["default_left"])
        elif missing == "None" or bool(node["default_left"]) == (split >= 0.0):
            goes_left = split >= 0.0
        else:  # zero_as_missing sending zero against its comparison
            raise UnsupportedTreeModelError("zero as missing")
        feature[index], threshold[index], missing_left[index] = (
            int(node["split_feature"]),
            split,
            int(goes_left),
        )
        left[index] = visit(node["left_child"])
        right[index] = visit(node["right_child"])
        return index

    visit(root)
    return {
        "left": np.array(left, np.int64),
        "right": np.array(right, np.int64),
        "feature": np.array(feature, np.int64),
        "threshold": np.array(threshold, np.float64),
        "missing_left": np.array(missing_left, np.int64),
        "leaf_values": np.array(values, np.float64),
        "cover": np.array(cover, np.float64),
    }


def _lightgbm(estimator: Any) -> tuple[_Ensemble, NDArray[np.float64], str]:
    """LightGBM: ``sum(leaf value)`` per class in float64; leaves carry the shrinkage.

    The booster's dump gives thresholds and leaf values with 17 significant digits,
    so they are LightGBM's doubles; ``boost_from_average`` lives in the first tree.
    """
    dump = estimator.booster_.dump_model()
    if dump.get("average_output"):
        raise UnsupportedTreeModelError("boosting_type 'rf'")
    if any(t.get("is_linear") for t in dump["tree_info"]):
        raise UnsupportedTreeModelError("linear trees")
    objective, *options = str(dump["objective"]).split()
    link = _LIGHTGBM_LINKS.get(objective)
    if link is None:
        raise UnsupportedTreeModelError(f"objective {objective!r}")
    if link == "logit" and "sigmoid:1" not in options:
        raise UnsupportedTreeModelError("a sigmoid other than 1")
    n_per_iter = int(dump["num_tree_per_iteration"])
    ensemble = _Ensemble(n_targets=n_per_iter)
    for position, tree in enumerate(dump["tree_info"]):
        arrays = _lightgbm_tree(tree["tree_structure"])
        ensemble.add_tree(**arrays, target=position % n_per_iter)
    return ensemble, np.zeros(n_per_iter), link


#: XGBoost objectives and their links; XGBoost adds its intercept as a margin.
_XGBOOST_LINKS = {
    "binary:logistic": "logit",
    "multi:softprob": "softmax",
    "reg:squarederror": "identity",
    "reg:absoluteerror": "identity",
    "reg:pseudohubererror": "identity",
    "count:poisson": "exp",
    "reg:gamma": "exp",
    "reg:tweedie": "exp",
}


def _xgboost_intercept(learner: dict[str, Any], link: str) -> NDArray[np.float32]:
    """XGBoost's ``base_score`` as a float32 margin, computed as XGBoost computes it."""
    text = str(learner["learner_model_param"]["base_score"]).strip("[]")
    base = np.array([float(v) for v in text.split(",")], dtype=np.float32)
    one = np.float32(1.0)
    if link == "logit":
        return np.array(-np.log(one / base - one, dtype=np.float64), dtype=np.float32)
    if link == "exp":
        return np.array(np.log(base, dtype=np.float64), dtype=np.float32)
    return base


def _xgboost(estimator: Any) -> tuple[_Ensemble, NDArray[np.float64], str]:
    """XGBoost: float32 inputs, ``x < split``, leaves summed in float32 in tree order.

    XGBoost starts each class's sum at its intercept, so the intercept is folded into
    that class's first tree (``float32(base + leaf)``, XGBoost's first addition) and
    the float32 ``TreeEnsemble`` reproduces XGBoost's margins to the bit.
    """
    import json

    booster = estimator.get_booster()
    learner = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]
    objective = str(learner["objective"]["name"])
    link = _XGBOOST_LINKS.get(objective)
    if link is None:
        raise UnsupportedTreeModelError(f"objective {objective!r}")
    gbm = learner["gradient_booster"]
    if gbm["name"] != "gbtree":
        raise UnsupportedTreeModelError(f"booster {gbm['name']!r}")
    trees, groups = gbm["model"]["trees"], gbm["model"]["tree_info"]
    if int(learner["learner_model_param"].get("num_target", "1")) != 1:
        raise UnsupportedTreeModelError("multi-output targets")
    n_targets = max(1, int(learner["learner_model_param"]["num_class"]))
    intercept = np.broadcast_to(_xgboost_intercept(learner, link), (n_targets,))
    ensemble = _Ensemble(n_targets=n_targets, mode=1, dtype=np.float32)
    started: set[int] = set()
    for tree, group in zip(trees, groups, strict=True):
        if any(int(t) != 0 for t in tree["split_type"]):
            raise UnsupportedTreeModelError("categorical splits")
        left = np.asarray(tree["left_children"], dtype=np.int64)
        conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
        is_leaf = left < 0
        leaves = np.where(is_leaf, conditions, np.float32(0.0))
        if group not in started:
            leaves = np.where(is_leaf, intercept[group] + leaves, leaves)
            started.add(group)
        ensemble.add_tree(
            left=np.where(is_leaf, -1, left),
            right=np.asarray(tree["right_children"], dtype=np.int64),
            feature=np.asarray(tree["split_indices"], dtype=np.int64),
            threshold=conditions.astype(np.float64),
            missing_left=np.asarray(tree["default_left"], dtype=np.int64),
            leaf_values=leaves.astype(np.float64),
            target=int(group),
            cover=np.asarray(tree["sum_hessian"], dtype=np.float64),
        )
    return ensemble, np.zeros(n_targets), link


def _float32_link(g: _Graph, margin: str, link: str, *, classifier: bool) -> str:
    """XGBoost's float32 link on float32 margins; returns the double output.

    ``exp`` runs in double and is rounded to float32 (``expf`` is correctly rounded
    but for rare last-bit cases); additions and divisions are float32, as in XGBoost.
    """
    from onnx import TensorProto

    def expf(name: str, out: str) -> str:
        wide = g.add("Cast", [name], f"{out}_wide", to=TensorProto.DOUBLE)
        return g.add("Cast", [g.add("Exp", [wide], f"{out}_exp")], out, to=TensorProto.FLOAT)

    one = g.constant("one_float32", np.array(1.0, dtype=np.float32))
    if link == "logit":
        # 1 / (1 + expf(min(-x, 88.7))); predict_proba's 1 - p is float32 too.
        limit = g.constant("exp_limit", np.array(88.7, dtype=np.float32))
        clipped = g.add("Min", [g.add("Neg", [margin], "neg_margin"), limit], "neg_margin_clip")
        denominator = g.add("Add", [expf(clipped, "exp_neg_margin"), one], "denominator")
        positive = g.add("Reciprocal", [denominator], "p_positive")
        negative = g.add("Sub", [one, positive], "p_negative")
        result = g.add("Concat", [negative, positive], "proba_float32", axis=1)
    elif link == "softmax":
        # exps of (x - max) in float32, their sum in double, the quotient in float32.
        axes = g.constant("class_axis", np.array([1], dtype=np.int64))
        peak = g.add("ReduceMax", [margin, axes], "margin_max", keepdims=1)
        exps = expf(g.add("Sub", [margin, peak], "margin_shift"), "exps")
        wide = g.add("Cast", [exps], "exps_double", to=TensorProto.DOUBLE)
        total = g.add("ReduceSum", [wide, axes], "exps_sum", keepdims=1)
        total32 = g.add("Cast", [total], "exps_sum_float32", to=TensorProto.FLOAT)
        result = g.add("Div", [exps, total32], "proba_float32")
    elif link == "exp":
        result = expf(margin, "prediction_float32")
    elif link == "identity":
        result = margin
    else:
        raise UnsupportedTreeModelError(f"float32 link {link!r}")
    if not classifier and link in ("logit", "softmax"):
        raise UnsupportedTreeModelError(f"link {link!r} for a regressor")
    return g.add("Cast", [result], "score", to=TensorProto.DOUBLE)


def _family(estimator: Any) -> str:
    bases = {cls.__name__ for cls in type(estimator).__mro__}
    for family in ("LGBMModel", "XGBModel"):
        if family in bases:
            return family
    name = type(estimator).__name__
    for family in ("RandomForest", "HistGradientBoosting", "GradientBoosting"):
        if name.startswith(family):
            return family
    raise UnsupportedTreeModelError(f"estimator {name}")


_EXTRACTORS = {
    "RandomForest": _forest,
    "GradientBoosting": _gradient_boosting,
    "HistGradientBoosting": _hist_gradient_boosting,
    "LGBMModel": _lightgbm,
    "XGBModel": _xgboost,
}


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
    ensemble, baseline, link = _EXTRACTORS[family](estimator)

    g = _Graph()
    x = INPUT_NAME
    if family in ("RandomForest", "GradientBoosting"):
        # scikit-learn trees compare float32(x) with float64 thresholds.
        x = g.add("Cast", [x], "x_float32", to=TensorProto.FLOAT)
        x = g.add("Cast", [x], "x_rounded", to=TensorProto.DOUBLE)
    elif family == "XGBModel":
        # XGBoost reads X as float32 and sums its float32 leaves in float32.
        x = g.add("Cast", [x], "x_float32", to=TensorProto.FLOAT)
    raw_name = "raw_sum"
    g.nodes.append(ensemble.node(x, raw_name))
    score = raw_name
    if ensemble.dtype == np.float32:
        score = _float32_link(g, score, link, classifier=_is_classifier(estimator))
        link = "done"
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
        elif link == "done" or (link == "mean" and n_classes > 2):
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


#: The space a tree ensemble's explanation adds up in, by link (ADR 71).
_SPACES = {
    "logit": "log_odds",
    "logit2": "margin",
    "softmax": "margin",
    "identity": "value",
    "exp": "log_value",
}


def tree_ensemble_arrays(estimator: Any, *, n_features: int) -> tuple[TreeArrays, str]:
    """The ensemble :func:`tree_ensemble_to_onnx` writes, as TreeSHAP input, and its space.

    The node and leaf arrays are the ``TreeEnsemble`` node's, in its numbering, plus
    every node's training cover.  The space is ``probability`` (forest classifiers),
    ``value`` (identity regressors), ``log_odds``, ``margin`` or ``log_value``.

    Raises
    ------
    UnsupportedTreeModelError
        When the estimator uses something the writer does not model.
    """
    from flywheel.explain.trees import TreeArrays

    family = _family(estimator)
    ensemble, baseline, link = _EXTRACTORS[family](estimator)

    def cat(parts: list[NDArray[Any]], dtype: Any) -> NDArray[Any]:
        return np.concatenate(parts).astype(dtype)

    scale = 1.0
    if link == "mean":
        scale = 1.0 / len(estimator.estimators_)
        space = "probability" if _is_classifier(estimator) else "value"
    else:
        space = _SPACES[link]
    arrays = TreeArrays(
        featureids=cat(ensemble.featureids, np.int64),
        splits=cat(ensemble.splits, np.float64),
        missing_true=cat(ensemble.missing_true, np.int64),
        truenodeids=cat(ensemble.truenodeids, np.int64),
        trueleafs=cat(ensemble.trueleafs, np.int64),
        falsenodeids=cat(ensemble.falsenodeids, np.int64),
        falseleafs=cat(ensemble.falseleafs, np.int64),
        node_covers=cat(ensemble.node_covers, np.float64),
        leaf_targetids=cat(ensemble.leaf_targetids, np.int64),
        leaf_weights=cat(ensemble.leaf_weights, np.float64),
        leaf_covers=cat(ensemble.leaf_covers, np.float64),
        roots=np.asarray(ensemble.roots, dtype=np.int64),
        baseline=np.asarray(baseline, dtype=np.float64),
        n_features=n_features,
        mode=ensemble.mode,
        float32_inputs=family in ("RandomForest", "GradientBoosting", "XGBModel"),
        scale=scale,
    )
    return arrays, space
