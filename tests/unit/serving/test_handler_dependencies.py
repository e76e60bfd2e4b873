"""The inference handler ships without training libraries: nothing on its path imports them.

(``tests/unit/serving/test_serving_dependencies.py`` checks the ``flywheel.serving`` package;
this extends the check to the Lambda handler and the adapters it uses.)
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.serving_support import trained_model

ROOT = Path(__file__).resolve().parents[3]
HANDLER = ROOT / "functions" / "inference" / "handler.py"
TRAINING_ONLY = (
    "sklearn",
    "scipy",
    "pandas",
    "onnx",
    "skl2onnx",
    "joblib",
    "pyarrow",
    "lightgbm",
    "xgboost",
    "shap",
    "numba",
)
#: Never named by serving code (numpy itself imports the module, so only the AST check applies).
UNSAFE = ("pickle", "cloudpickle", "dill")
SERVING_FILES = [
    HANDLER,
    *sorted((ROOT / "shared" / "flywheel" / "serving").glob("*.py")),
    *(
        ROOT / "shared" / "flywheel" / "adapters" / f"{name}.py"
        for name in ("emf_metrics", "s3_capture", "s3_artifacts", "dynamodb", "memory_capture")
    ),
    *sorted((ROOT / "shared" / "flywheel" / "composition").glob("*.py")),
]


def _roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_serving_module_names_a_training_library():
    for path in SERVING_FILES:
        assert _roots(path).isdisjoint(TRAINING_ONLY + UNSAFE), path


def test_a_request_through_the_handler_leaves_training_libraries_unimported():
    # A fresh interpreter: the handler, a registered model in memory, one request.
    trained = trained_model()
    script = f"""
import json, os, sys
os.environ.update(AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_SERVICE_NAME="t",
                  POWERTOOLS_METRICS_NAMESPACE="t", POWERTOOLS_TRACE_DISABLED="true")
from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.adapters.memory_metrics import InMemoryServingMetrics
from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
from flywheel.registry.models import VersionDraft
from flywheel.serving.service import InferenceService
from flywheel.serving.settings import ServingSettings
from functions.inference import handler
from tests.serving_support import FakeContext, raw_event

store = InMemoryArtifactStore()
audit = InMemoryAuditLog()
registry = InMemoryModelRegistry(audit)
ref = store.put("models/cancer/model.onnx", sys.stdin.buffer.read())
explainer = store.put("models/cancer/explainer.npz",
                      bytes.fromhex({(trained.explainer or b"").hex()!r}))
draft = VersionDraft.model_validate_json({trained.draft.model_dump_json()!r})
registry.create_version(draft.model_copy(update={{"artifact": ref, "explainer": explainer}}),
                        actor="t",
                        audit=__import__("flywheel.audit.models", fromlist=["x"]).AuditDraft(
                            model="cancer", action="version_registered", actor="t"))
service = InferenceService.start(
    ServingSettings(backend="local", model_name="cancer", model_version="1"),
    registry=registry, artifacts=store, metrics=InMemoryServingMetrics(),
    sink=InMemoryCaptureSink(), background=False)
handler._service_for = lambda pin: service
response = handler.handler(raw_event(json.dumps({{"record": {json.dumps(trained.records[0])}}})),
                           FakeContext())
explained = handler.handler(
    raw_event(json.dumps({{"record": {json.dumps(trained.records[0])}, "explain": True}})),
    FakeContext())
assert explained["statusCode"] == 200 and "attributions" in explained["body"], explained
print(response["statusCode"])
print(json.dumps(sorted(m for m in {list(TRAINING_ONLY)!r} if m in sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=trained.onnx,
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    status, loaded = result.stdout.decode().strip().splitlines()[-2:]
    assert status == "200"
    assert json.loads(loaded) == []
