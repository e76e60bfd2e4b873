"""Guardrails in the gateway's request path: a blocked input is never sent or charged, a
blocked answer is replaced by the policy's message, both are captured with the
``guardrail`` field and counted; a judge that fails blocks unless the policy allows."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from flywheel.adapters.emf_gateway import EmfGatewayMetrics
from flywheel.adapters.memory_metrics import InMemoryGatewayMetrics
from flywheel.composition import InMemoryPlatform
from flywheel.errors import GuardrailUnavailableError, ProviderThrottledError, http_status_for
from flywheel.gateway.models import answer_json
from flywheel.gateway.service import PromptGateway
from flywheel.gateway.settings import GatewaySettings
from flywheel.llm.evaluation import Direction, EvaluationInput, EvaluationScore
from flywheel.llm.guardrails import GuardrailJudges, GuardrailPolicy, embedded_judges
from flywheel.llm.invocation import InvokeRequest
from flywheel.serving import http
from tests.gateway_support import (
    NAME,
    SCHEMA,
    VARIABLES,
    Scripted,
    add_prompt,
    captured,
    completion,
    gateway,
    promote,
    spent,
)

TOXIC = "Shut up, you stupid idiot. Nobody cares about your export."
CLEAN = "The export fails for files above 10k rows; split the file."
BLOCKED_INPUT = "Please rephrase your request."
BLOCKED_OUTPUT = "This answer was withheld."


def _platform(guardrails: dict[str, Any], **prompt: Any) -> InMemoryPlatform:
    policy = {
        "prompts": {
            NAME: {
                "budget": {"day": "1"},
                "guardrails": {
                    "blocked_input": BLOCKED_INPUT,
                    "blocked_output": BLOCKED_OUTPUT,
                    **guardrails,
                },
                **prompt,
            }
        }
    }
    platform = InMemoryPlatform(GatewaySettings(backend="local", llm_policy=policy))
    promote(platform, add_prompt(platform))
    return platform


def _invoke(gw: PromptGateway, variables: dict[str, Any] | None = None) -> Any:
    request = InvokeRequest(variables=VARIABLES if variables is None else variables)
    return gw.invoke(NAME, request, request_id="req-1")


# -- input ---------------------------------------------------------------------------------------
def test_a_toxic_input_is_answered_with_the_message_never_sent_and_charges_nothing() -> None:
    platform = _platform({"input": {"toxicity": 0.5}})
    metrics = InMemoryGatewayMetrics()
    provider = Scripted()
    gw = gateway(platform, provider, metrics=metrics)

    answer = _invoke(gw, {"customer": "ACME", "ticket": TOXIC})

    assert answer.text == BLOCKED_INPUT
    assert answer.stop_reason == "guardrail_intervened"
    assert answer.guardrail is not None
    assert (answer.guardrail.stage, answer.guardrail.action, answer.guardrail.evaluator) == (
        "input",
        "blocked",
        "toxicity",
    )
    assert answer.guardrail.score >= 0.5
    assert (answer.usage.input_tokens, answer.usage.output_tokens, Decimal(answer.cost)) == (
        0, 0, Decimal(0),
    )  # fmt: skip
    body = json.loads(answer_json(answer))
    assert body["guardrail"]["stage"] == "input"
    assert provider.requests == []  # never sent
    assert spent(platform) == {}  # nothing reserved
    (row,) = captured(platform, gw)
    assert row["guardrail"] == body["guardrail"]
    assert (row["status"], row["answer"], row["attempts"]) == (200, None, 0)
    assert row["variables"]["ticket"] == TOXIC  # what was blocked, for reviewers
    (report,) = metrics.calls
    assert (report.status, report.provider_called, report.guardrail_blocked) == (200, False, 1)


def test_a_clean_input_goes_through_and_the_answer_has_no_guardrail_field() -> None:
    platform = _platform({"input": {"toxicity": 0.5}})
    metrics = InMemoryGatewayMetrics()
    gw = gateway(platform, Scripted(completion(CLEAN)), metrics=metrics)

    answer = _invoke(gw)

    assert (answer.text, answer.guardrail) == (CLEAN, None)
    assert "guardrail" not in json.loads(answer_json(answer))
    (row,) = captured(platform, gw)
    assert "guardrail" not in row
    (report,) = metrics.calls
    assert (report.guarded, report.guardrail_blocked) == (True, 0)


def test_the_context_variable_is_not_judged_as_the_callers_input() -> None:
    # The ticket is the output guardrail's context: retrieved text, not what the user said.
    platform = _platform(
        {"input": {"toxicity": 0.5}, "output": {"groundedness": 0.1, "context_variable": "ticket"}}
    )
    provider = Scripted(completion("Nobody cares about your export."))
    gw = gateway(platform, provider)

    answer = _invoke(gw, {"customer": "ACME", "ticket": TOXIC})

    assert answer.guardrail is None
    assert len(provider.requests) == 1


# -- output --------------------------------------------------------------------------------------
def test_a_toxic_answer_is_replaced_charged_and_captured_as_it_was() -> None:
    platform = _platform({"output": {"toxicity": 0.5}}, capture={"mode": "full"})
    metrics = InMemoryGatewayMetrics()
    gw = gateway(platform, Scripted(completion(TOXIC, input_tokens=40, output_tokens=10)),
                 metrics=metrics)  # fmt: skip

    answer = _invoke(gw)

    assert answer.text == BLOCKED_OUTPUT
    assert answer.stop_reason == "guardrail_intervened"
    assert answer.guardrail is not None
    assert (answer.guardrail.stage, answer.guardrail.evaluator) == ("output", "toxicity")
    # the provider answered: its usage is charged like any call's
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (40, 10)
    assert Decimal(answer.cost) > 0
    assert set(spent(platform).values()) == {Decimal(answer.cost)}
    (row,) = captured(platform, gw)
    assert row["answer"] == TOXIC  # the original answer, for reviewers
    assert row["guardrail"] == answer.guardrail.model_dump(mode="json")
    assert row["status"] == 200
    (report,) = metrics.calls
    assert (report.guardrail_stage, report.guardrail_blocked, report.provider_called) == (
        "output", 1, True,
    )  # fmt: skip


def test_the_capture_policy_still_applies_to_a_blocked_answer() -> None:
    platform = _platform({"output": {"toxicity": 0.5}}, capture={"mode": "hash"})
    gw = gateway(platform, Scripted(completion(TOXIC)))

    _invoke(gw)

    (row,) = captured(platform, gw)
    assert row["answer"].startswith("sha256:")
    assert row["guardrail"]["stage"] == "output"


def test_a_blocked_json_answer_gives_the_message_as_text_and_no_output() -> None:
    platform = InMemoryPlatform(
        GatewaySettings(
            backend="local",
            llm_policy={"prompts": {NAME: {"guardrails": {"output": {"toxicity": 0.5}}}}},
        )
    )
    promote(platform, add_prompt(platform, output_schema=SCHEMA))
    answer_text = json.dumps({"summary": TOXIC, "urgency": "high"})
    gw = gateway(platform, Scripted(completion(answer_text)))

    answer = _invoke(gw)

    body = json.loads(answer_json(answer))
    assert body["text"] == "I can't share that answer."  # the default message
    assert "output" not in body
    assert body["guardrail"]["stage"] == "output"


def test_an_answer_ungrounded_in_the_context_variable_is_blocked() -> None:
    platform = _platform(
        {"output": {"toxicity": None, "groundedness": 0.8, "context_variable": "ticket"}}
    )
    ticket = "Exports of more than 10k rows time out after 30 seconds."
    gw = gateway(
        platform,
        Scripted(
            completion("Exports of more than 10k rows time out after 30 seconds."),
            completion("Exports of more than 50k rows time out after 90 seconds."),
        ),
    )

    grounded = _invoke(gw, {"customer": "ACME", "ticket": ticket})
    ungrounded = _invoke(gw, {"customer": "ACME", "ticket": ticket})

    assert grounded.guardrail is None
    assert ungrounded.guardrail is not None
    assert (ungrounded.guardrail.evaluator, ungrounded.text) == ("groundedness", BLOCKED_OUTPUT)
    assert ungrounded.guardrail.score < 0.8


def test_a_call_without_the_context_variable_is_not_judged_for_groundedness() -> None:
    platform = _platform(
        {"output": {"toxicity": None, "groundedness": 0.8, "context_variable": "passages"}}
    )
    gw = gateway(platform, Scripted(completion("Something the ticket never said.")))

    assert _invoke(gw).guardrail is None


def test_emf_reports_guardrail_blocked_under_prompt_and_variant() -> None:
    platform = _platform({"input": {"toxicity": 0.5}})
    out = io.StringIO()
    emf = EmfGatewayMetrics(Metrics(namespace="Flywheel/test"), write=out.write)
    gw = gateway(platform, Scripted(completion(CLEAN)), metrics=emf)

    _invoke(gw)
    _invoke(gw, {"customer": "ACME", "ticket": TOXIC})

    passed, blocked = [json.loads(line) for line in out.getvalue().splitlines()]
    for doc in (passed, blocked):
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        assert directive["Dimensions"] == [["Prompt", "Variant"]]
        assert {"Name": "GuardrailBlocked", "Unit": "Count"} in directive["Metrics"]
        assert (doc["Prompt"], doc["Variant"]) == (NAME, "champion")
    assert (passed["GuardrailBlocked"], blocked["GuardrailBlocked"]) == (0, 1)
    assert blocked["guardrail"] == "input"
    assert blocked["Errors"] == 0  # a blocked call is not an error: no canary alarm for it


def test_a_prompt_without_guardrails_reports_no_guardrail_metric() -> None:
    platform = InMemoryPlatform(GatewaySettings(backend="local"))
    promote(platform, add_prompt(platform))
    out = io.StringIO()
    gw = gateway(platform, metrics=EmfGatewayMetrics(Metrics(namespace="F/t"), write=out.write))

    _invoke(gw)

    assert "GuardrailBlocked" not in json.loads(out.getvalue())


# -- a judge that fails --------------------------------------------------------------------------
class _Down:
    """An evaluator whose service is down."""

    name = "toxicity"

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        self.calls += 1
        raise ProviderThrottledError("Amazon Bedrock Guardrails: throttled", field="provider")


def _down_gateway(
    platform: InMemoryPlatform, provider: Scripted, stage: str, metrics: Any = None
) -> tuple[PromptGateway, _Down]:
    down = _Down()

    def judges(policy: GuardrailPolicy) -> GuardrailJudges:
        found = embedded_judges(policy)
        if stage == "input":
            return GuardrailJudges(input=(down,), output=found.output)
        return GuardrailJudges(input=found.input, output=(down,))

    gw = gateway(platform, provider, metrics=metrics)
    gw._make_judges = judges
    return gw, down


@pytest.mark.parametrize("stage", ["input", "output"])
def test_a_judge_outage_fails_closed_by_default_as_a_503(stage: str) -> None:
    platform = _platform({stage: {"toxicity": 0.5}}, capture={"mode": "full"})
    metrics = InMemoryGatewayMetrics()
    provider = Scripted(completion(CLEAN))
    gw, down = _down_gateway(platform, provider, stage, metrics)

    with pytest.raises(GuardrailUnavailableError) as failed:
        _invoke(gw)

    status, body = http.error_response(failed.value, request_id="req-1")
    assert status == http_status_for(failed.value) == 503
    assert body["error"]["code"] == "guardrail_unavailable"  # details go to the logs only
    assert failed.value.field == f"guardrail.{stage}.toxicity"
    assert "provider_throttled" in failed.value.message
    assert down.calls == 1
    (report,) = metrics.calls
    assert (report.status, report.errors, report.guardrail_blocked) == (503, 1, 0)
    rows = captured(platform, gw)
    if stage == "input":
        assert provider.requests == []
        assert spent(platform) == {}
        assert rows == []
    else:
        # answered and charged, but never shown: captured as a 503 with its answer
        (row,) = rows
        assert (row["status"], row["error"], row["answer"]) == (503, "guardrail_unavailable", CLEAN)
        assert "guardrail" not in row


def test_on_error_allow_lets_the_call_through_unjudged_and_counts_it() -> None:
    platform = _platform({"output": {"toxicity": 0.5}, "on_error": "allow"})
    out = io.StringIO()
    emf = EmfGatewayMetrics(Metrics(namespace="Flywheel/test"), write=out.write)
    gw, _ = _down_gateway(platform, Scripted(completion(TOXIC)), "output", emf)

    answer = _invoke(gw)

    assert (answer.text, answer.guardrail) == (TOXIC, None)
    doc = json.loads(out.getvalue())
    assert (doc["GuardrailFailures"], doc["GuardrailBlocked"], doc["Errors"]) == (1, 0, 0)


def test_the_judges_of_a_prompt_are_built_once() -> None:
    platform = _platform({"input": {"toxicity": 0.5}})
    built: list[GuardrailPolicy] = []

    def judges(policy: GuardrailPolicy) -> GuardrailJudges:
        built.append(policy)
        return embedded_judges(policy)

    gw = gateway(platform, Scripted())
    gw._make_judges = judges
    for _ in range(3):
        _invoke(gw)

    assert len(built) == 1
    assert built[0].input is not None
    assert built[0].input.toxicity == 0.5


def test_a_score_equal_to_the_toxicity_threshold_blocks() -> None:
    class Exactly:
        name = "toxicity"

        def evaluate(self, item: EvaluationInput) -> EvaluationScore:
            return EvaluationScore(evaluator="toxicity", score=0.5, threshold=0.5,
                                   direction=Direction.LOWER_IS_BETTER)  # fmt: skip

    platform = _platform({"input": {"toxicity": 0.5}})
    gw = gateway(platform, Scripted())
    gw._make_judges = lambda _p: GuardrailJudges(input=(Exactly(),), output=())

    assert _invoke(gw).guardrail is not None
