"""Score the candidate and the champion on the same holdout, with ONNX Runtime.

Both models are scored by what serving runs (:class:`~flywheel.serving.predictor.OnnxModel`,
SHA-256 checked before loading), never by scikit-learn, so the gate compares the
numbers users would get. The champion's global importance is re-computed on the same
holdout from its explainer artifact (:func:`holdout_importance`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.errors import InvalidInputError
from flywheel.explain.artifact import Explainer, ExplainerError
from flywheel.registry.models import InputSchema, OutputSchema, Task
from flywheel.serving.predictor import OnnxModel
from flywheel.training.conversion import ModelOutputs
from flywheel.training.metrics import holdout_metrics
from flywheel.workflows.state import ModelScore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from numpy.typing import NDArray

    from flywheel.drift.bias import BiasResult
    from flywheel.monitoring.policy import ProtectedAttribute
    from flywheel.workflows.config import FairnessPolicy


class Holdout:
    """The run's holdout: features by name, targets as codes (classification) or values.

    Examples
    --------
    >>> h = Holdout(np.array([[1.0, 2.0]]), np.array([0]), ("a", "b"), Task.CLASSIFICATION,
    ...             ("no", "yes"))
    >>> h.columns(("b",)).tolist()
    [[2.0]]
    """

    def __init__(
        self,
        X: NDArray[np.float64],  # noqa: N803
        y: NDArray[Any],
        feature_names: Sequence[str],
        task: Task,
        classes: Sequence[str] = (),
    ) -> None:
        self.X = X
        self.y = y
        self.feature_names = tuple(feature_names)
        self.task = task
        self.classes = tuple(classes)

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])

    def columns(self, names: Sequence[str]) -> NDArray[np.float64]:
        """The holdout restricted to ``names``, in that order."""
        index = [self.feature_names.index(n) for n in names]
        return np.ascontiguousarray(self.X[:, index])

    def incompatibility(self, input_schema: InputSchema, output_schema: OutputSchema) -> str | None:
        """Why a model with these schemas cannot be scored here (``None`` when it can)."""
        if output_schema.task is not self.task:
            return f"it is a {output_schema.task} model; the candidate does {self.task}"
        missing = [n for n in input_schema.feature_names if n not in self.feature_names]
        if missing:
            return f"the holdout lacks its features {missing[:5]}"
        if self.task is Task.CLASSIFICATION and tuple(output_schema.classes) != self.classes:
            return (
                f"its classes {list(output_schema.classes)} differ from the candidate's "
                f"{list(self.classes)}"
            )
        return None


def score(
    onnx_bytes: bytes,
    *,
    sha256: str,
    input_schema: InputSchema,
    output_schema: OutputSchema,
    holdout: Holdout,
    version: int | None = None,
    fairness: FairnessPolicy | None = None,
    bias: ProtectedAttribute | None = None,
) -> ModelScore:
    """Holdout metrics (and the fairness gap and group metrics, when asked) of one ONNX model.

    A model that cannot be scored on this holdout (other task, features or classes) gets
    ``comparable=False`` and the reason, not an error.

    Raises
    ------
    ArtifactIntegrityError
        The bytes are not the ones registered.
    InvalidArtifactError
        ONNX Runtime cannot load the model.
    """
    problem = holdout.incompatibility(input_schema, output_schema)
    if problem is not None:
        return ModelScore(version=version, comparable=False, reason=problem)
    model = OnnxModel.load(
        onnx_bytes,
        expected_sha256=sha256,
        input_schema=input_schema,
        output_schema=output_schema,
        intra_op_threads=1,
    )
    outputs = _outputs(model, holdout.columns(input_schema.feature_names))
    metrics = holdout_metrics(holdout.y, outputs, task=holdout.task, classes=holdout.classes)
    gap = _fairness_gap(outputs, holdout, fairness) if fairness is not None else None
    groups = _bias(outputs, holdout, bias) if bias is not None else None
    return ModelScore(version=version, metrics=metrics, fairness_gap=gap, bias=groups)


def _outputs(model: OnnxModel, matrix: NDArray[np.float64]) -> ModelOutputs:
    prediction = model.predict(matrix)
    if prediction.values is not None:
        return ModelOutputs(labels=None, values=np.asarray(prediction.values, dtype=np.float64))
    labels = np.asarray(prediction.labels, dtype=str)
    if prediction.probabilities is not None:
        probabilities = np.asarray(prediction.probabilities, dtype=np.float64)
    else:  # no probability output: one-hot labels (log loss and AUC become coarse)
        classes = list(prediction.classes)
        probabilities = np.zeros((len(labels), len(classes)), dtype=np.float64)
        for row, label in enumerate(labels):
            if label in classes:
                probabilities[row, classes.index(label)] = 1.0
    return ModelOutputs(labels=labels, values=probabilities)


def _fairness_gap(outputs: ModelOutputs, holdout: Holdout, policy: FairnessPolicy) -> float | None:
    """``|metric(group ≤ threshold) - metric(group > threshold)|``; ``None`` if unmeasurable."""
    if policy.group_feature not in holdout.feature_names:
        return None
    column = holdout.X[:, holdout.feature_names.index(policy.group_feature)]
    values: list[float] = []
    for mask in (column <= policy.threshold, column > policy.threshold):
        if not mask.any():
            return None
        subset = ModelOutputs(
            labels=outputs.labels[mask] if outputs.labels is not None else None,
            values=outputs.values[mask],
        )
        metrics = holdout_metrics(
            holdout.y[mask], subset, task=holdout.task, classes=holdout.classes
        )
        if policy.metric not in metrics:
            return None
        values.append(metrics[policy.metric])
    return abs(values[0] - values[1])


def _bias(outputs: ModelOutputs, holdout: Holdout, policy: ProtectedAttribute) -> BiasResult | None:
    """Group metrics of the predicted classes on the holdout; ``None`` if unmeasurable."""
    if (
        holdout.task is not Task.CLASSIFICATION
        or outputs.labels is None
        or policy.attribute not in holdout.feature_names
    ):
        return None
    column = holdout.X[:, holdout.feature_names.index(policy.attribute)]
    truth = np.asarray(holdout.classes, dtype=object)[np.asarray(holdout.y, dtype=np.intp)]
    try:
        return policy.measure(column, outputs.labels, truth)
    except InvalidInputError:
        return None


def holdout_importance(
    explainer_bytes: bytes,
    *,
    sha256: str,
    input_schema: InputSchema,
    output_schema: OutputSchema,
    holdout: Holdout,
    seed: int,
    model: Callable[[], OnnxModel],
) -> dict[str, float] | None:
    """Mean ``|SHAP|`` per feature of a registered model on ``holdout``, largest first.

    The rows are the ones training explained for the candidate (same holdout, same
    ``seed``). ``model`` loads the ONNX model, which only a sampling explainer needs.
    ``None`` when the model cannot be explained here: another task, features or classes,
    string inputs, or an explainer that cannot be read or run on these columns.
    """
    if input_schema.typed or holdout.incompatibility(input_schema, output_schema) is not None:
        return None
    try:
        explainer = Explainer.from_bytes(explainer_bytes, expected_sha256=sha256)
    except ExplainerError:
        return None
    if tuple(explainer.columns) != tuple(input_schema.feature_names):
        return None
    outputs = _explained_outputs(model(), output_schema) if explainer.approximate else None
    x = holdout.columns(input_schema.feature_names)
    try:
        return explainer.importance(x, model=outputs, seed=seed)
    except (ExplainerError, ValueError, IndexError):
        return None


def _explained_outputs(
    model: OnnxModel, output_schema: OutputSchema
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """The model as ``X -> [rows, explained outputs]`` (what a sampling explainer perturbs)."""
    keep = [1] if len(output_schema.classes) == 2 else list(range(len(output_schema.classes)))

    def run(x: NDArray[np.float64]) -> NDArray[np.float64]:
        prediction = model.predict(x)
        if prediction.values is not None:
            return np.asarray(prediction.values, dtype=np.float64).reshape(-1, 1)
        assert prediction.probabilities is not None
        return np.asarray(prediction.probabilities, dtype=np.float64)[:, keep]

    return run
