"""Guardrails through the gateway's Lambda handler on moto: a blocked input or answer is a
200 with the policy's message and a ``guardrail`` object, variables that do not fit are
still a 422 (judged only once they render), and the blocked call is captured in S3."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.test_llm_gateway_handler import (  # noqa: F401 (fixtures: used by name)
    NAME,
    _call,
    _captured,
    _event,
    _spend,
    llm_handler,
    prompts,
    stand_in,
)

TOXIC = "You stupid idiots broke the login again, shut up and fix it."
GUARDED = {
    "prompts": {
        NAME: {
            "budget": {"day": "5"},
            "capture": {"mode": "full"},
            "guardrails": {
                "input": {"toxicity": 0.5},
                "output": {"toxicity": 0.5},
                "blocked_input": "Please rephrase your request politely.",
            },
        }
    }
}


def _body(**variables: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(_event()["body"])
    body["variables"] = {**body["variables"], **variables}
    return body


@pytest.fixture
def guarded(llm_handler: Any, monkeypatch: pytest.MonkeyPatch) -> Any:  # noqa: F811
    """The handler with a policy that guards the prompt's input and output (read when
    the first call builds the gateway)."""
    monkeypatch.setenv("FLYWHEEL_LLM_POLICY", json.dumps(GUARDED))
    return llm_handler


def test_a_toxic_input_is_a_200_with_the_message_and_is_never_charged(
    guarded: Any, local_names: dict[str, str]
) -> None:
    status, body, _ = _call(guarded, _event(_body(ticket=TOXIC)))

    assert status == 200
    assert body["text"] == "Please rephrase your request politely."
    assert "output" not in body
    assert body["stop_reason"] == "guardrail_intervened"
    assert body["guardrail"]["stage"] == "input"
    assert body["guardrail"]["action"] == "blocked"
    assert body["guardrail"]["evaluator"] == "toxicity"
    assert (body["usage"], body["cost"]) == ({"input_tokens": 0, "output_tokens": 0}, "0")
    assert _spend(local_names) == {}
    guarded._gateway().flush()
    ((_, row),) = _captured(local_names)
    assert row["guardrail"] == body["guardrail"]
    assert (row["answer"], row["variables"]["ticket"]) == (None, TOXIC)


def test_a_clean_call_answers_as_before_without_a_guardrail_field(guarded: Any) -> None:
    status, body, _ = _call(guarded, _event())

    assert status == 200
    assert set(body["output"]) == {"summary", "urgency"}
    assert "guardrail" not in body


def test_variables_that_do_not_fit_are_still_a_422_before_any_guardrail(
    guarded: Any, local_names: dict[str, str]
) -> None:
    status, body, _ = _call(guarded, _event(_body(area="weather", ticket=TOXIC)))

    assert status == 422
    assert body["error"]["code"] == "invalid_variables"
    assert [p["field"] for p in body["error"]["errors"]] == ["variables.area"]
    guarded._gateway().flush()
    assert _captured(local_names) == []


def test_a_toxic_answer_is_replaced_and_its_original_captured(
    llm_handler: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    local_names: dict[str, str],
) -> None:
    output_only = json.loads(json.dumps(GUARDED))
    del output_only["prompts"][NAME]["guardrails"]["input"]
    monkeypatch.setenv("FLYWHEEL_LLM_POLICY", json.dumps(output_only))

    # The stand-in summarizes what it was sent: the insult reaches the answer.
    status, body, _ = _call(llm_handler, _event(_body(ticket=TOXIC)))

    assert status == 200
    assert body["text"] == "I can't share that answer."  # the default message
    assert body["guardrail"]["stage"] == "output"
    assert body["usage"]["output_tokens"] > 0  # the provider answered: charged
    llm_handler._gateway().flush()
    ((_, row),) = _captured(local_names)
    assert row["guardrail"] == body["guardrail"]
    assert "idiots" in row["answer"]  # the answer the caller never saw
