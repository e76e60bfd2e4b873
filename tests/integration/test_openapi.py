"""docs/openapi.json is what the inference resolver generates; regenerate it when this fails.

Regenerate: ``FLYWHEEL_UPDATE_OPENAPI=1 .venv/bin/pytest tests/integration/test_openapi.py``
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.serving.http import OPENAPI_INFO
from tests.serving_support import POWERTOOLS_ENV

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def generated() -> dict:
    from functions.inference import handler

    return json.loads(handler.openapi_app().get_openapi_json_schema(**OPENAPI_INFO))


@pytest.fixture
def powertools_env(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The inference function's environment on provisioned moto resources.

    Resolving a request builds the inference service; with the default local backend
    that would start a background moto server on the default port and leave it running.
    """
    from functions.inference import handler

    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    for key, value in {**local_names, **POWERTOOLS_ENV}.items():
        monkeypatch.setenv(key, value)
    handler._service_for.cache_clear()
    yield
    handler._service_for.cache_clear()


def test_the_committed_openapi_document_is_up_to_date(powertools_env):
    spec = generated()
    if os.environ.get("FLYWHEEL_UPDATE_OPENAPI") == "1":
        SPEC.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    assert SPEC.exists(), "docs/openapi.json is missing; see this module's docstring"
    assert json.loads(SPEC.read_text()) == spec, (
        "docs/openapi.json is stale; regenerate it (see this module's docstring)"
    )


def test_the_document_describes_the_predict_contract(powertools_env):
    operation = generated()["paths"]["/v1/models/{name}/predict"]["post"]
    assert {"200", "400", "404", "413", "422", "500", "503"} <= set(operation["responses"])
    error = operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/ErrorBody")


def test_the_document_describes_the_prompts_route(powertools_env):
    spec = generated()
    operation = spec["paths"]["/v1/prompts/{name}/invoke"]["post"]
    assert {"200", "400", "404", "422", "429", "500", "502", "504"} <= set(operation["responses"])
    for status in ("404", "422", "429", "502", "504"):
        error = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert error.endswith("/ErrorBody"), status
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/InvokeRequest")
    request = spec["components"]["schemas"]["InvokeRequest"]
    assert request["required"] == ["variables"]
    assert request["properties"]["assignment_key"]["anyOf"][0]["maxLength"] == 256
    answer = spec["components"]["schemas"]["InvokeResponse"]
    assert {"prompt", "version", "variant", "usage", "cost", "currency", "request_id"} <= set(
        answer["required"]
    )


def test_the_document_describes_the_prompt_registration_route(powertools_env):
    spec = generated()
    operation = spec["paths"]["/v1/prompts/{name}/versions"]["post"]
    assert {"200", "201", "400", "401", "409", "413", "422", "500", "502"} <= set(
        operation["responses"]
    )
    for status in ("200", "201"):
        answer = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert answer.endswith("/PromptVersionReceipt"), status
    for status in ("400", "401", "409", "413", "422", "502"):
        error = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert error.endswith("/ErrorBody"), status
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/PromptVersionRequest")
    request = spec["components"]["schemas"]["PromptVersionRequest"]
    assert sorted(request["required"]) == ["reason", "spec"]
    assert request["additionalProperties"] is False  # never a requester in the body
    # The evaluation set's lines travel with the spec (ADR 84).
    lines = request["properties"]["evaluation_set"]["anyOf"][0]
    assert (lines["type"], lines["items"], lines["minItems"]) == ("array", {"type": "string"}, 1)
    receipt = spec["components"]["schemas"]["PromptVersionReceipt"]
    assert set(receipt["required"]) == {
        "prompt", "version", "status", "sha256", "approval_id", "created", "evaluation",
    }  # fmt: skip


def test_every_documented_operation_is_served_by_the_deployed_resolver(powertools_env):
    # The documented resolver and the deployed one declare the route separately
    # (the deployed one skips Powertools' validation middleware for speed): an
    # operation the deployed resolver does not route would answer Powertools' 404.
    # (The prompts routes are the LLM gateway's and the registration function's.)
    from functions.inference import handler
    from tests.serving_support import FakeContext

    for path, operations in generated()["paths"].items():
        if path.startswith("/v1/prompts/"):
            continue
        for method in operations:
            event = {
                "resource": path,
                "path": path.replace("{name}", "no-such-model"),
                "httpMethod": method.upper(),
                "headers": {"content-type": "application/json"},
                "requestContext": {"requestId": "r-openapi", "stage": "test"},
                "body": "{nope",
                "isBase64Encoded": False,
            }
            response = handler.app.resolve(event, FakeContext())
            body = json.loads(response["body"])
            assert response["statusCode"] == 400, (method, path, body)
            assert body["error"]["code"] == "invalid_request"
