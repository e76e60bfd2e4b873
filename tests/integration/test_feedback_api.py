"""``POST /v1/feedback`` on moto: the handler, the idempotency table and the features bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
from flywheel.adapters.dynamodb_labels import DynamoDbLabelClaims
from flywheel.adapters.memory_labels import InMemoryLabelClaims
from flywheel.monitoring.feedback import LabelClaims, read_labels
from flywheel.registry.service import RegistryService
from functions.feedback import handler as feedback_handler
from tests.asl_walker import FakeContext
from tests.factories import version_draft
from tests.workflow_support import event

MODEL = "churn"
REQUEST = "8d2f6a4e-1c3b-4e5f-9a7d-2b4c6e8f0a1c"
LIBRARY_WORDS = ("pydantic", "Traceback", "botocore", "validation error", "Input should")


@pytest.fixture
def names(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Tables and buckets on moto, the handler's settings, and a champion of ``churn``."""
    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    for env_var, name in local_names.items():
        monkeypatch.setenv(env_var, name)
    dynamodb = boto3.client("dynamodb")
    audit = DynamoDbAuditLog(local_names["FLYWHEEL_AUDIT_TABLE"], client=dynamodb)
    store = DynamoDbModelRegistry(local_names["FLYWHEEL_REGISTRY_TABLE"], audit, client=dynamodb)
    registry = RegistryService(store, audit)
    registry.register(version_draft(name=MODEL), actor="ci")
    registry.request_approval(MODEL, 1, actor="ci")
    registry.approve(MODEL, 1, actor="ana", reason="ok")
    registry.promote(MODEL, 1, actor="ana", reason="go")
    # Imported at collection, before the test's environment: name the namespace here.
    monkeypatch.setattr(feedback_handler.metrics, "namespace", "FlywheelTests")
    feedback_handler._service.cache_clear()
    yield local_names
    feedback_handler._service.cache_clear()


def post(body: Any) -> tuple[int, dict[str, Any]]:
    request = event("feedback_batch.json")
    if body is not None:
        request["body"] = body if isinstance(body, str) else json.dumps(body)
    response = feedback_handler.handler(request, FakeContext("feedback"))
    return response["statusCode"], json.loads(response["body"])


def label_objects(names: dict[str, str]) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(
        Bucket=names["FLYWHEEL_FEATURES_BUCKET"], Prefix="labels/"
    )
    return [o["Key"] for o in listed.get("Contents", [])]


def test_the_sample_batch_is_stored_next_to_the_capture_and_claimed(
    names: dict[str, str],
) -> None:
    status, body = post(None)  # tests/events/feedback_batch.json as API Gateway sends it

    assert status == 200
    assert body == {
        "model": MODEL,
        "received": 2,
        "stored": 2,
        "duplicates": 0,
        "results": [
            {"request_id": REQUEST, "row": 0, "status": "stored"},
            {"request_id": REQUEST, "row": 1, "status": "stored"},
        ],
    }
    [key] = label_objects(names)
    assert key.startswith(f"labels/model={MODEL}/date=")
    from flywheel.adapters.s3_capture import S3CaptureSink

    now = datetime.now(UTC)
    rows = read_labels(S3CaptureSink(names["FLYWHEEL_FEATURES_BUCKET"]), MODEL, now, now)
    assert [(r["request_id"], r["row"], r["label"]) for r in rows] == [
        (REQUEST, 0, "1"),
        (REQUEST, 1, "0"),
    ]
    item = boto3.client("dynamodb").get_item(
        TableName=names["FLYWHEEL_IDEMPOTENCY_TABLE"],
        Key={"id": {"S": f"feedback#{MODEL}#{REQUEST}#0"}},
    )["Item"]
    assert item["label"] == {"S": '"1"'}
    assert int(item["expiration"]["N"]) > now.timestamp() + 80 * 86400  # TTL: ~90 days


def test_sending_the_same_labels_again_is_200_duplicate_and_writes_nothing(
    names: dict[str, str],
) -> None:
    post(None)

    status, body = post(None)

    assert status == 200
    assert [r["status"] for r in body["results"]] == ["duplicate", "duplicate"]
    assert len(label_objects(names)) == 1


def test_a_different_label_for_a_labelled_prediction_is_409(names: dict[str, str]) -> None:
    post(None)

    status, body = post({"model": MODEL, "request_id": REQUEST, "row": 1, "label": "1"})

    assert status == 409
    assert body["error"]["code"] == "label_conflict"
    assert body["error"]["errors"] == [
        {
            "row": 0,
            "field": "labels[0].label",
            "reason": f"request {REQUEST} row 1 is already labelled '0'",
        }
    ]
    assert len(label_objects(names)) == 1


ONE = {"model": MODEL, "request_id": "r"}
BAD = "invalid_request"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ("{not json", 400, BAD, "body"),
        ({"labels": [{"request_id": "r", "label": "1"}]}, 400, BAD, "model"),
        ({**ONE, "model": "Churn!", "label": "1"}, 400, BAD, "model"),
        ({"model": MODEL, "labels": [{"request_id": "r"}]}, 400, BAD, "labels[0].label"),
        ({"model": MODEL, "labels": [{"request_id": "r", "label": [1]}]}, 400, BAD,
         "labels[0].label"),
        (ONE, 400, BAD, "label"),
        ({"model": MODEL, "labels": []}, 400, BAD, "labels"),
        ({"model": MODEL, "labels": [{"request_id": f"r{i}", "label": "1"} for i in range(101)]},
         413, "payload_too_large", "labels"),
        ({**ONE, "label": "yes"}, 422, "invalid_labels", "labels[0].label"),
        ({**ONE, "model": "nobody", "label": "1"}, 404, "model_not_found", None),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field_and_never_leak_library_text(
    names: dict[str, str], body: Any, status: int, code: str, field: str | None
) -> None:
    got, answer = post(body)

    assert (got, answer["error"]["code"]) == (status, code)
    if field is not None:
        assert answer["error"]["errors"][0]["field"] == field
    assert not any(word in json.dumps(answer) for word in LIBRARY_WORDS)
    assert label_objects(names) == []


SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=12,
)
LABEL = st.fixed_dictionaries(
    {"request_id": st.text(max_size=12) | st.integers(), "label": JSON},
    optional={"row": st.integers(-2, 10**6) | JSON},
)


BODY = st.fixed_dictionaries(
    {"model": st.just(MODEL) | JSON},
    optional={"labels": st.lists(LABEL, max_size=4) | JSON, "request_id": JSON, "label": JSON},
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.one_of(JSON, BODY))
def test_no_body_turns_into_a_server_error(names: dict[str, str], body: Any) -> None:
    status, answer = post(body)

    assert status in {200, 400, 404, 409, 413, 422}, answer
    assert not any(word in json.dumps(answer) for word in LIBRARY_WORDS)


# -- the label claims port: the same behaviour in DynamoDB and in memory ---------------------


@pytest.fixture(params=["dynamodb", "memory"])
def claims(request: pytest.FixtureRequest) -> LabelClaims:
    if request.param == "memory":
        return InMemoryLabelClaims()
    names = request.getfixturevalue("local_names")
    return DynamoDbLabelClaims(names["FLYWHEEL_IDEMPOTENCY_TABLE"], client=boto3.client("dynamodb"))


def test_a_prediction_is_claimed_once_and_a_release_frees_only_its_own_claim(
    claims: LabelClaims,
) -> None:
    later = datetime(2026, 6, 1, tzinfo=UTC)

    assert claims.claim("k1", '"yes"', expires_at=later) is None
    assert claims.claim("k1", '"no"', expires_at=later) == '"yes"'
    assert claims.find(["k1", "k2", "k1"]) == {"k1": '"yes"'}
    claims.release("k1", '"no"')  # not the holder: nothing happens
    assert claims.find(["k1"]) == {"k1": '"yes"'}
    claims.release("k1", '"yes"')
    assert claims.find(["k1"]) == {}
    assert claims.claim("k1", '"no"', expires_at=later) is None


def test_finding_many_keys_reads_them_in_batches(claims: LabelClaims) -> None:
    later = datetime(2026, 6, 1, tzinfo=UTC)
    for i in range(0, 230, 2):
        claims.claim(f"k{i}", str(i), expires_at=later)

    found = claims.find([f"k{i}" for i in range(230)])

    assert found == {f"k{i}": str(i) for i in range(0, 230, 2)}
