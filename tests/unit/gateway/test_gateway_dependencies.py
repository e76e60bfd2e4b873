"""The LLM gateway's function needs only the control-plane layers (pydantic, Powertools,
boto3): a call through its handler imports neither numpy nor ONNX Runtime, nor anything
of training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("numpy", "onnxruntime", "onnx", "sklearn", "scipy", "pandas", "pyarrow", "moto")


def test_a_call_through_the_handler_leaves_numpy_and_onnxruntime_unimported():
    script = f"""
import json, os, sys
os.environ.update(AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_SERVICE_NAME="t",
                  POWERTOOLS_METRICS_NAMESPACE="t", POWERTOOLS_TRACE_DISABLED="true",
                  POWERTOOLS_METRICS_DISABLED="true")
from flywheel.adapters.memory_metrics import InMemoryGatewayMetrics
from flywheel.composition import InMemoryPlatform
from flywheel.gateway.settings import GatewaySettings
from flywheel.llm.prompts import parse_prompt
from functions.llm_gateway import handler

platform = InMemoryPlatform(GatewaySettings(backend="local"))
spec = parse_prompt({{
    "name": "ticket-summary", "description": "d", "owner": "o", "provider": "local",
    "model_id": "local.stand-in",
    "template": "{{{{ customer }}}}: {{{{ ticket }}}} {{{{ area }}}}",
    "variables": {{"customer": {{}}, "ticket": {{}}, "area": {{}}}},
    "parameters": {{"max_tokens": 20}},
}})
platform.prompt_catalog().register(spec, actor="ana", environment="0" * 64)
platform.registry.request_approval("ticket-summary", 1, actor="ana")
platform.registry.approve("ticket-summary", 1, actor="bo", reason="ok")
platform.registry.promote("ticket-summary", 1, actor="bo", reason="ok")
gateway = platform.prompt_gateway(metrics=InMemoryGatewayMetrics(), background=False)
handler._gateway = lambda: gateway
event = json.loads(open("tests/events/llm_invoke.json").read())
class Context:
    function_name = "llm-gateway"; function_version = "1"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:llm-gateway"
    aws_request_id = "r"; log_group_name = "g"; log_stream_name = "s"
    @staticmethod
    def get_remaining_time_in_millis(): return 10_000
response = handler.handler(event, Context())
gateway.close()
print(response["statusCode"])
print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, cwd=ROOT, check=False, text=True
    )

    assert result.returncode == 0, result.stderr[-2000:]
    status, loaded = result.stdout.strip().splitlines()[-2:]
    assert status == "200"
    assert json.loads(loaded) == []
