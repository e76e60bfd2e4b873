"""The inference Lambda handler on moto, with a model trained and registered through the SDK."""

from __future__ import annotations

import gzip
import json
from typing import Any

import boto3
import pytest

from flywheel.sdk import Flywheel
from flywheel.serving.capture import decode_capture
from tests.factories import corrupt_s3_version
from tests.serving_support import (
    MODEL,
    call,
    event,
    raw_event,
    register,
    trained_model,
)


@pytest.fixture
def sdk(deployed_sdk: Flywheel) -> Flywheel:
    sdk = deployed_sdk
    trained = trained_model()
    register(sdk, trained, description="champion")
    sdk.promote(MODEL, 1, reason="launch")
    register(sdk, trained, description="challenger")
    return sdk


def captured(local_names: dict[str, str]) -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    bucket = local_names["FLYWHEEL_FEATURES_BUCKET"]
    rows = []
    for item in s3.list_objects_v2(Bucket=bucket, Prefix="capture/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        rows.extend({**row, "_key": item["Key"]} for row in decode_capture(body))
    return rows


def test_capture_stores_the_request_body_as_received(lambda_handler, local_names):
    # A pretty-printed body (line breaks and all) is still one JSON line, verbatim.
    record = trained_model().records[0]
    text = json.dumps({"records": [record, record]}, indent=2)
    status, body = call(lambda_handler, raw_event(text))
    assert status == 200
    lambda_handler._service().flush()
    s3 = boto3.client("s3")
    bucket = local_names["FLYWHEEL_FEATURES_BUCKET"]
    (item,) = s3.list_objects_v2(Bucket=bucket, Prefix="capture/")["Contents"]
    lines = gzip.decompress(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    (line,) = [json.loads(raw) for raw in lines.splitlines()]
    assert line["request"] == json.loads(text)
    assert (line["rows"], line["predictions"]) == (2, body["predictions"])
    rows = captured(local_names)
    assert [r["row"] for r in rows] == [0, 1]
    assert rows[1]["features"] == record


def test_a_record_is_scored_by_the_pinned_version_and_captured(lambda_handler, local_names):
    ev = event("predict_record.json")
    status, body = call(lambda_handler, ev)
    assert status == 200
    assert body["model"] == MODEL
    assert body["version"] == 1
    assert body["variant"] == "champion"
    assert body["request_id"] == ev["requestContext"]["requestId"]
    assert body["predictions"] == ["malignant"]  # the dataset's first row is malignant
    assert sum(body["probabilities"][0].values()) == pytest.approx(1.0)

    lambda_handler._service().flush()
    (row,) = captured(local_names)
    assert row["_key"].startswith("capture/model=cancer/version=1/date=")
    assert row["request_id"] == body["request_id"]
    assert row["entity_id"] == "patient-0042"
    assert row["features"]["mean radius"] == 17.99
    assert row["prediction"] == "malignant"


def test_a_batch_gets_one_prediction_per_record(lambda_handler):
    status, body = call(lambda_handler, event("predict_batch.json"))
    assert status == 200
    assert len(body["predictions"]) == len(body["probabilities"]) == 3


def test_invalid_records_get_422_naming_every_bad_field(lambda_handler):
    status, body = call(lambda_handler, event("predict_invalid_records.json"))
    assert status == 422
    error = body["error"]
    assert error["code"] == "invalid_records"
    assert error["errors"] == [
        {"row": 1, "field": "mean radius", "reason": "must be a number, got string"},
        {"row": 1, "field": "mean texture", "reason": "must not be null"},
        {"row": 1, "field": "worst area", "reason": "is missing"},
        {"row": 1, "field": "colour", "reason": "is not a feature of this model"},
    ]


def test_an_unknown_model_is_404(lambda_handler):
    status, body = call(lambda_handler, event("predict_unknown_model.json"))
    assert (status, body["error"]["code"]) == (404, "model_not_found")


def test_more_records_than_the_cap_is_413(lambda_handler, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_MAX_BATCH_RECORDS", "100")
    many = json.dumps({"records": trained_model().records[:101]})
    status, body = call(lambda_handler, raw_event(many))
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("{nope", "body", "is not valid JSON"),
        ('{"records": [1, "x"]}', "records[0]", "must be an object"),
        ('{"record": {}, "records": [{}]}', "body", "give exactly one of 'record' and 'records'"),
        ('{"recrods": []}', "recrods", "is not a known field"),
        ('{"records": []}', "records", "must not be empty"),
        ("[" * 100_000, "body", "the body is nested too deeply"),
        (
            '{"record": {"x": ' + "9" * 5000 + "}}",
            "body",
            "the body holds a number too long to parse",
        ),
    ],
)
def test_malformed_bodies_get_400_naming_the_field(lambda_handler, text, field, reason):
    status, body = call(lambda_handler, raw_event(text))
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert {"row": body["error"]["errors"][0]["row"], "field": field, "reason": reason} in body[
        "error"
    ]["errors"]


def test_the_challenger_version_reports_canary_and_its_metrics_say_so(
    lambda_handler, sdk, monkeypatch, capsys
):
    # Given version 2 is on canary and this "Lambda version" is pinned to it
    sdk.registry.start_canary(MODEL, 2, actor="ops@example.com")
    monkeypatch.setenv("FLYWHEEL_MODEL_VERSION", "2")
    capsys.readouterr()
    # When it answers a request
    status, body = call(lambda_handler, event())
    # Then the response and the EMF metrics both name the canary
    assert (status, body["version"], body["variant"]) == (200, 2, "canary")
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    main = next(doc for doc in emf if "Latency" in doc)
    assert main["Variant"] == "canary"
    assert main["Version"] == "2"
    directive = main["_aws"]["CloudWatchMetrics"][0]
    assert ["Model", "Variant"] in directive["Dimensions"]
    assert ["Model", "Version"] in directive["Dimensions"]
    assert {m["Name"] for m in directive["Metrics"]} >= {
        "Requests",
        "Latency",
        "ValidationFailureRate",
    }
    assert (main["Requests"], main["Rows"]) == (1, 1)
    scores = next(doc for doc in emf if "PredictionScore" in doc)
    assert scores["Variant"] == "canary"
    assert 0.9 < scores["PredictionScore"][0] <= 1.0


def test_validation_failures_are_counted_for_the_alarm(lambda_handler, capsys):
    capsys.readouterr()
    call(lambda_handler, event("predict_invalid_records.json"))
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (doc,) = [d for d in emf if "ValidationFailureRate" in d]
    # One document per request: Requests is the error-rate alarm's denominator.
    assert (doc["Requests"], doc["ValidationFailures"], doc["ValidationFailureRate"]) == (1, 1, 100)
    assert doc["error_code"] == "invalid_records"
    assert ["Model", "Variant"] in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]


def test_a_corrupted_artifact_is_a_503_without_details(lambda_handler, sdk):
    version = sdk.get_version(MODEL, 1)
    corrupt_s3_version(version.artifact.uri, version.artifact.version_id)
    status, body = call(lambda_handler, event())
    assert status == 503
    assert body["error"] == {
        "code": "model_unavailable",
        "message": "the model is temporarily unavailable",
        "request_id": body["error"]["request_id"],
    }


def test_a_capture_bucket_that_refuses_writes_never_fails_a_response(
    lambda_handler, monkeypatch, capsys
):
    # Given the capture bucket does not exist
    monkeypatch.setenv("FLYWHEEL_FEATURES_BUCKET", "no-such-capture-bucket")
    lambda_handler._service_for.cache_clear()
    # When requests are answered and the capture batch is written
    first_status, first = call(lambda_handler, event())
    lambda_handler._service().flush()
    capsys.readouterr()
    second_status, _ = call(lambda_handler, event())
    # Then callers got their predictions and the loss is a metric
    assert first_status == second_status == 200
    assert first["predictions"] == ["malignant"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(doc.get("CaptureFailures") == 1 for doc in emf)


def test_shadow_scores_are_captured_with_the_same_request_id(
    lambda_handler, local_names, monkeypatch
):
    monkeypatch.setenv("FLYWHEEL_SHADOW_VERSION", "2")
    ev = event()
    status, body = call(lambda_handler, ev)
    assert (status, body["variant"], body["version"]) == (200, "champion", 1)
    lambda_handler._service().flush()
    rows = captured(local_names)
    assert {(r["variant"], r["version"]) for r in rows} == {("champion", 1), ("shadow", 2)}
    assert {r["request_id"] for r in rows} == {ev["requestContext"]["requestId"]}


def test_ab_arms_are_sticky_per_assignment_key(lambda_handler, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_AB_CHALLENGER_VERSION", "2")
    arms: dict[str, set[tuple[str, int]]] = {}
    for i in range(24):
        key = f"user-{i % 6}"
        _, body = call(lambda_handler, event("predict_batch.json", assignment_key=key))
        arms.setdefault(key, set()).add((body["variant"], body["version"]))
    assert all(len(seen) == 1 for seen in arms.values())
    assert set().union(*arms.values()) == {("a", 1), ("b", 2)}
