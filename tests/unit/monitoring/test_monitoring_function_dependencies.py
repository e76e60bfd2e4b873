"""The feedback and monitoring functions ship on the runtime/control layers.

Those layers hold numpy, pydantic and Powertools but no scikit-learn, SciPy, ONNX or
pyarrow (``infra/catalog.py``): importing the handlers and building their services
must never load those.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NOT_IN_THE_LAYERS = (
    "sklearn",
    "scipy",
    "skl2onnx",
    "onnx",
    "pyarrow",
    "joblib",
    "pandas",
    "lightgbm",
    "xgboost",
)


def test_feedback_and_monitor_functions_load_no_library_outside_their_layers() -> None:
    script = f"""
import json, os, sys
from flywheel.settings import RESOURCE_VARIABLES
os.environ.update(AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_SERVICE_NAME="t",
                  POWERTOOLS_METRICS_NAMESPACE="t", POWERTOOLS_TRACE_DISABLED="true",
                  FLYWHEEL_BACKEND="aws")
os.environ.update({{k: "flywheel-test-x" for k in RESOURCE_VARIABLES.values()}})
os.environ["FLYWHEEL_AUDIT_KEY"] = "alias/flywheel-test-audit"
from functions.feedback import handler as feedback
from functions.drift_scorer import handler as drift
from functions.performance_monitor import handler as performance
from functions.llm_monitor import handler as llm_monitor
feedback._service(); drift._monitor(); performance._monitor(); llm_monitor._monitor()
print(json.dumps(sorted(m for m in {NOT_IN_THE_LAYERS!r} if m in sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
