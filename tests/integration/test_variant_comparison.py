"""Shadow and A/B comparisons read back from what the inference handler really captured."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from flywheel.sdk import Flywheel
from flywheel.serving.predictor import OnnxModel, records_to_matrix
from tests.serving_support import MODEL, call, event, register, trained_model

DIFFERENT_C = 1e-3  # answers differently from the champion on 22 of the 120 records


@pytest.fixture
def sdk(deployed_sdk: Flywheel) -> Flywheel:
    """Version 1 (champion) and version 2, a differently fitted model of the same schema."""
    sdk = deployed_sdk
    register(sdk, trained_model(), description="champion")
    sdk.promote(MODEL, 1, reason="launch")
    register(sdk, trained_model(DIFFERENT_C), description="challenger")
    return sdk


def labels_of(regularization: float | None) -> list[str]:
    trained = trained_model(regularization)
    model = OnnxModel.load(
        trained.onnx,
        expected_sha256=trained.draft.artifact.sha256,
        input_schema=trained.draft.input_schema,
        output_schema=trained.draft.output_schema,
    )
    return list(
        model.predict(records_to_matrix(trained.records, trained.draft.input_schema)).labels
    )


def test_shadow_agreement_is_measured_on_what_was_served(lambda_handler, sdk, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_SHADOW_VERSION", "2")
    records = trained_model().records
    for start in range(0, len(records), 10):  # 12 batches of 10
        status, _ = call(
            lambda_handler, event("predict_batch.json", records=records[start : start + 10])
        )
        assert status == 200
    lambda_handler._service().flush()

    report = sdk.compare_variants(MODEL, hours=1)

    champion, shadow = labels_of(None), labels_of(DIFFERENT_C)
    expected = sum(a == b for a, b in zip(champion, shadow, strict=True)) / len(records)
    assert report.shadow is not None
    assert report.shadow.paired_rows == len(records)
    assert report.shadow.agreement_rate == pytest.approx(expected)
    assert 0 < expected < 1  # the two versions really disagree on some records
    assert (report.shadow.served_versions, report.shadow.shadow_versions) == ((1,), (2,))
    assert report.shadow.shadow_latency_p50_ms is not None
    by_variant = {(s.variant, s.version): s for s in report.variants}
    assert by_variant[("champion", 1)].requests == by_variant[("shadow", 2)].requests == 12


def test_ab_arms_are_reported_with_their_split(lambda_handler, sdk, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_AB_CHALLENGER_VERSION", "2")
    monkeypatch.setenv("FLYWHEEL_AB_WEIGHT", "0.5")
    record = trained_model().records[0]
    for i in range(60):
        status, _ = call(lambda_handler, event(record=record, assignment_key=f"user-{i}"))
        assert status == 200
    lambda_handler._service().flush()

    report = sdk.compare_variants(MODEL, hours=1, expected_share_b=0.5)

    assert report.ab is not None
    arms = report.ab.arms
    assert (arms["a"].version, arms["b"].version) == (1, 2)
    assert arms["a"].requests + arms["b"].requests == 60
    assert not report.ab.sample_ratio_mismatch  # hash assignment of 60 keys at 50 %
    assert report.ab.difference is None  # no labels yet


def test_the_cli_prints_the_comparison(lambda_handler, sdk, monkeypatch):
    from flywheel.cli.app import app

    monkeypatch.setenv("FLYWHEEL_SHADOW_VERSION", "2")
    records = trained_model().records[:20]
    call(lambda_handler, event("predict_batch.json", records=records))
    lambda_handler._service().flush()
    runner = CliRunner()
    result = runner.invoke(app, ["serving", "compare", MODEL, "--hours", "2"])
    assert result.exit_code == 0, result.output
    assert "agreement rate" in result.output
    as_json: dict[str, Any] = json.loads(
        runner.invoke(app, ["serving", "compare", MODEL, "--json"]).output
    )
    assert as_json["shadow"]["paired_rows"] == 20
    bad = runner.invoke(app, ["serving", "compare", MODEL, "--hours", "0"])
    assert bad.exit_code != 0
    misspelt = runner.invoke(app, ["serving", "compare", MODEL + "x"])
    assert misspelt.exit_code == 1
    assert f"model '{MODEL}x' does not exist" in misspelt.output


# -- experiments started in the registry, not by environment variables --------------------------
def _served_rows(lambda_handler: Any) -> None:
    records = trained_model().records
    for start in range(0, 60, 10):
        status, _ = call(
            lambda_handler, event("predict_batch.json", records=records[start : start + 10])
        )
        assert status == 200
    lambda_handler._service().flush()


def test_a_shadow_experiment_reaches_the_function_through_the_registry(
    lambda_handler: Any, sdk: Flywheel
) -> None:
    # Given an operator started a shadow experiment of version 2 (no variable is set)
    started = sdk.start_experiment(MODEL, shadow=2, reason="candidate in shadow")
    # When the function serves traffic
    _served_rows(lambda_handler)
    # Then version 2 scored a copy of every request, and the report pairs them
    report = sdk.experiment_report(MODEL)
    assert report.experiment == started
    assert report.comparison.shadow is not None
    assert report.comparison.shadow.paired_rows == 60
    assert lambda_handler._service().plan().experiment == started.id
    # When the experiment is stopped, the next refresh drops it
    sdk.stop_experiment(MODEL, reason="seen enough")
    lambda_handler._service().role.refresh()
    assert lambda_handler._service().plan().shadow is None
    _served_rows(lambda_handler)
    after = sdk.compare_variants(MODEL, hours=1)
    assert after.shadow is not None
    assert after.shadow.paired_rows == 60  # none added after the stop


def test_a_running_function_picks_up_an_ab_experiment_at_its_next_refresh(
    lambda_handler: Any, sdk: Flywheel
) -> None:
    record = trained_model().records[0]
    status, body = call(lambda_handler, event(record=record, assignment_key="user-1"))
    assert (status, body["variant"]) == (200, "champion")
    started = sdk.start_experiment(MODEL, ab=2, weight=0.5, salt="spring")
    # The background refresh (every FLYWHEEL_ROLE_REFRESH_SECONDS) reads the registry.
    lambda_handler._service().role.refresh()
    arms = {}
    for i in range(60):
        status, body = call(lambda_handler, event(record=record, assignment_key=f"user-{i}"))
        assert status == 200
        arms.setdefault(body["variant"], set()).add(body["version"])
        again = call(lambda_handler, event(record=record, assignment_key=f"user-{i}"))[1]
        assert (again["variant"], again["version"]) == (body["variant"], body["version"])
    assert arms == {"a": {1}, "b": {2}}
    lambda_handler._service().flush()
    report = sdk.experiment_report(MODEL)
    assert report.experiment.salt == started.salt == "spring"
    assert report.comparison.ab is not None
    assert report.comparison.ab.expected_share_b == 0.5
    assert report.comparison.ab.arms["a"].requests + report.comparison.ab.arms["b"].requests == 120


def test_variables_still_override_the_registry_locally(
    lambda_handler: Any, sdk: Flywheel, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk.start_experiment(MODEL, ab=2, weight=0.5)
    monkeypatch.setenv("FLYWHEEL_SHADOW_VERSION", "2")
    record = trained_model().records[0]
    status, body = call(lambda_handler, event(record=record, assignment_key="user-7"))
    assert (status, body["variant"]) == (200, "champion")  # the variable's shadow, no A/B
