"""``POST /v1/prompts/{name}/versions`` on moto: the handler, the records writer's
``prompts`` capability, the artifacts bucket and the project bus.

The handler's platform writes through the records writer as deployed (every registry
write a ``WriteRequest`` to the ``prompts`` alias), with the writer itself run in process
over the same tables. The bus gets the notifications rule's pattern for approval
requests with a queue as its target, so an event that reaches the queue is one that
notifies the approvers.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from flywheel.composition import AwsPlatform, InMemoryPlatform
from flywheel.errors import ApproverNotAllowedError
from flywheel.llm.evaluation_sets import parse_evaluation_set
from flywheel.llm.prompts import canonical_bytes, load_prompt_file, parse_prompt
from flywheel.llm.registration import MAX_ROUTE_SET_BYTES
from flywheel.registry.models import RegistryKind, VersionStatus
from flywheel.settings import Settings
from flywheel.workflows.approvals import Decision
from flywheel.workflows.writer import RecordsWriter, WriteRequest, capability_of
from functions.prompt_api import handler as prompt_handler
from tests.asl_walker import FakeContext
from tests.factories import version_draft
from tests.workflow_support import event

PROMPT = "ticket-summary"
BUS = "flywheel-test-bus"
WRITER = "flywheel-test-records-writer"
#: The sample request's caller (tests/events/prompt_version_request.json).
ANA = "arn:aws:sts::123456789012:assumed-role/flywheel-prod-data-scientist/ana"
BO = "arn:aws:sts::123456789012:assumed-role/flywheel-prod-approver/bo"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "prompts"
NOTIFY_PATTERN = {"source": ["flywheel.workflows"], "detail-type": ["ApprovalRequested"]}
LIBRARY_WORDS = ("pydantic", "Traceback", "botocore", "validation error", "For further")


class WriterLambda:
    """Lambda as the records writer's aliases answer it: the capability is the alias the
    caller invoked; the writer runs in process over the same tables."""

    def __init__(self, writer: RecordsWriter) -> None:
        self.writer = writer
        self.capabilities: list[str] = []

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{FunctionName}"
        capability = capability_of(arn)
        self.capabilities.append(str(capability))
        answer = self.writer.handle(WriteRequest.model_validate_json(Payload), capability)
        return {"Payload": io.BytesIO(answer.model_dump_json().encode()), "StatusCode": 200}


class WriterSession(boto3.Session):
    """The function's session: its Lambda client reaches :class:`WriterLambda`."""

    def __init__(self, writer: WriterLambda) -> None:
        super().__init__()
        self.writer = writer

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if service_name == "lambda":
            return self.writer
        return super().client(service_name, *args, **kwargs)


@pytest.fixture
def direct(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AwsPlatform:
    """The stage's tables as the records writer (and the approval function) see them."""
    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    for env_var, name in local_names.items():
        monkeypatch.setenv(env_var, name)
    return AwsPlatform(Settings())


@pytest.fixture
def route(direct: AwsPlatform, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The function's settings (the writer's ``prompts`` alias, the bus) and a queue behind
    the approvers' notification rule."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    url = sqs.create_queue(QueueName="approval-requests")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="notify", EventBusName=BUS, EventPattern=json.dumps(NOTIFY_PATTERN))
    events.put_targets(Rule="notify", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])
    writer = WriterLambda(direct.records_writer())
    monkeypatch.setenv("FLYWHEEL_EVENT_BUS", BUS)
    monkeypatch.setenv("FLYWHEEL_RECORDS_WRITER", WRITER)
    monkeypatch.setenv("FLYWHEEL_RECORDS_CAPABILITY", "prompts")
    session = WriterSession(writer)

    def registrations() -> Any:
        return AwsPlatform(Settings(), session=session).prompt_registrations()

    monkeypatch.setattr(prompt_handler, "_registrations", functools.cache(registrations))
    # Imported at collection, before the test's environment: name the namespace here.
    monkeypatch.setattr(prompt_handler.metrics, "namespace", "FlywheelTests")
    return {"queue": url, "writer": writer, "bucket": direct.settings.artifacts_bucket}


def spec(**overrides: Any) -> dict[str, Any]:
    """Version 1 of the example prompt, as the body carries it."""
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / "ticket-summary.v1.yaml").read_text())
    return {**loaded, **overrides}


def post(body: Any = None, *, name: str = PROMPT, **identity: Any) -> tuple[int, dict[str, Any]]:
    """The sample request (tests/events/prompt_version_request.json), parts replaced."""
    request = event("prompt_version_request.json")
    request["path"] = f"/v1/prompts/{name}/versions"
    request["pathParameters"] = {"name": name}
    if body is not None:
        request["body"] = body if isinstance(body, str) else json.dumps(body)
    request["requestContext"]["identity"].update(identity)
    response = prompt_handler.handler(request, FakeContext("prompt-api"))
    return response["statusCode"], json.loads(response["body"])


def delivered(queue: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def stored_specs(bucket: str) -> list[str]:
    listed = boto3.client("s3").list_object_versions(Bucket=bucket, Prefix="prompts/")
    return sorted(v["Key"] for v in listed.get("Versions", []))


def test_a_new_version_is_stored_registered_and_announced_as_the_signed_caller(
    route: dict[str, Any], direct: AwsPlatform
) -> None:
    status, body = post()  # tests/events/prompt_version_request.json as API Gateway sends it

    assert status == 201, body
    version = direct.registry.get_version(PROMPT, 1)
    assert body == {
        "prompt": PROMPT,
        "version": 1,
        "status": "pending_approval",
        "sha256": version.artifact.sha256,
        "approval_id": body["approval_id"],
        "created": True,
        "evaluation": None,
    }
    # The canonical spec is under prompts/ of the artifacts bucket, bound to the version.
    [key] = stored_specs(route["bucket"])
    assert key.startswith(f"prompts/{PROMPT}/")
    assert key.endswith("/prompt.json")
    stored = boto3.client("s3").get_object(Bucket=route["bucket"], Key=key)["Body"].read()
    assert stored == canonical_bytes(parse_prompt(spec()))
    assert direct.prompt_catalog().get(PROMPT, 1).spec == parse_prompt(spec())
    # Registered and asked for as the caller, through the writer's prompts alias only.
    trail = [(str(e.action), e.actor, e.reason) for e in direct.audit.entries(PROMPT)]
    assert trail == [
        ("version_registered", ANA, "first cut of the ticket summary"),
        ("approval_requested", ANA, "first cut of the ticket summary"),
    ]
    assert set(route["writer"].capabilities) == {"prompts"}
    approvals = direct.approval_service()
    found = approvals.find_for_version(PROMPT, 1)
    assert found is not None
    assert (found[0].approval_id, found[0].requested_by) == (body["approval_id"], ANA)
    assert found[0].announced
    # The approvers hear of it as of a training run's candidate.
    [sent] = delivered(route["queue"])
    assert (sent["source"], sent["detail-type"]) == ("flywheel.workflows", "ApprovalRequested")
    assert sent["detail"]["model_name"] == PROMPT
    assert sent["detail"]["approval_id"] == body["approval_id"]


def test_the_same_spec_again_writes_nothing_and_answers_that_version(
    route: dict[str, Any], direct: AwsPlatform
) -> None:
    _, first = post()
    delivered(route["queue"])
    entries = len(list(direct.audit.entries(PROMPT)))

    status, again = post({"spec": spec(), "reason": "once more"})

    assert status == 200
    assert again == {**first, "created": False}
    assert len(stored_specs(route["bucket"])) == 1
    assert len(list(direct.audit.entries(PROMPT))) == entries
    assert delivered(route["queue"]) == []
    # A changed spec is a new version, waiting for its own approval.
    status, second = post({"spec": spec(parameters={"max_tokens": 200}), "reason": "shorter"})
    assert (status, second["version"], second["created"]) == (201, 2, True)
    assert second["approval_id"] != first["approval_id"]


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        ({"parameters": {"max_tokens": 0}}, "spec.parameters.max_tokens"),
        ({"model_id": "anthropic.made-up-v9:0"}, "spec.model_id"),  # no price
        ({"template": "Hi {{ who"}, "spec.template"),
        ({"variables": {}}, "spec.variables"),
        ({"name": "other-prompt"}, "spec.name"),  # not the route's prompt
        ({"provider": "carrier-pigeon"}, "spec.provider"),
    ],
)
def test_a_bad_spec_is_400_naming_the_field_and_nothing_is_written(
    route: dict[str, Any], direct: AwsPlatform, changed: dict[str, Any], field: str
) -> None:
    status, body = post({"spec": spec(**changed), "reason": "try"})

    assert status == 400, body
    assert body["error"]["code"] == "invalid_config"
    assert body["error"]["message"].startswith(f"{field}: ")
    assert body["error"]["errors"][0]["field"] == field
    assert not any(word in json.dumps(body) for word in LIBRARY_WORDS)
    assert stored_specs(route["bucket"]) == []
    assert direct.registry.registry.list_models(limit=5, kind="prompt").items == []
    assert delivered(route["queue"]) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"spec": spec()},  # no reason
        {"spec": spec(), "reason": "  "},
        {"spec": spec(), "reason": "mine", "requested_by": BO},  # the registrant is the caller
        {"spec": "name: ticket-summary", "reason": "yaml"},
        "not json",
    ],
)
def test_a_malformed_body_is_400_and_nothing_is_written(
    route: dict[str, Any], direct: AwsPlatform, bad: Any
) -> None:
    status, body = post(bad)

    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert stored_specs(route["bucket"]) == []
    assert list(direct.audit.entries(PROMPT)) == []


def test_a_models_name_is_409_and_nothing_is_written(
    route: dict[str, Any], direct: AwsPlatform
) -> None:
    direct.registry.register(version_draft(name="churn"), actor="ci")

    status, body = post({"spec": spec(name="churn"), "reason": "reuse"}, name="churn")

    assert status == 409
    assert body["error"] == {
        "code": "registry_kind_mismatch",
        "message": "'churn' holds model versions, not prompt versions; choose another name",
        "request_id": body["error"]["request_id"],
    }
    assert stored_specs(route["bucket"]) == []
    assert [str(e.action) for e in direct.audit.entries("churn")] == ["version_registered"]


def test_without_a_caller_identity_it_is_401_and_nothing_is_written(
    route: dict[str, Any], direct: AwsPlatform
) -> None:
    status, body = post(userArn=None)

    assert status == 401
    assert body["error"]["code"] == "unauthenticated"
    assert stored_specs(route["bucket"]) == []
    assert list(direct.audit.entries(PROMPT)) == []


def test_the_registrant_cannot_approve_the_version_and_someone_else_can(
    route: dict[str, Any], direct: AwsPlatform
) -> None:
    _, body = post()
    approvals = direct.approval_service()

    with pytest.raises(ApproverNotAllowedError):
        approvals.decide(body["approval_id"], decision=Decision.APPROVE, approver=ANA,
                         reason="my own")  # fmt: skip
    assert direct.registry.get_version(PROMPT, 1).status is VersionStatus.PENDING_APPROVAL

    approvals.decide(body["approval_id"], decision=Decision.APPROVE, approver=BO,
                     reason="template reviewed")  # fmt: skip
    assert direct.registry.get_version(PROMPT, 1).status is VersionStatus.APPROVED


def test_a_bus_that_refuses_the_announcement_is_502_and_sending_again_finishes_it(
    route: dict[str, Any], direct: AwsPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_EVENT_BUS", "no-such-bus")
    prompt_handler._registrations.cache_clear()

    status, body = post()

    assert (status, body["error"]["code"]) == (502, "event_publish_failed")
    assert "ResourceNotFound" not in json.dumps(body)
    # The version waits for approval, unannounced; the same request again announces it.
    assert direct.registry.get_version(PROMPT, 1).status is VersionStatus.PENDING_APPROVAL
    monkeypatch.setenv("FLYWHEEL_EVENT_BUS", BUS)
    prompt_handler._registrations.cache_clear()
    status, again = post()
    assert (status, again["version"], again["created"]) == (200, 1, False)
    [sent] = delivered(route["queue"])
    assert sent["detail"]["approval_id"] == again["approval_id"]
    found = direct.approval_service().find_for_version(PROMPT, 1)
    assert found is not None
    assert found[0].announced


# -- evaluation sets through the route (ADR 84) ------------------------------------------------
ANSWER = "support-answer"
SET_FILE = EXAMPLES / "support-answer.eval.jsonl"


def answer_spec(**overrides: Any) -> dict[str, Any]:
    """Version 1 of the retrieval-augmented example, naming its set by its file's name."""
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / "support-answer.v1.yaml").read_text())
    return {**loaded, **overrides}


def set_lines() -> list[str]:
    """The example set's file, one string a line, as ``flywheel prompts register`` sends it."""
    return SET_FILE.read_text(encoding="utf-8").split("\n")


def post_answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return post(body, name=ANSWER)


def test_an_evaluation_set_is_checked_stored_next_to_the_spec_and_sealed_as_locally(
    route: dict[str, Any], direct: AwsPlatform
) -> None:
    status, body = post_answer(
        {"spec": answer_spec(), "reason": "with its set", "evaluation_set": set_lines()}
    )

    assert status == 201, body
    # The version's digest is the one a local registration of the same files gets.
    local = InMemoryPlatform().prompt_registrations()
    there = local.register(load_prompt_file(EXAMPLES / "support-answer.v1.yaml"), actor="ana",
                           environment="0" * 64)  # fmt: skip
    assert body["sha256"] == there.version.artifact.sha256
    expected = parse_evaluation_set(SET_FILE.read_bytes(), there.spec)
    assert body["evaluation"] == {
        "set": None,
        "sha256": expected.sha256,
        "size_bytes": len(expected.canonical_bytes()),
        "items": len(expected.items),
        "context_variable": "passages",
    }
    # The set is stored next to the spec, where the promotion workflow's gate reads it.
    keys = stored_specs(route["bucket"])
    assert [key.rsplit("/", 1)[1] for key in keys] == ["evaluation.jsonl", "prompt.json"]
    assert keys[0].rsplit("/", 1)[0] == keys[1].rsplit("/", 1)[0]
    catalog = direct.prompt_catalog()
    found = catalog.get(ANSWER, 1)
    assert found.spec.evaluation == there.spec.evaluation
    read_back = catalog.evaluation_set(found)
    assert read_back is not None
    assert [item.id for item in read_back.items] == [item.id for item in expected.items]
    # The same spec and set again: nothing new. Another set: a new version.
    status, again = post_answer(
        {"spec": answer_spec(), "reason": "again", "evaluation_set": set_lines()}
    )
    assert (status, again["version"], again["created"]) == (200, 1, False)
    fewer = set_lines()[:3]
    status, third = post_answer({"spec": answer_spec(), "reason": "fewer", "evaluation_set": fewer})
    assert (status, third["version"], third["evaluation"]["items"]) == (201, 2, 3)
    assert third["sha256"] != body["sha256"]


@pytest.mark.parametrize(
    ("line", "text", "message"),
    [
        (2, '{"variables": {"question": "When?"}', "evaluation_set line 2: (line): not JSON"),
        (3, '{"variables": {}}', "evaluation_set line 3: variables.question: required"),
        (1, '{"variables": {"question": 7}}', "evaluation_set line 1: variables.question: "),
        (4, '{"variables": {"question": "Q"}, "must_include": "five"}',
         "evaluation_set line 4: must_include: "),
        (2, '["not", "an", "item"]', "evaluation_set line 2: (line): an item is a JSON object"),
    ],
)  # fmt: skip
def test_a_malformed_line_is_422_naming_the_line_and_field_and_nothing_is_written(
    route: dict[str, Any], direct: AwsPlatform, line: int, text: str, message: str
) -> None:
    lines = set_lines()
    lines[line - 1] = text

    status, body = post_answer({"spec": answer_spec(), "reason": "try", "evaluation_set": lines})

    assert status == 422, body
    assert body["error"]["code"] == "invalid_evaluation_set"
    assert body["error"]["message"].startswith(message), body["error"]["message"]
    [problem] = body["error"]["errors"]
    assert problem["row"] == line - 1
    assert problem["field"].startswith("evaluation_set")
    assert not any(word in json.dumps(body) for word in LIBRARY_WORDS)
    assert stored_specs(route["bucket"]) == []
    assert direct.registry.registry.list_models(limit=5, kind=RegistryKind.PROMPT).items == []
    assert delivered(route["queue"]) == []


def test_a_set_larger_than_the_route_takes_is_413_and_nothing_is_written(
    route: dict[str, Any], direct: AwsPlatform
) -> None:
    item = json.loads(set_lines()[0])
    item["context"] = ["Refunds take 5 days. " * 5000]  # about 100 kB a line
    lines = [json.dumps({**item, "id": f"big-{i}"}) for i in range(11)]
    assert len("\n".join(lines).encode()) > MAX_ROUTE_SET_BYTES

    status, body = post_answer({"spec": answer_spec(), "reason": "big", "evaluation_set": lines})

    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["message"].startswith("evaluation_set: ")
    assert f"at most {MAX_ROUTE_SET_BYTES}" in body["error"]["message"]
    assert stored_specs(route["bucket"]) == []
    assert direct.registry.registry.list_models(limit=5, kind=RegistryKind.PROMPT).items == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        # The spec names a set (even a readable path) but the body does not carry it:
        # the route never reads a path.
        ({"spec": answer_spec(evaluation={"set": str(SET_FILE)}), "reason": "path"},
         "evaluation_set: the spec names an evaluation set"),
        ({"spec": answer_spec(evaluation=None), "reason": "no set", "evaluation_set": ["{}"]},
         "evaluation_set: the spec names no evaluation set"),
    ],
)  # fmt: skip
def test_a_set_and_a_spec_that_disagree_are_400_and_nothing_is_written(
    route: dict[str, Any], direct: AwsPlatform, body: dict[str, Any], says: str
) -> None:
    status, answer = post_answer(body)

    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_config"
    assert answer["error"]["message"].startswith(says)
    assert stored_specs(route["bucket"]) == []
    assert direct.registry.registry.list_models(limit=5, kind=RegistryKind.PROMPT).items == []
