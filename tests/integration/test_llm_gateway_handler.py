"""The LLM gateway's Lambda handler on moto: prompts registered through the SDK, Bedrock's
Converse answered by the local stand-in, budgets in the DynamoDB usage table, calls
captured in the S3 features bucket."""

from __future__ import annotations

import functools
import gzip
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from flywheel.adapters.local_llm import LocalConverse
from flywheel.adapters.memory_metrics import InMemoryGatewayMetrics
from flywheel.composition import AwsPlatform
from flywheel.errors import BudgetExceededError
from flywheel.gateway.settings import GatewaySettings
from flywheel.llm.invocation import InvokeRequest
from flywheel.local.bedrock import install_converse, uninstall_converse
from flywheel.sdk import Flywheel
from tests.contract.conftest import atomic_writes  # noqa: F401 (fixture: used by name)
from tests.gateway_support import APPROVER, AUTHOR, add_prompt, promote
from tests.serving_support import EVENTS, FakeContext

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "prompts"
NAME = "ticket-summary"
POLICY = {
    "teams": {"support": {"month": "100"}},
    "prompts": {NAME: {"teams": ["support"], "budget": {"day": "5", "month": "50"}}},
}


@pytest.fixture
def stand_in(deployed_sdk: Flywheel) -> Iterator[LocalConverse]:
    """Bedrock's Converse on moto, answered by the stand-in."""
    engine = LocalConverse()
    install_converse(engine)
    yield engine
    uninstall_converse()


@pytest.fixture
def prompts(deployed_sdk: Flywheel, stand_in: LocalConverse) -> Flywheel:
    """Both example versions registered and approved; version 1 was champion, version 2
    (JSON answers) is."""
    author = Flywheel(deployed_sdk.platform, actor=AUTHOR)
    approver = Flywheel(deployed_sdk.platform, actor=APPROVER)
    for number in (1, 2):
        author.register_prompt(EXAMPLES / f"ticket-summary.v{number}.yaml", reason="tests")
        approver.approve_prompt(NAME, number, reason="reviewed")
        approver.promote_prompt(NAME, number, reason="tests")
    return approver


@pytest.fixture
def llm_handler(prompts: Flywheel, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The deployed entry point with the stage's policy; every gateway it builds is closed
    at the end (a capture thread must not flush into the next test's moto)."""
    monkeypatch.setenv("FLYWHEEL_LLM_POLICY", json.dumps(POLICY))
    from functions.llm_gateway import handler as module

    build = module._gateway.__wrapped__
    built: list[Any] = []

    def tracked() -> Any:
        gateway = build()
        built.append(gateway)
        return gateway

    monkeypatch.setattr(module, "_gateway", functools.cache(tracked))
    yield module
    for gateway in built:
        gateway.close()


def _event(body: Any = None, *, name: str = NAME) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "llm_invoke.json").read_text())
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    event["path"] = f"/v1/prompts/{name}/invoke"
    event["pathParameters"] = {"name": name}
    return event


def _call(module: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    response = module.handler(event, FakeContext())
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    return response["statusCode"], json.loads(response["body"]), response["multiValueHeaders"]


def _spend(names: dict[str, str]) -> dict[tuple[str, str], Decimal]:
    table = boto3.client("dynamodb")
    items = table.scan(TableName=names["FLYWHEEL_LLM_USAGE_TABLE"])["Items"]
    return {(i["pk"]["S"], i["sk"]["S"]): Decimal(i["spent"]["N"]) for i in items if "spent" in i}


def _captured(names: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    s3 = boto3.client("s3")
    bucket = names["FLYWHEEL_FEATURES_BUCKET"]
    rows = []
    for item in s3.list_objects_v2(Bucket=bucket, Prefix="llm-capture/").get("Contents", []):
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
        rows.extend((item["Key"], json.loads(line)) for line in body.splitlines())
    return rows


def test_a_call_is_answered_charged_in_the_usage_table_and_captured(llm_handler, local_names):
    event = _event()
    status, body, _ = _call(llm_handler, event)

    assert status == 200
    assert (body["prompt"], body["version"], body["variant"]) == (NAME, 2, "champion")
    assert set(body["output"]) == {"summary", "urgency"}  # JSON of v2's schema, parsed
    assert body["output"]["urgency"] in {"low", "normal", "high"}
    assert body["request_id"] == event["requestContext"]["requestId"]
    assert body["usage"]["input_tokens"] > 0
    assert body["usage"]["output_tokens"] > 0
    cost = Decimal(body["cost"])
    # every budget of the call (prompt day and month, team month) holds its actual cost
    assert _spend(local_names) == {
        (f"BUDGET#prompt#{NAME}", key): cost for key in _periods(local_names, "prompt")
    } | {("BUDGET#team#support", key): cost for key in _periods(local_names, "team")}
    llm_handler._gateway().flush()
    ((key, row),) = _captured(local_names)
    assert key.startswith(f"llm-capture/prompt={NAME}/version=2/dt=")
    assert "/hour=" in key
    assert key.endswith(".jsonl.gz")
    assert (row["request_id"], row["status"], Decimal(row["cost"])) == (
        body["request_id"],
        200,
        cost,
    )
    assert row["variables"]["area"] == "login"


def _periods(names: dict[str, str], scope: str) -> list[str]:
    return sorted(sk for pk, sk in _spend(names) if pk.startswith(f"BUDGET#{scope}#"))


def test_the_callers_request_id_names_the_answer_and_the_capture(llm_handler, local_names):
    status, body, _ = _call(
        llm_handler, _event({**json.loads(_event()["body"]), "request_id": "ticket-4711"})
    )

    assert (status, body["request_id"]) == (200, "ticket-4711")
    llm_handler._gateway().flush()
    assert [row["request_id"] for _, row in _captured(local_names)] == ["ticket-4711"]


def test_a_budget_without_room_is_a_429_with_retry_after_and_nothing_charged(
    llm_handler, local_names, monkeypatch
):
    tiny = {"prompts": {NAME: {"budget": {"day": "0.00001"}}}}  # less than any worst case
    monkeypatch.setenv("FLYWHEEL_LLM_POLICY", json.dumps(tiny))

    status, body, headers = _call(llm_handler, _event())

    assert status == 429
    assert body["error"]["code"] == "budget_exceeded"
    assert f"prompt:{NAME}" in body["error"]["message"]
    assert 0 < int(headers["Retry-After"][0]) <= 86_400
    assert _spend(local_names) == {}
    llm_handler._gateway().flush()
    assert _captured(local_names) == []


def test_throttling_is_retried_and_counted_in_attempts(llm_handler, stand_in):
    stand_in.inject("ThrottlingException")

    status, body, _ = _call(llm_handler, _event())

    assert (status, body["attempts"]) == (200, 2)


def test_a_provider_timeout_is_a_504_with_the_request_id_and_charges_nothing(
    llm_handler, stand_in, local_names
):
    stand_in.inject("ModelTimeoutException")
    event = _event()

    status, body, _ = _call(llm_handler, event)

    assert status == 504
    assert body["error"] == {
        "code": "provider_timeout",
        "message": "internal error",
        "request_id": event["requestContext"]["requestId"],
    }
    assert set(_spend(local_names).values()) == {Decimal(0)}  # reserved, settled to 0
    llm_handler._gateway().flush()
    ((_, row),) = _captured(local_names)
    assert (row["status"], row["error"]) == (504, "provider_timeout")


def test_a_provider_error_is_a_502(llm_handler, stand_in):
    stand_in.inject("ModelErrorException")

    status, body, _ = _call(llm_handler, _event())

    assert (status, body["error"]["code"]) == (502, "provider_error")


def test_a_rollback_is_picked_up_by_the_refresh_and_the_metrics_name_the_version(
    llm_handler, prompts, capsys
):
    assert _call(llm_handler, _event())[1]["version"] == 2
    prompts.rollback_prompt(NAME, reason="customers complained")
    llm_handler._gateway().router.refresh()  # what the background refresh does every 30 s
    capsys.readouterr()

    status, body, _ = _call(llm_handler, _event())

    assert (status, body["version"], body["variant"]) == (200, 1, "champion")
    assert "text" in body  # version 1 answers text
    assert "output" not in body
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (doc,) = [d for d in emf if "Calls" in d]
    assert (doc["Prompt"], doc["Variant"], doc["Version"], doc["Calls"]) == (
        NAME,
        "champion",
        "1",
        1,
    )
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Prompt", "Variant"]]
    assert {"ProviderLatency", "InputTokens", "OutputTokens", "Cost", "Errors"} <= set(doc)


@pytest.mark.usefixtures("atomic_writes")
def test_threads_through_the_gateway_never_overspend(deployed_sdk, local_names):
    """N concurrent callers on the DynamoDB ledger: the day's spend stays within the limit
    (one call's reservation at most over it, were estimates short) and equals what the
    admitted calls were told they cost. (``atomic_writes``: moto checks a condition and
    writes without a lock; DynamoDB serializes writes to an item.)"""
    promote(deployed_sdk.platform, add_prompt(deployed_sdk.platform))
    limit = Decimal("0.0015")  # room for about 25 of the 64 calls
    policy = {"prompts": {NAME: {"budget": {"day": str(limit)}}}}
    settings = deployed_sdk.platform.settings.model_dump()
    platform = AwsPlatform(GatewaySettings(**{**settings, "llm_policy": policy}))
    gateway = platform.prompt_gateway(metrics=InMemoryGatewayMetrics(), background=False)
    costs: list[Decimal] = []
    reserved: list[Decimal] = []
    refused: list[str] = []
    failed: list[Exception] = []
    lock = threading.Lock()
    ticket = "The export to CSV fails with a timeout for accounts over ten thousand rows."

    def caller(n: int) -> None:
        for i in range(8):
            request = InvokeRequest(variables={"customer": f"c{n}", "ticket": f"{ticket} {i}"})
            try:
                answer = gateway.invoke(NAME, request, request_id=f"{n}-{i}")
            except BudgetExceededError as err:
                with lock:
                    refused.append(err.details["budget"])
                    reserved.append(Decimal(err.details["reserved"]))
                continue
            except Exception as err:  # reported below, with the others
                with lock:
                    failed.append(err)
                continue
            with lock:
                costs.append(Decimal(answer.cost))

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failed == []
    (spent,) = _spend(local_names).values()
    assert refused
    assert set(refused) == {f"prompt:{NAME}"}
    assert spent == sum(costs)
    assert spent <= limit + max(reserved)
    assert spent <= limit  # settled costs never exceed their reservations here
    assert len(costs) + len(refused) == 64
    gateway.close()
