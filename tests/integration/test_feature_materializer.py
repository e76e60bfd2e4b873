"""The scheduled feature materializer on moto: new offline rows reach the online store once."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import pytest

from flywheel.clock import FixedClock
from flywheel.composition import AwsPlatform
from flywheel.settings import Settings
from tests.feature_support import T0, TRANSFORMS, customer_view, source_rows
from tests.serving_support import POWERTOOLS_ENV, FakeContext

VIEW = "customer-orders"


@pytest.fixture
def handler(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    for key, value in {**local_names, **POWERTOOLS_ENV}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("FLYWHEEL_FEATURE_VIEWS", raising=False)
    from functions.feature_materializer import handler as module

    module._store.cache_clear()
    yield module
    module._store.cache_clear()


def run(module: Any, event: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict]]:
    out = io.StringIO()
    with redirect_stdout(out):
        result = module.handler(event or {"trigger": "schedule"}, FakeContext())
    emf = [json.loads(line) for line in out.getvalue().splitlines() if '"_aws"' in line]
    return result, emf


def test_every_registered_view_is_materialized_once(handler, local_names):
    store = AwsPlatform(
        Settings.of_deployment(local_names, backend="aws"), clock=FixedClock(T0)
    ).feature_store()
    store.transformations = TRANSFORMS
    store.register(customer_view(ttl=None), actor="ana@example.com")
    store.ingest(VIEW, source_rows(["c1", "c2", "c3"], [T0, T0, T0], [10.0, 200.0, 50.0]))

    first, emf = run(handler)

    (report,) = first["views"]
    assert (report["view"], report["written"]) == (VIEW, 3)
    written = next(doc for doc in emf if "OnlineRowsWritten" in doc)
    assert written["FeatureView"] == VIEW
    assert written["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["FeatureView"]]
    assert store.online_features(VIEW, ["c1", "c2", "c3"]).missing == ()
    # Then a second scheduled run finds nothing new and writes nothing
    again, _ = run(handler)
    assert again["views"][0]["written"] == 0


def test_no_registered_view_is_a_quiet_no_op(handler):
    result, _ = run(handler)
    assert result == {"views": []}
