"""``POST /v1/models/{name}/retrain`` on moto: the handler, the model configs, the project bus.

The bus gets the training rule's pattern (the synthesized one, checked in
tests/infra/test_infra_monitoring.py) with a queue as its target, so an event that reaches
the queue is one the rule would start the training workflow with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from flywheel.composition import AwsPlatform
from flywheel.settings import Settings
from flywheel.workflows.config import parse_model_config
from functions.retrain_api import handler as retrain_handler
from tests.asl_walker import FakeContext
from tests.workflow_support import event, model_config

MODEL = "breast-cancer"
BUS = "flywheel-test-bus"
CALLER = "arn:aws:sts::123456789012:assumed-role/flywheel-prod-data-scientist/bo"
TRAINING_RULE_PATTERN = {"source": ["flywheel.operator"], "detail-type": ["RetrainRequested"]}
LIBRARY_WORDS = ("pydantic", "Traceback", "botocore", "validation error", "Input should")


@pytest.fixture
def queue(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The handler's settings, a configured ``breast-cancer``, and the training rule's queue."""
    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    monkeypatch.setenv("FLYWHEEL_EVENT_BUS", BUS)
    for env_var, name in local_names.items():
        monkeypatch.setenv(env_var, name)
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    url = sqs.create_queue(QueueName="training-triggers")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="training-on-RetrainRequested",
        EventBusName=BUS,
        EventPattern=json.dumps(TRAINING_RULE_PATTERN),
    )
    events.put_targets(
        Rule="training-on-RetrainRequested",
        EventBusName=BUS,
        Targets=[{"Id": "queue", "Arn": arn}],
    )
    AwsPlatform(Settings()).configs.put(
        parse_model_config(model_config(name=MODEL)), actor="ops", reason="onboard"
    )
    # Imported at collection, before the test's environment: name the namespace here.
    monkeypatch.setattr(retrain_handler.metrics, "namespace", "FlywheelTests")
    retrain_handler._service.cache_clear()
    yield url
    retrain_handler._service.cache_clear()


def post(body: Any = None, *, name: str = MODEL, **identity: Any) -> tuple[int, dict[str, Any]]:
    """The sample request (tests/events/retrain_request.json) with its parts replaced."""
    request = event("retrain_request.json")
    request["path"] = f"/v1/models/{name}/retrain"
    request["pathParameters"] = {"name": name}
    if body is not None:
        request["body"] = body if isinstance(body, str) else json.dumps(body)
    request["requestContext"]["identity"].update(identity)
    response = retrain_handler.handler(request, FakeContext("retrain-api"))
    return response["statusCode"], json.loads(response["body"])


def delivered(queue: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_a_request_puts_retrain_requested_naming_the_signed_caller(queue: str) -> None:
    status, body = post()  # tests/events/retrain_request.json as API Gateway sends it

    assert status == 202
    assert body == {
        "model_name": MODEL,
        "requested_by": CALLER,
        "reason": "new labels for January",
        "event_id": body["event_id"],
        "code_version": None,
    }
    [sent] = delivered(queue)
    assert (sent["source"], sent["detail-type"], sent["id"]) == (
        "flywheel.operator",
        "RetrainRequested",
        body["event_id"],
    )
    assert sent["detail"] == {
        "model_name": MODEL,
        "requested_by": CALLER,
        "reason": "new labels for January",
    }


def test_the_requester_comes_from_the_signature_never_from_the_body(queue: str) -> None:
    status, body = post({"reason": "retrain", "requested_by": "someone-else"})

    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert delivered(queue) == []
    status, body = post(userArn="arn:aws:iam::123456789012:user/cy")
    assert (status, body["requested_by"]) == (202, "arn:aws:iam::123456789012:user/cy")


@pytest.mark.parametrize("bad", [{}, {"reason": ""}, {"reason": "   "}, "not json", "[]", "null"])
def test_a_missing_or_empty_reason_is_400_and_nothing_is_sent(queue: str, bad: Any) -> None:
    status, body = post(bad)

    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert not any(word in json.dumps(body) for word in LIBRARY_WORDS)
    assert delivered(queue) == []


def test_an_unknown_model_is_404_and_nothing_is_sent(queue: str) -> None:
    status, body = post(name="churn")

    assert status == 404
    assert body["error"]["code"] == "model_not_found"
    assert body["error"]["message"] == "model 'churn' is not configured for training"
    assert delivered(queue) == []


def test_a_request_without_a_caller_identity_is_401(queue: str) -> None:
    status, body = post(userArn=None)

    assert status == 401
    assert body["error"]["code"] == "unauthenticated"
    assert delivered(queue) == []


def test_a_bus_that_refuses_the_event_is_502_without_internals(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_EVENT_BUS", "no-such-bus")
    retrain_handler._service.cache_clear()

    status, body = post()

    assert status == 502
    assert body["error"]["code"] == "event_publish_failed"
    assert "ResourceNotFound" not in json.dumps(body)
    assert delivered(queue) == []


def test_a_malformed_model_name_is_400(queue: str) -> None:
    status, body = post(name="Breast_Cancer")

    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert delivered(queue) == []


def test_a_commit_in_the_body_travels_in_the_event_for_the_runs_lineage(queue: str) -> None:
    commit = "3f2a9c1d0b7e6a5f4c3b2a1d0e9f8a7b6c5d4e3f"

    status, body = post({"reason": "models/breast-cancer changed", "code_version": commit})

    assert (status, body["code_version"]) == (202, commit)
    [sent] = delivered(queue)
    assert sent["detail"]["code_version"] == commit


@pytest.mark.parametrize("bad", ["main", "ABCDEF1", "abc", "3f2a9c1d; rm -rf /"])
def test_a_code_version_that_is_no_commit_sha_is_400(queue: str, bad: str) -> None:
    status, body = post({"reason": "ci", "code_version": bad})

    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert delivered(queue) == []


# -- POST /v1/models/{name}/promotions: the same function, the promotion rule's event -----------
PROMOTION_RULE_PATTERN = {"source": ["flywheel.operator"], "detail-type": ["PromotionRequested"]}
ENGINEER = "arn:aws:sts::123456789012:assumed-role/flywheel-prod-ml-engineer/bo"


@pytest.fixture
def promotions(queue: str) -> Iterator[str]:
    """Versions 1 (approved) and 2 (pending approval) of ``breast-cancer``, and a queue
    behind the promotion rule's pattern."""
    from tests.factories import version_draft

    events, sqs = boto3.client("events"), boto3.client("sqs")
    url = sqs.create_queue(QueueName="promotion-triggers")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="promotion-on-PromotionRequested",
        EventBusName=BUS,
        EventPattern=json.dumps(PROMOTION_RULE_PATTERN),
    )
    events.put_targets(
        Rule="promotion-on-PromotionRequested",
        EventBusName=BUS,
        Targets=[{"Id": "queue", "Arn": arn}],
    )
    registry = AwsPlatform(Settings()).registry
    for seed in (1, 2):
        registry.register(version_draft(name=MODEL, seed=seed), actor="ci")
        registry.request_approval(MODEL, seed, actor="ci")
    registry.approve(MODEL, 1, actor="ana", reason="ok")
    retrain_handler._promotions.cache_clear()
    yield url
    retrain_handler._promotions.cache_clear()


def ask(body: Any, *, name: str = MODEL) -> tuple[int, dict[str, Any]]:
    """The sample request (tests/events/promotion_request.json) with its body replaced."""
    request = event("promotion_request.json")
    request["path"] = f"/v1/models/{name}/promotions"
    request["pathParameters"] = {"name": name}
    request["body"] = json.dumps(body)
    response = retrain_handler.handler(request, FakeContext("retrain-api"))
    return response["statusCode"], json.loads(response["body"])


def test_an_approved_version_is_asked_for_naming_the_signed_caller(promotions: str) -> None:
    status, body = ask({"version": 1, "reason": "won the A/B test"})

    assert status == 202, body
    assert (body["requested_by"], body["version"]) == (ENGINEER, 1)
    [sent] = delivered(promotions)
    assert (sent["source"], sent["detail-type"]) == ("flywheel.operator", "PromotionRequested")
    registry = AwsPlatform(Settings()).registry
    assert sent["detail"]["artifact_sha256"] == registry.get_version(MODEL, 1).artifact.sha256
    assert sent["detail"]["requested_by"] == ENGINEER


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"version": 2, "reason": "won"}, 409, "illegal_transition"),
        ({"version": 9, "reason": "won"}, 404, "version_not_found"),
        ({"version": 1}, 400, "invalid_request"),
        ({"version": 1, "reason": "won", "requested_by": "me"}, 400, "invalid_request"),
    ],
    ids=["pending approval", "unknown version", "no reason", "requester in the body"],
)
def test_what_cannot_be_promoted_is_refused_and_nothing_is_sent(
    promotions: str, body: dict[str, Any], status: int, code: str
) -> None:
    answered, answer = ask(body)

    assert (answered, answer["error"]["code"]) == (status, code)
    assert not any(word in json.dumps(answer) for word in LIBRARY_WORDS)
    assert delivered(promotions) == []
