"""POST /v1/models/{name}/predict with only an entity id: features come from the online store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flywheel.clock import FixedClock
from flywheel.composition import AwsPlatform
from flywheel.features import FeatureStore
from flywheel.sdk import Flywheel
from flywheel.serving.capture import decode_capture
from flywheel.settings import Settings
from tests.feature_support import T0, TRANSFORMS, customer_view, source_rows
from tests.serving_support import call, raw_event

MODEL = "churn"
VIEW = "customer-orders"
FEATURES = ("spend", "log_spend", "orders")


def train_churn_model(sdk: Flywheel, folder: Path) -> None:
    """A model on three of the view's features, trained from a CSV computed the same way."""
    rng = np.random.default_rng(0)
    spend = np.round(rng.gamma(2.0, 60.0, 400), 2)
    orders = rng.integers(0, 10, 400)
    churned = (spend + 20 * orders + rng.normal(0, 40, 400) < 150).astype(int)
    lines = ["spend,log_spend,orders,churned"] + [
        f"{s},{np.log1p(s)},{o},{c}" for s, o, c in zip(spend, orders, churned, strict=True)
    ]
    (folder / "churn.csv").write_text("\n".join(lines) + "\n")
    version = sdk.train_from_dict(
        {
            "model": MODEL,
            "task": "classification",
            "dataset": {"source": str(folder / "churn.csv"), "target": "churned"},
            "estimator": "logistic_regression",
            "hyperparameters": {"max_iter": 500},
            "seed": 1,
        }
    ).version
    sdk.registry.approve(MODEL, version.version, actor="approver@example.com", reason="tests")
    sdk.promote(MODEL, version.version, reason="launch")


@pytest.fixture
def sdk(deployed_sdk: Flywheel, tmp_path: Path) -> Flywheel:
    sdk = deployed_sdk
    train_churn_model(sdk, tmp_path)
    return sdk


@pytest.fixture
def store(sdk: Flywheel, local_names: dict[str, str]) -> FeatureStore:
    """The view registered, three customers ingested and materialized."""
    settings = Settings.of_deployment(local_names, backend="aws")
    store = AwsPlatform(settings, clock=FixedClock(T0)).feature_store(write_workers=1)
    store.transformations = TRANSFORMS
    store.register(customer_view(ttl=None), actor="ana@example.com")
    store.ingest(VIEW, source_rows(["c1", "c2", "c3"], [T0, T0, T0], [12.5, 250.0, 80.0]))
    store.materialize(VIEW)
    return store


@pytest.fixture
def plain(lambda_handler: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The churn model's inference function, without a feature view."""
    monkeypatch.setenv("FLYWHEEL_MODEL_NAME", MODEL)
    lambda_handler._service_for.cache_clear()
    return lambda_handler


@pytest.fixture
def serving(plain: Any, store: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The same function reading entity features from the view."""
    monkeypatch.setenv("FLYWHEEL_FEATURE_VIEW", VIEW)
    monkeypatch.setenv("FLYWHEEL_FEATURE_VIEW_VERSION", "1")
    plain._service_for.cache_clear()
    return plain


def ask(handler: Any, body: str) -> tuple[int, dict[str, Any]]:
    return call(handler, raw_event(body, model=MODEL))


def test_an_entity_is_scored_on_its_online_features_exactly_as_if_they_were_sent(
    serving: Any, store: FeatureStore
) -> None:
    online = dict(zip(FEATURES, store.online_vector(VIEW, "c2", features=FEATURES), strict=True))
    status, by_entity = ask(serving, '{"entity_id": "c2"}')
    assert status == 200, by_entity
    _, by_record = ask(serving, json.dumps({"record": online}))
    assert by_entity["predictions"] == by_record["predictions"]
    assert by_entity["probabilities"] == by_record["probabilities"]
    # the capture holds the looked-up features, so monitoring sees what was scored
    serving._service().flush()
    rows = [
        row
        for key in serving._service().capture.sink.keys("capture/")
        for row in decode_capture(serving._service().capture.sink.get(key))
    ]
    looked_up = next(row for row in rows if row["entity_id"] == "c2")
    assert looked_up["features"] == online


def test_an_unknown_entity_is_404_naming_it(serving: Any) -> None:
    status, body = ask(serving, '{"entity_id": "c404"}')
    assert status == 404
    assert body["error"]["code"] == "entity_not_found"
    assert "c404" in body["error"]["message"]


def test_without_a_feature_view_an_entity_alone_is_refused(plain: Any) -> None:
    status, body = ask(plain, '{"entity_id": "c1"}')
    assert status == 422
    assert body["error"]["errors"][0]["field"] == "entity_id"


def test_a_body_with_neither_records_nor_entity_is_400(plain: Any) -> None:
    status, body = ask(plain, "{}")
    assert status == 400
    assert "entity_id" in body["error"]["errors"][0]["reason"]
