"""One call through the LLM gateway: answered, refused, failed, repaired, shadowed; what it
charges, what it captures and what it reports."""

from __future__ import annotations

import io
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from flywheel.adapters.emf_gateway import EmfGatewayMetrics
from flywheel.adapters.memory_metrics import InMemoryGatewayMetrics
from flywheel.composition import InMemoryPlatform
from flywheel.errors import (
    BudgetExceededError,
    ConfigError,
    FlywheelError,
    InvalidOutputError,
    PromptVariablesError,
    ProviderError,
    ProviderTimeoutError,
)
from flywheel.gateway.models import answer_json
from flywheel.gateway.settings import GatewaySettings
from flywheel.llm.invocation import InvokeRequest
from flywheel.llm.prices import default_prices
from flywheel.llm.prompts import Provider
from flywheel.llm.providers import Usage
from flywheel.serving import http
from tests.gateway_support import (
    NAME,
    SCHEMA,
    SHADOW_SYSTEM,
    VARIABLES,
    Scripted,
    add_prompt,
    by_system,
    captured,
    completion,
    gateway,
    promote,
    spent,
    start_experiment,
)

VALID = json.dumps({"summary": "Export fails", "urgency": "high"})
PRICES = default_prices()


def _cost(input_tokens: int, output_tokens: int) -> Decimal:
    return PRICES.cost(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        "local.stand-in",
        Provider.LOCAL,
    )


def _platform(budget: str | None = None, **policy: Any) -> InMemoryPlatform:
    prompts: dict[str, Any] = dict(policy.pop("prompts", {}))
    if budget is not None:
        prompts.setdefault(NAME, {})["budget"] = {"day": budget}
    settings = GatewaySettings(backend="local", llm_policy={"prompts": prompts, **policy})
    return InMemoryPlatform(settings)


def _champion(platform: InMemoryPlatform, **overrides: Any) -> int:
    version = add_prompt(platform, **overrides)
    promote(platform, version)
    return version


def _invoke(gw: Any, variables: dict[str, Any] | None = None, **body: Any) -> Any:
    request = InvokeRequest(variables=VARIABLES if variables is None else variables, **body)
    return gw.invoke(NAME, request, request_id="req-1")


# -- answered ------------------------------------------------------------------------------------
def test_the_champion_answers_and_the_call_is_settled_captured_and_measured() -> None:
    platform = _platform(budget="1")
    _champion(platform)
    metrics = InMemoryGatewayMetrics()
    provider = Scripted(completion("Export fails since Monday.", input_tokens=40, output_tokens=10))
    gw = gateway(platform, provider, metrics=metrics)

    answer = _invoke(gw)

    assert (answer.version, answer.variant, answer.text) == (
        1,
        "champion",
        "Export fails since Monday.",
    )
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (40, 10)
    assert Decimal(answer.cost) == _cost(40, 10)
    assert (answer.currency, answer.attempts, answer.repaired) == ("USD", 1, False)
    assert "output" not in json.loads(answer_json(answer))
    # the rendered prompt went to the provider
    assert (
        provider.requests[0].user == "Customer ACME Corp wrote:\n\nThe export fails since Monday."
    )
    # charged exactly the actual cost, in one write before and one after
    assert set(spent(platform).values()) == {_cost(40, 10)}
    assert platform.usage_store.writes == 2  # type: ignore[attr-defined]
    (row,) = captured(platform, gw)
    assert (row["request_id"], row["version"], row["variant"], row["status"]) == (
        "req-1",
        1,
        "champion",
        200,
    )
    assert row["usage"] == {"input_tokens": 40, "output_tokens": 10}
    assert Decimal(row["cost"]) == _cost(40, 10)
    assert len(row["rendered_sha256"]) == 64
    (report,) = metrics.calls
    assert (report.status, report.errors, report.provider_called) == (200, 0, True)
    assert report.cost == _cost(40, 10)
    assert report.latency_ms >= report.provider_latency_ms > 0


def test_a_prompt_without_a_budget_reserves_nothing_and_is_counted_in_one_write() -> None:
    platform = _platform()
    _champion(platform)
    gw = gateway(platform)

    answer = _invoke(gw)

    assert Decimal(answer.cost) > 0
    assert spent(platform) == {}  # no budget line was charged
    assert platform.usage_store.writes == 1  # type: ignore[attr-defined] - the usage counters
    # counted for the cost report by the version and variant that answered
    ((key, (calls, tokens_in, tokens_out, cost)),) = platform.usage_store.usage.items()  # type: ignore[attr-defined]
    assert key[0] == f"USAGE#prompt#{NAME}"
    assert key[1].endswith("#V1#champion")
    assert (calls, tokens_in, tokens_out, cost) == (
        1, answer.usage.input_tokens, answer.usage.output_tokens, Decimal(answer.cost),
    )  # fmt: skip


# -- refused before the provider -----------------------------------------------------------------
def test_variables_that_do_not_fit_are_a_422_naming_each_and_nothing_is_charged() -> None:
    platform = _platform(budget="1")
    _champion(platform)
    metrics = InMemoryGatewayMetrics()
    provider = Scripted()
    gw = gateway(platform, provider, metrics=metrics)

    with pytest.raises(PromptVariablesError) as refused:
        _invoke(gw, {"customer": "x" * 51, "tone": "dry"})

    status, body = http.error_response(refused.value, request_id="req-1")
    assert status == 422
    assert {p["field"] for p in body["error"]["errors"]} == {
        "variables.tone", "variables.customer", "variables.ticket",
    }  # fmt: skip
    assert provider.requests == []
    assert spent(platform) == {}
    assert captured(platform, gw) == []
    (report,) = metrics.calls
    assert (report.status, report.code, report.provider_called) == (422, "invalid_variables", False)


def test_a_budget_without_room_is_a_429_naming_it_and_charges_nothing() -> None:
    # A worst case of this prompt is 0.000168 (40 tokens in, 64 out): the first call fits,
    # and once it settled at 0.0002 the second one's worst case does not.
    platform = _platform(budget="0.0003")
    _champion(platform)
    metrics = InMemoryGatewayMetrics()
    provider = Scripted(completion("first", input_tokens=100, output_tokens=50))
    gw = gateway(platform, provider, metrics=metrics)
    _invoke(gw)
    before = spent(platform)

    with pytest.raises(BudgetExceededError) as refused:
        _invoke(gw)

    assert spent(platform) == before
    assert set(before.values()) == {_cost(100, 50)}
    assert len(provider.requests) == 1
    error = refused.value
    assert error.details["budget"] == f"prompt:{NAME}"
    assert 0 < error.retry_after <= 86_400
    status, body = http.error_response(error, request_id="req-1")
    assert status == 429
    assert f"prompt:{NAME}" in body["error"]["message"]
    refusal = metrics.calls[-1]
    assert (refusal.status, refusal.budget_refusals, refusal.cost) == (429, 1, 0)
    assert [row["status"] for row in captured(platform, gw)] == [200]


def test_a_provider_the_stage_has_not_configured_is_a_502_and_reserves_nothing() -> None:
    platform = _platform(budget="1")
    _champion(platform)

    def unconfigured(_kind: Any) -> Any:
        raise ConfigError("FLYWHEEL_OPENAI_BASE_URL is not set", field="FLYWHEEL_OPENAI_BASE_URL")

    gw = gateway(platform)
    gw._make_provider = unconfigured  # the composition root's factory, as configured

    with pytest.raises(ProviderError) as failed:
        _invoke(gw)

    assert http.error_response(failed.value, request_id="r")[0] == 502
    assert platform.usage_store.writes == 0  # type: ignore[attr-defined]


# -- the provider fails -------------------------------------------------------------------------
def test_a_timeout_is_a_504_and_only_what_was_settled_is_charged() -> None:
    platform = _platform(budget="1")
    _champion(platform)
    metrics = InMemoryGatewayMetrics()
    gw = gateway(platform, Scripted(ProviderTimeoutError("no answer in 60 s")), metrics=metrics)

    with pytest.raises(ProviderTimeoutError) as timed_out:
        _invoke(gw)

    status, body = http.error_response(timed_out.value, request_id="req-1")
    assert (status, body["error"]["request_id"]) == (504, "req-1")
    assert set(spent(platform).values()) == {Decimal(0)}  # reserved, then settled to 0
    assert platform.usage_store.writes == 2  # type: ignore[attr-defined]
    (row,) = captured(platform, gw)
    assert (row["status"], row["error"], row["answer"]) == (504, "provider_timeout", None)
    assert Decimal(row["cost"]) == 0
    (report,) = metrics.calls
    assert (report.errors, report.cost, report.provider_called) == (1, 0, True)


def test_a_repair_that_times_out_charges_only_the_first_answer() -> None:
    platform = _platform(budget="1")
    _champion(platform, output_schema=SCHEMA)
    first = completion("not json", input_tokens=60, output_tokens=20)
    gw = gateway(platform, Scripted(first, ProviderTimeoutError("no answer")))

    with pytest.raises(ProviderTimeoutError):
        _invoke(gw)

    assert set(spent(platform).values()) == {_cost(60, 20)}
    assert platform.usage_store.writes == 4  # type: ignore[attr-defined]


def test_a_provider_error_is_a_502_charged_what_the_provider_reported() -> None:
    platform = _platform(budget="1")
    _champion(platform)
    error = ProviderError(
        "the model failed", details={"usage": Usage(input_tokens=30, output_tokens=0)}
    )
    metrics = InMemoryGatewayMetrics()
    gw = gateway(platform, Scripted(error), metrics=metrics)

    with pytest.raises(ProviderError) as failed:
        _invoke(gw)

    status, body = http.error_response(failed.value, request_id="req-1")
    assert status == 502
    assert body["error"]["message"] == "internal error"  # the provider's words stay in the logs
    assert set(spent(platform).values()) == {_cost(30, 0)}
    (row,) = captured(platform, gw)
    assert (row["status"], row["error"]) == (502, "provider_error")
    assert metrics.calls[0].errors == 1


def test_a_ledger_that_cannot_settle_keeps_the_reservation_and_still_answers() -> None:
    platform = _platform(budget="1")
    _champion(platform)
    metrics = InMemoryGatewayMetrics()
    gw = gateway(
        platform, Scripted(completion("ok", input_tokens=10, output_tokens=2)), metrics=metrics
    )

    def broken(*_args: Any) -> None:
        raise FlywheelError("the budget could not be settled; try again")

    platform.usage_store.adjust = broken  # type: ignore[method-assign]
    answer = _invoke(gw)

    assert Decimal(answer.cost) == _cost(10, 2)
    (held,) = set(spent(platform).values())
    assert held > _cost(10, 2)  # the worst case stays charged: over-, never under-counted
    assert metrics.calls[0].settle_failures == 1


# -- the output schema -----------------------------------------------------------------------
def test_a_valid_json_answer_is_parsed_into_output() -> None:
    platform = _platform()
    _champion(platform, output_schema=SCHEMA)
    gw = gateway(platform, Scripted(completion(f"```json\n{VALID}\n```")))

    answer = _invoke(gw)

    assert answer.output == {"summary": "Export fails", "urgency": "high"}
    assert "text" not in json.loads(answer_json(answer))
    assert (answer.repaired, answer.attempts) == (False, 1)


def test_a_bad_answer_gets_exactly_one_repair_retry_that_says_what_was_wrong() -> None:
    platform = _platform(budget="1")
    _champion(platform, output_schema=SCHEMA)
    metrics = InMemoryGatewayMetrics()
    bad = completion(
        '{"summary": "Export fails", "urgency": "urgent"}', input_tokens=50, output_tokens=12
    )
    good = completion(VALID, input_tokens=90, output_tokens=12)
    provider = Scripted(bad, good)
    gw = gateway(platform, provider, metrics=metrics)

    answer = _invoke(gw)

    assert answer.output == json.loads(VALID)
    assert (answer.repaired, answer.attempts) == (True, 2)
    assert Decimal(answer.cost) == _cost(50, 12) + _cost(90, 12)
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (140, 24)
    first, repair = provider.requests
    assert [(t.role, t.text) for t in repair.history] == [
        ("user", first.user),
        ("assistant", bad.text),
    ]
    assert "output.urgency: must be one of" in repair.user
    assert repair.system == first.system  # the schema instruction is still there
    # each provider call had its own reservation and settlement
    assert platform.usage_store.writes == 4  # type: ignore[attr-defined]
    assert set(spent(platform).values()) == {Decimal(answer.cost)}
    assert metrics.calls[0].repair_retries == 1
    (row,) = captured(platform, gw)
    assert (row["repaired"], row["output_valid"], row["attempts"]) == (True, True, 2)


def test_a_second_bad_answer_is_a_502_listing_the_problems_and_is_captured() -> None:
    platform = _platform(budget="1")
    _champion(platform, output_schema=SCHEMA)
    metrics = InMemoryGatewayMetrics()
    provider = Scripted(
        completion("Sure! Here it is."), completion('{"summary": 3}'), completion(VALID)
    )
    gw = gateway(platform, provider, metrics=metrics)

    with pytest.raises(InvalidOutputError) as invalid:
        _invoke(gw)

    assert len(provider.requests) == 2  # one repair, never two
    status, body = http.error_response(invalid.value, request_id="req-1")
    assert (status, body["error"]["code"]) == (502, "invalid_output")
    assert [p["field"] for p in body["error"]["errors"]] == ["output.summary", "output.urgency"]
    assert "after one repair retry" in body["error"]["message"]
    (row,) = captured(platform, gw)
    assert (row["status"], row["error"], row["output_valid"]) == (502, "invalid_output", False)
    assert row["answer"] == '{"summary": 3}'
    assert Decimal(row["cost"]) == sum(spent(platform).values()) / len(spent(platform)) > 0
    (report,) = metrics.calls
    assert (report.errors, report.repair_retries) == (1, 1)


def test_a_repair_the_budget_refuses_is_a_502_saying_so() -> None:
    platform = _platform(budget="0.0003")  # one worst case fits, the repair's does not
    _champion(platform, output_schema=SCHEMA)
    provider = Scripted(completion("nope", input_tokens=120, output_tokens=64))
    gw = gateway(platform, provider)

    with pytest.raises(InvalidOutputError, match="repair retry was refused: budget prompt:"):
        _invoke(gw)

    assert len(provider.requests) == 1


# -- shadow ------------------------------------------------------------------------------------
def _shadowed(platform: InMemoryPlatform, **shadow_spec: Any) -> None:
    champion = _champion(platform)
    shadow = add_prompt(platform, system=SHADOW_SYSTEM, **shadow_spec)
    start_experiment(platform, "shadow", shadow, control=champion)


def test_a_slow_shadow_never_delays_or_changes_the_answer() -> None:
    platform = _platform(budget="1")
    _shadowed(platform)
    slow = Scripted(completion("shadow says", input_tokens=5, output_tokens=2), blocking=True)
    fast = Scripted(completion("champion says", input_tokens=5, output_tokens=2))
    metrics = InMemoryGatewayMetrics()
    gw = gateway(platform, by_system({SHADOW_SYSTEM: slow}, default=fast), metrics=metrics)

    started = time.perf_counter()
    answer = _invoke(gw)
    answered_in = time.perf_counter() - started

    assert slow.entered.wait(5)  # the shadow call is under way, and blocked...
    assert not slow.release.is_set()
    assert (answer.text, answer.variant, answer.version) == ("champion says", "champion", 1)
    assert answered_in < 5  # ...while the answer is already back
    slow.release.set()
    rows = captured(platform, gw)
    assert {(r["variant"], r["version"], r["answer"]) for r in rows} == {
        ("champion", 1, "champion says"), ("shadow", 2, "shadow says"),
    }  # fmt: skip
    assert {r["request_id"] for r in rows} == {"req-1"}
    assert {r.variant for r in metrics.calls} == {"champion", "shadow"}
    assert platform.usage_store.writes == 4  # type: ignore[attr-defined] - the shadow is budgeted


def test_shadow_copies_beyond_the_queue_are_skipped_and_counted() -> None:
    platform = _platform()
    _shadowed(platform)
    slow = Scripted(blocking=True)
    metrics = InMemoryGatewayMetrics()
    gw = gateway(
        platform,
        by_system({SHADOW_SYSTEM: slow}, default=Scripted()),
        metrics=metrics,
        shadow_queue=1,
        shadow_workers=1,
    )

    _invoke(gw)  # taken by the worker (blocked)
    assert slow.entered.wait(5)
    _invoke(gw)  # waits in the queue
    _invoke(gw)  # no room: skipped

    assert metrics.skipped == [(NAME, 2, "queue_full")]
    slow.release.set()
    gw.flush()
    assert len(slow.requests) == 2


def test_a_shadow_its_budget_refuses_is_skipped_and_counted() -> None:
    platform = _platform(budget="0.001")
    _shadowed(platform, parameters={"max_tokens": 2000})  # its worst case exceeds the budget
    metrics = InMemoryGatewayMetrics()
    gw = gateway(platform, metrics=metrics)

    answer = _invoke(gw)
    gw.flush()

    assert answer.variant == "champion"
    assert metrics.skipped == [(NAME, 2, "budget")]
    assert [r["variant"] for r in captured(platform, gw)] == ["champion"]


# -- capture policy ------------------------------------------------------------------------------
SECRET = {"customer": "ana@example.com", "ticket": "Card 4111 1111 1111 1111 was charged twice."}


@pytest.mark.parametrize(
    ("mode", "customer", "answer"),
    [
        ("full", "ana@example.com", "Card 4111 1111 1111 1111 was charged twice."),
        ("redact", "[REDACTED:email]", "Card [REDACTED:card_number] was charged twice."),
        ("hash", "sha256:", "sha256:"),
        ("none", None, None),
    ],
)
def test_each_capture_policy_stores_only_what_it_allows(
    mode: str, customer: str | None, answer: str | None
) -> None:
    platform = _platform(prompts={NAME: {"capture": {"mode": mode}}})
    _champion(platform)
    gw = gateway(platform)

    result = _invoke(gw, SECRET)

    (row,) = captured(platform, gw)
    assert result.text == SECRET["ticket"]  # the caller always gets the whole answer
    assert row["_capture"]["mode"] == mode
    if mode == "none":
        assert (row["variables"], row["answer"]) == (None, None)
    elif mode == "hash":
        assert row["variables"]["customer"].startswith("sha256:")
        assert row["answer"].startswith("sha256:")
        assert "4111" not in json.dumps(row)
    else:
        assert row["variables"]["customer"] == customer
        assert row["answer"] == answer
    assert len(row["rendered_sha256"]) == 64  # always, whatever the mode
    assert row["usage"]["output_tokens"] > 0


def test_captured_texts_are_cut_to_the_policys_size() -> None:
    platform = _platform(prompts={NAME: {"capture": {"mode": "full", "max_bytes": 256}}})
    _champion(platform)
    gw = gateway(platform)

    _invoke(gw, {"customer": "ACME", "ticket": "é" * 1500})

    (row,) = captured(platform, gw)
    assert len(row["variables"]["ticket"].encode()) <= 256
    assert row["variables"]["customer"] == "ACME"
    assert row["_capture"]["truncated"] == ["ticket", "answer"]


# -- metrics -------------------------------------------------------------------------------------
def test_every_call_writes_one_emf_document_with_the_contracts_metrics() -> None:
    platform = _platform(budget="1")
    _champion(platform, output_schema=SCHEMA)
    out = io.StringIO()
    emf = EmfGatewayMetrics(Metrics(namespace="Flywheel/test"), write=out.write)
    provider = Scripted(
        completion("nope"),
        completion(VALID, input_tokens=7, output_tokens=3),
        ProviderTimeoutError("slow"),
    )
    gw = gateway(platform, provider, metrics=emf)

    _invoke(gw)
    with pytest.raises(ProviderTimeoutError):
        _invoke(gw)
    with pytest.raises(PromptVariablesError):
        _invoke(gw, {})

    ok, timeout, refused = [json.loads(line) for line in out.getvalue().splitlines()]
    for doc in (ok, timeout, refused):
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "Flywheel/test"
        assert directive["Dimensions"] == [["Prompt", "Variant"]]
        assert (doc["Prompt"], doc["Variant"], doc["Version"], doc["Calls"]) == (
            NAME,
            "champion",
            "1",
            1,
        )
        assert {m["Name"] for m in directive["Metrics"]} >= {
            "Calls",
            "Errors",
            "Latency",
            "Cost",
            "BudgetRefusals",
            "RepairRetries",
        }
    assert (ok["Errors"], ok["RepairRetries"], ok["InputTokens"], ok["OutputTokens"]) == (
        0,
        1,
        47,
        13,
    )
    assert ok["Cost"] == pytest.approx(float(_cost(47, 13)))
    assert ok["ProviderLatency"] <= ok["Latency"]
    assert (timeout["Errors"], timeout["error_code"], timeout["Cost"]) == (1, "provider_timeout", 0)
    assert (refused["Errors"], refused["status"]) == (0, 422)
    assert "InputTokens" not in refused  # the provider was not called
