"""ONNX conversion: float64 tree ensembles, fallbacks, and the parity rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)

from flywheel.errors import ParityError
from flywheel.registry.models import ParityReport, Task
from flywheel.training.config import ParityTolerances
from flywheel.training.conversion import (
    ModelOutputs,
    check_parity,
    convert_to_onnx,
    measure_parity,
    onnx_outputs,
    sklearn_outputs,
)


def _max_diff(estimator: Any, x: np.ndarray, task: Task) -> tuple[float, Any]:
    conversion = convert_to_onnx(estimator, task=task, n_features=x.shape[1])
    ours = onnx_outputs(conversion.onnx_bytes, x, task=task)
    theirs = sklearn_outputs(estimator, x, task=task)
    if task is Task.CLASSIFICATION:
        np.testing.assert_array_equal(ours.labels, theirs.labels)
    return float(np.max(np.abs(ours.values - theirs.values))), conversion


@pytest.mark.parametrize(
    "estimator",
    [
        GradientBoostingRegressor(n_estimators=5, loss="huber", random_state=0),
        GradientBoostingRegressor(n_estimators=3, max_depth=1, min_samples_leaf=400),
        HistGradientBoostingRegressor(max_iter=10, loss="poisson"),
        HistGradientBoostingRegressor(max_iter=10, loss="absolute_error"),
    ],
    ids=["gb-huber", "gb-single-leaf-trees", "hgb-poisson", "hgb-absolute"],
)
def test_float64_tree_writer_covers_losses_and_single_leaf_trees(estimator: Any) -> None:
    x, y = load_diabetes(return_X_y=True)
    estimator.fit(x, y)

    diff, conversion = _max_diff(estimator, x, Task.REGRESSION)

    assert conversion.precision == "float64"
    assert conversion.converter == "flywheel-trees"
    assert diff < 1e-9


@pytest.mark.parametrize(
    "estimator",
    [
        GradientBoostingClassifier(n_estimators=5, loss="exponential", random_state=0),
        RandomForestClassifier(n_estimators=4, random_state=0),  # even count: exact ties
    ],
    ids=["gb-exponential", "rf-even-trees"],
)
def test_float64_tree_writer_binary_variants(estimator: Any) -> None:
    x, y = load_iris(return_X_y=True)
    labels = np.where(y == 2, "virginica", "other").astype(object)
    estimator.fit(x, labels)

    diff, _ = _max_diff(estimator, x, Task.CLASSIFICATION)

    assert diff < 1e-12


def test_missing_values_follow_scikit_learn_in_float64() -> None:
    x, y = load_iris(return_X_y=True)
    x = x.copy()
    rng = np.random.default_rng(0)
    x[rng.random(x.shape) < 0.2] = np.nan
    estimator = HistGradientBoostingClassifier(max_iter=10).fit(x, y.astype(str))

    diff, _ = _max_diff(estimator, x, Task.CLASSIFICATION)

    assert diff < 1e-12


def test_categorical_splits_fall_back_to_float32_with_a_reason() -> None:
    x, y = load_diabetes(return_X_y=True)
    x = x.copy()
    x[:, 1] = (x[:, 1] > 0).astype(float)  # "sex" as a category
    estimator = HistGradientBoostingRegressor(max_iter=5, categorical_features=[1]).fit(x, y)

    conversion = convert_to_onnx(estimator, task=Task.REGRESSION, n_features=x.shape[1])

    assert conversion.precision == "float32"
    assert conversion.converter == "skl2onnx"
    assert conversion.fallback_reason == "float64 tree writer does not support categorical splits"


def test_models_carry_deterministic_metadata_and_pass_the_checker() -> None:
    x, y = load_iris(return_X_y=True)
    estimator = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y.astype(str))

    conversion = convert_to_onnx(
        estimator, task=Task.CLASSIFICATION, n_features=4, metadata={"flywheel.model": "iris"}
    )
    model = onnx.load_from_string(conversion.onnx_bytes)

    onnx.checker.check_model(model, full_check=True)
    assert {p.key: p.value for p in model.metadata_props} == {
        "flywheel.model": "iris",
        "flywheel.precision": "float64",
    }
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    assert {(o.domain, o.version) for o in model.opset_import} == {("", 21), ("ai.onnx.ml", 5)}


def _outputs(labels: list[str] | None, values: list[Any]) -> ModelOutputs:
    return ModelOutputs(
        labels=None if labels is None else np.array(labels),
        values=np.array(values, dtype=np.float64),
    )


def test_a_tie_within_tolerance_does_not_fail_label_agreement() -> None:
    reference = _outputs(["a", "a"], [[0.5, 0.5], [0.9, 0.1]])
    candidate = _outputs(["b", "a"], [[0.5 - 1e-7, 0.5 + 1e-7], [0.9, 0.1]])

    report = measure_parity(
        reference,
        candidate,
        task=Task.CLASSIFICATION,
        precision="float32",
        tolerances=ParityTolerances(),
    )

    assert report.label_agreement == 0.5
    assert report.passed


def test_a_decisive_label_flip_fails_even_with_small_probability_gaps() -> None:
    reference = _outputs(["a"] * 200, [[0.6, 0.4]] * 200)
    candidate = _outputs(["b"] + ["a"] * 199, [[0.4, 0.6]] + [[0.6, 0.4]] * 199)

    report = measure_parity(
        reference,
        candidate,
        task=Task.CLASSIFICATION,
        precision="float32",
        tolerances=ParityTolerances(float32_max_abs_diff=None),
    )

    assert report.p99_abs_diff <= 1e-4  # one bad row in 200 hides under p99 ...
    assert report.label_agreement == 0.995
    assert not report.passed  # ... but its flipped label does not


def test_float32_regression_limits_scale_with_the_target() -> None:
    y = np.full(100, 1000.0)
    reference = _outputs(None, y.tolist())
    candidate = _outputs(None, (y + 0.05).tolist())  # 5e-5 relative: float32 rounding

    report = measure_parity(
        reference,
        candidate,
        task=Task.REGRESSION,
        precision="float32",
        tolerances=ParityTolerances(),
    )

    assert report.p99_abs_diff_limit == pytest.approx(1e-4 * 1001)
    assert report.max_abs_diff_limit == pytest.approx(1e-3 * 1001)
    assert report.passed


def test_float64_regression_limits_are_absolute() -> None:
    reference = _outputs(None, [1000.0, 2000.0])
    candidate = _outputs(None, [1000.0, 2000.0 + 2e-5])

    report = measure_parity(
        reference,
        candidate,
        task=Task.REGRESSION,
        precision="float64",
        tolerances=ParityTolerances(),
    )

    assert (report.max_abs_diff_limit, report.p99_abs_diff_limit) == (1e-5, None)
    assert not report.passed
    with pytest.raises(ParityError, match=r"max \|Δ\| 2e-05 \(limit 1e-05\)"):
        check_parity(report)


def test_nan_outputs_never_pass() -> None:
    report = measure_parity(
        _outputs(None, [1.0]),
        _outputs(None, [float("nan")]),
        task=Task.REGRESSION,
        precision="float64",
        tolerances=ParityTolerances(),
    )

    assert report.max_abs_diff == float("inf")
    assert not report.passed


def test_check_parity_returns_a_passing_report_unchanged() -> None:
    report = ParityReport(
        rows=3, precision="float64", max_abs_diff=0.0, p99_abs_diff=0.0, passed=True
    )

    assert check_parity(report) is report


def test_importing_the_training_modules_loads_no_ml_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import flywheel.training.config, flywheel.training.conversion\n"
        "import flywheel.training.datasets, flywheel.training.reproduce\n"
        "import flywheel.training.trainer, flywheel.training.lineage\n"
        "heavy = {'sklearn', 'skl2onnx', 'onnx', 'onnxruntime', 'pyarrow', 'boto3',\n"
        "         'lightgbm', 'xgboost'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
