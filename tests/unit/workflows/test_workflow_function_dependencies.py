"""The approval API and the promotion steps ship without training libraries.

They run on the runtime/control layers (``infra/catalog.py``), which hold no
scikit-learn, skl2onnx or ONNX: importing and wiring them must never load those.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TRAINING_ONLY = ("sklearn", "scipy", "skl2onnx", "onnx", "pyarrow", "joblib", "lightgbm", "xgboost")


def test_approval_and_promotion_functions_never_load_training_libraries() -> None:
    script = f"""
import json, os, sys
from flywheel.settings import RESOURCE_VARIABLES
os.environ.update(AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_SERVICE_NAME="t",
                  POWERTOOLS_METRICS_NAMESPACE="t", POWERTOOLS_TRACE_DISABLED="true",
                  FLYWHEEL_BACKEND="aws")
os.environ.update({{k: "flywheel-test-x" for k in RESOURCE_VARIABLES.values()}})
os.environ["FLYWHEEL_AUDIT_KEY"] = "alias/flywheel-test-audit"
from flywheel.composition import AwsPlatform
from flywheel.settings import Settings
from functions.approval_api import handler as approvals
from functions.promotion_steps import handler as promotion
platform = AwsPlatform(Settings())
platform.approval_service()
platform.promotion_steps()
platform.workflow_failures()
print(json.dumps(sorted(m for m in {TRAINING_ONLY!r} if m in sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
