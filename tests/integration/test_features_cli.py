"""``flywheel features list | materialize | show`` on moto, and their errors."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from flywheel.cli.app import app
from flywheel.clock import FixedClock
from flywheel.composition import AwsPlatform
from flywheel.settings import Settings
from tests.feature_support import T0, TRANSFORMS, customer_view, source_rows

NOW = T0 + timedelta(days=2)


@pytest.fixture
def cli_env(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    monkeypatch.setenv("FLYWHEEL_NOW", NOW.isoformat())  # the CLI's clock (TTL checks)
    for env_var, name in local_names.items():
        monkeypatch.setenv(env_var, name)
    return local_names


@pytest.fixture
def ingested(cli_env: dict[str, str]) -> None:
    store = AwsPlatform(Settings(), clock=FixedClock(NOW)).feature_store()
    store.transformations = TRANSFORMS
    store.register(customer_view(ttl=None), actor="ana@example.com", reason="first")
    store.ingest(
        "customer-orders",
        source_rows(["c1", "c2", "c1"], [T0, T0, T0 + timedelta(days=1)], [10.0, 250.0, 30.0]),
    )


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_list_materialize_show(ingested: None) -> None:
    listed = invoke("features", "list", "--json")
    assert listed.exit_code == 0, listed.output
    [view] = json.loads(listed.stdout)
    assert (view["name"], view["latest"], view["features"]) == ("customer-orders", 1, 6)

    materialized = invoke("features", "materialize", "customer-orders")
    assert materialized.exit_code == 0, materialized.output
    assert "3 rows read" in materialized.stdout
    assert "3 written" in materialized.stdout

    shown = invoke("features", "show", "customer-orders", "c1", "--json")
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert body["features"]["spend"] == 30.0
    assert body["features"]["segment"] == "basic"
    assert body["event_timestamp"] == "2026-01-02 00:00:00"

    table = invoke("features", "show", "customer-orders", "c2")
    assert "gold" in table.stdout
    assert "250.0" in table.stdout

    # The registration is on the view's audit chain, verified like a model's
    verified = invoke("audit", "verify", "feature-view#customer-orders")
    assert verified.exit_code == 0, verified.output
    assert "1 entries, chain intact" in verified.stdout

    again = invoke("features", "materialize", "customer-orders")
    assert "0 rows read" in again.stdout
    assert "0 written" in again.stdout


def test_errors_are_one_line_and_exit_1(ingested: None) -> None:
    unknown = invoke("features", "show", "nope", "c1")
    assert unknown.exit_code == 1
    assert "feature view 'nope' does not exist" in unknown.output
    assert "Traceback" not in unknown.output

    not_materialized = invoke("features", "show", "customer-orders", "c1")
    assert not_materialized.exit_code == 1
    assert "missing" in not_materialized.output
    assert "flywheel features materialize customer-orders" in not_materialized.output

    bad_version = invoke("features", "materialize", "customer-orders", "--version", "7")
    assert bad_version.exit_code == 1
    assert "has no version 7" in bad_version.output


def test_list_without_views(cli_env: dict[str, str]) -> None:
    result = invoke("features", "list")
    assert result.exit_code == 0
    assert "no feature views registered yet" in result.stdout
