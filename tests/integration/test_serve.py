"""``flywheel serve``: HTTP on localhost → REST proxy events → the real handler, routed by alias."""

from __future__ import annotations

import functools
import json
import random
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from flywheel.local.api_gateway import make_server
from flywheel.local.serving import build_gateway
from flywheel.sdk import Flywheel
from tests.serving_support import MODEL, register, trained_model

ROOT = Path(__file__).resolve().parents[2]
#: ``flywheel serve`` answers the prediction route only (the local runtime's REST API serves
#: the others, tests/integration/local/test_rest_api.py); any other route is a 404 there, which
#: would "conform" wherever a 404 is documented and test nothing.
SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json").include(
    path_regex=r"^/v1/models/\{name\}/predict$"
)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def sdk(deployed_sdk: Flywheel) -> Flywheel:
    sdk = deployed_sdk
    trained = trained_model()
    register(sdk, trained)
    sdk.promote(MODEL, 1, reason="launch")
    register(sdk, trained)
    sdk.registry.start_canary(MODEL, 2, actor="ops@example.com")
    return sdk


#: The gateway imports the handler as Lambda does (``inference.handler``); tests may hold
#: it as ``functions.inference.handler``: each keeps its own per-pin services.
HANDLERS = ("inference.handler", "functions.inference.handler")


def _forget_services() -> None:
    for name in HANDLERS:
        module = sys.modules.get(name)
        if module is not None:
            module._service_for.cache_clear()


def _track_services(built: list[Any]) -> dict[Any, Any]:
    """Services the handlers build from now on are kept in ``built``, to be closed (one
    only forgotten keeps its capture thread, which flushes up to 30 s later into whichever
    test's moto is current then); returns each module's own ``_service_for``, to put back."""
    originals: dict[Any, Any] = {}
    for name in HANDLERS:
        module: Any = sys.modules.get(name)
        if module is None:
            continue
        originals[module] = build = module._service_for

        def tracked(pin: tuple[str | None, ...], build: Any = build.__wrapped__) -> Any:
            service = build(pin)
            built.append(service)
            return service

        module._service_for = functools.cache(tracked)
    return originals


def serve(sdk: Flywheel, **options: Any) -> Iterator[str]:
    _forget_services()
    gateway, _ = build_gateway(
        sdk, functions_dir=ROOT / "functions", rng=random.Random(7), **options
    )
    built: list[Any] = []
    originals = _track_services(built)
    server = make_server(gateway, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        for service in built:
            service.close()
        for module, original in originals.items():
            module._service_for = original
        _forget_services()


@pytest.fixture
def url(sdk: Flywheel) -> Iterator[str]:
    yield from serve(sdk, canary_weight=0.5)


def post(url: str, path: str, body: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_curl_gets_predictions_and_alias_weights_split_champion_and_canary(url):
    record = trained_model().records[0]
    answers = [post(url, f"/v1/models/{MODEL}/predict", {"record": record}) for _ in range(30)]
    assert {status for status, _, _ in answers} == {200}
    served = Counter((body["version"], body["variant"]) for _, _, body in answers)
    assert set(served) == {(1, "champion"), (2, "canary")}
    assert all(body["predictions"] == ["malignant"] for _, _, body in answers)
    assert all(
        headers["X-Flywheel-Function-Version"] == str(body["version"])
        for _, headers, body in answers
    )


def test_shadow_mode_answers_with_the_champion_only(sdk):
    for url in serve(sdk, shadow=True):
        record = trained_model().records[0]
        versions = {
            post(url, f"/v1/models/{MODEL}/predict", {"record": record})[2]["version"]
            for _ in range(10)
        }
        assert versions == {1}


def test_unknown_models_and_routes_are_json_404s(url):
    status, _, body = post(url, "/v1/models/nope/predict", {"record": {}})
    assert (status, body["error"]["code"]) == (404, "model_not_found")
    status, _, body = post(url, "/v2/elsewhere", {})
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_errors_keep_their_status_through_the_gateway(url):
    status, _, body = post(url, f"/v1/models/{MODEL}/predict", b"{not json")
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    many = {"records": trained_model().records[:101]}
    status, _, body = post(url, f"/v1/models/{MODEL}/predict", many)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")


@SCHEMA.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_local_api_honours_its_openapi_document(case, url):
    case.call_and_validate(
        base_url=url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
