"""The serving path ships without onnx, scikit-learn, pickle or boto3."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import flywheel.serving

SERVING = Path(flywheel.serving.__file__).parent
FORBIDDEN = {
    "onnx",
    "sklearn",
    "skl2onnx",
    "lightgbm",
    "xgboost",
    "pickle",
    "joblib",
    "cloudpickle",
    "boto3",
    "botocore",
}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_serving_modules_never_import_training_or_unsafe_libraries():
    for path in sorted(SERVING.glob("*.py")):
        assert _imported_roots(path).isdisjoint(FORBIDDEN), path.name


def test_loading_and_predicting_leaves_onnx_and_sklearn_unimported(iris_f32):
    # A fresh interpreter, so nothing the test session imported counts.
    script = f"""
import sys
from flywheel.registry.models import FeatureSpec, InputSchema, OutputSchema, Task
from flywheel.serving import OnnxModel
data = sys.stdin.buffer.read()
model = OnnxModel.load(
    data,
    expected_sha256={iris_f32.sha256!r},
    input_schema=InputSchema.model_validate_json({iris_f32.input_schema.model_dump_json()!r}),
    output_schema=OutputSchema.model_validate_json({iris_f32.output_schema.model_dump_json()!r}),
)
print(model.predict([[5.1, 3.5, 1.4, 0.2]]).labels[0])
print(sorted(m for m in ("onnx", "sklearn", "skl2onnx", "boto3") if m in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=iris_f32.data,
        capture_output=True,
        check=True,
    )
    assert result.stdout.decode().split("\n")[:2] == ["0", "[]"]


def test_importing_serving_does_not_load_onnxruntime():
    result = subprocess.run(
        [sys.executable, "-c", "import sys, flywheel.serving; print('onnxruntime' in sys.modules)"],
        capture_output=True,
        check=True,
        text=True,
    )
    assert result.stdout.strip() == "False"
