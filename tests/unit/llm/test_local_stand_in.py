"""The local stand-in speaks Converse: same answer for the same request, maxTokens and
stop sequences honoured with Converse's stop reasons, JSON of the asked schema, usage
counted, and faults injected per call."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flywheel.adapters.converse import converse_request
from flywheel.adapters.local_llm import ConverseError, LocalConverse, LocalProvider, count_tokens
from flywheel.errors import ProviderError, ProviderThrottledError, ProviderTimeoutError
from flywheel.llm.prompts import InferenceParameters, render
from flywheel.llm.providers import (
    CompletionRequest,
    RetryingProvider,
    RetryPolicy,
    StopReason,
    request_for,
)
from tests.factories import prompt_spec

SCHEMA = {
    "type": "object",
    "required": ["summary", "urgency", "tags"],
    "properties": {
        "summary": {"type": "string", "maxLength": 40},
        "urgency": {"type": "string", "enum": ["low", "normal", "high"]},
        "tags": {"type": "array", "minItems": 2, "items": {"type": "string"}},
        "score": {"type": "integer", "minimum": 3},
        "flag": {"type": "boolean"},
    },
}


def _request(text: str, **config: Any) -> dict[str, Any]:
    return {
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "inferenceConfig": {"maxTokens": 100, **config},
    }


def _text(answer: dict[str, Any]) -> str:
    return str(answer["output"]["message"]["content"][0]["text"])


def test_the_same_request_gets_the_same_answer_and_the_usage_adds_up() -> None:
    engine = LocalConverse()
    request = {**_request("Please reset my password, it expired."), "system": [{"text": "Hi."}]}

    first, second = engine.converse(request), engine.converse(request)

    assert _text(first) == _text(second) == "Please reset my password, it expired."
    usage = first["usage"]
    assert usage["inputTokens"] == count_tokens("Hi.") + count_tokens(
        "Please reset my password, it expired."
    )
    assert usage["outputTokens"] == count_tokens(_text(first))
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert first["stopReason"] == "end_turn"
    assert first["metrics"]["latencyMs"] >= 0


def test_max_tokens_and_stop_sequences_end_the_answer_as_converse_says() -> None:
    engine = LocalConverse()

    cut = engine.converse(_request("one two three four five", maxTokens=2))
    stopped = engine.converse(_request("keep this STOP not this", stopSequences=["STOP"]))

    assert (_text(cut), cut["stopReason"], cut["usage"]["outputTokens"]) == (
        "one two",
        "max_tokens",
        2,
    )
    assert (_text(stopped), stopped["stopReason"]) == ("keep this ", "stop_sequence")


def test_json_answers_follow_the_schema_the_request_asks_for() -> None:
    engine = LocalConverse()
    native = {
        **_request("The export to CSV fails for large accounts"),
        "outputConfig": {
            "textFormat": {
                "type": "json_schema",
                "structure": {"jsonSchema": {"schema": json.dumps(SCHEMA), "name": "a"}},
            }
        },
    }
    spec = prompt_spec(output_schema=SCHEMA)
    rendered = render(spec, {"customer": "ACME", "ticket": "The export fails"})
    instructed = converse_request(request_for(spec, rendered))

    for request in (native, instructed):
        value = json.loads(_text(engine.converse(request)))
        assert set(value) == set(SCHEMA["properties"])
        assert value["urgency"] in ("low", "normal", "high")
        assert len(value["summary"]) <= 40
        assert len(value["tags"]) == 2
        assert value["score"] == 3
        assert isinstance(value["flag"], bool)


def test_a_json_answer_cut_by_max_tokens_is_not_valid_json_as_with_a_model() -> None:
    answer = LocalConverse().converse(
        {
            **_request("some words to summarize here", maxTokens=4),
            "system": [{"text": f"Be brief.\n\n{_instruction()}"}],
        }
    )

    assert answer["stopReason"] == "max_tokens"
    with pytest.raises(json.JSONDecodeError):
        json.loads(_text(answer))


def _instruction() -> str:
    from flywheel.llm.prompts import JSON_INSTRUCTION

    return f"{JSON_INSTRUCTION}\n{json.dumps(SCHEMA)}"


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "modelId"),
        ({"modelId": "m", "messages": []}, "at least one message"),
        (
            {"modelId": "m", "messages": [{"role": "assistant", "content": [{"text": "x"}]}]},
            "roles alternate",
        ),
        ({**_request("x", maxTokens=0)}, "maxTokens"),
        ({**_request("x", temperature=2)}, "temperature"),
        ({**_request("x", stopSequences=[""])}, "stopSequences"),
        ({"modelId": "m", "messages": [{"role": "user", "content": [{"text": " "}]}]}, "no text"),
    ],
)
def test_requests_bedrock_would_refuse_are_validation_errors(
    request_: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ConverseError, match=reason) as caught:
        LocalConverse().converse(request_)
    assert (caught.value.code, caught.value.status) == ("ValidationException", 400)


def test_injected_faults_hit_one_call_each_in_order() -> None:
    slept: list[float] = []
    engine = LocalConverse(sleep=slept.append)
    engine.inject("ThrottlingException", "latency=250", "guardrail")

    with pytest.raises(ConverseError) as caught:
        engine.converse(_request("x"))
    slow = engine.converse(_request("x"))
    blocked = engine.converse(_request("x"))
    normal = engine.converse(_request("x"))

    assert (caught.value.code, caught.value.status) == ("ThrottlingException", 429)
    assert slept == [0.25]
    assert _text(slow) == "x"
    assert blocked["stopReason"] == "guardrail_intervened"
    assert normal["stopReason"] == "end_turn"
    with pytest.raises(ValueError, match="unknown fault"):
        engine.inject("Oops")


def test_a_fault_for_one_model_waits_for_that_model_and_spares_the_others() -> None:
    engine = LocalConverse()
    engine.inject("ModelErrorException@amazon.nova-lite-v1:0", "ThrottlingException@other")

    champion = engine.converse(_request("x"))  # Claude 3 Haiku: not the faulty model
    with pytest.raises(ConverseError) as caught:
        engine.converse({**_request("x"), "modelId": "amazon.nova-lite-v1:0"})
    after = engine.converse({**_request("x"), "modelId": "amazon.nova-lite-v1:0"})

    assert champion["stopReason"] == "end_turn"
    assert caught.value.code == "ModelErrorException"
    assert after["stopReason"] == "end_turn"
    assert engine.pending() == ["ThrottlingException@other"]
    with pytest.raises(ValueError, match="unknown fault"):
        engine.inject("Oops@amazon.nova-lite-v1:0")


def test_a_toxic_fault_makes_one_answer_abusive_that_the_toxicity_evaluator_fails() -> None:
    from flywheel.llm.evaluation import EvaluationInput
    from flywheel.llm.evaluators import ToxicityEvaluator

    engine = LocalConverse()
    engine.inject("toxic@amazon.nova-lite-v1:0", "toxic@amazon.nova-lite-v1:0")
    nova = {**_request("Customer Acme was charged twice."), "modelId": "amazon.nova-lite-v1:0"}
    asked_json = {**nova, "outputConfig": {"textFormat": {"type": "json_schema", "structure": {
        "jsonSchema": {"schema": json.dumps(SCHEMA), "name": "answer"}}}}}  # fmt: skip

    champion = _text(engine.converse(_request("Customer Acme was charged twice.")))
    toxic = _text(engine.converse(nova))
    toxic_json = engine.converse(asked_json)
    clean = _text(engine.converse(nova))

    judge = ToxicityEvaluator(0.5)
    assert champion == clean == "Customer Acme was charged twice."
    assert not judge.evaluate(EvaluationInput(answer=toxic)).passed
    assert judge.evaluate(EvaluationInput(answer=clean)).passed
    assert toxic_json["stopReason"] == "end_turn"
    assert set(json.loads(_text(toxic_json))) >= {"summary", "urgency", "tags"}
    assert engine.pending() == []


def test_the_provider_maps_each_converse_error_to_its_typed_error() -> None:
    engine = LocalConverse()
    provider = LocalProvider(engine)
    request = CompletionRequest(
        model_id="local.stand-in", user="hi", parameters=InferenceParameters(max_tokens=5)
    )
    expected = [
        ("ThrottlingException", ProviderThrottledError, True),
        ("ModelTimeoutException", ProviderTimeoutError, False),
        ("ServiceUnavailableException", ProviderError, True),
        ("ModelErrorException", ProviderError, False),
    ]
    for code, error, retryable in expected:
        engine.inject(code)
        with pytest.raises(error) as caught:
            provider.complete(request)
        assert caught.value.details["retryable"] is retryable
        assert caught.value.details["provider_code"] == code


def test_throttling_is_retried_through_the_port_and_the_attempts_counted() -> None:
    engine = LocalConverse()
    engine.inject("ThrottlingException", "ThrottlingException")
    provider = RetryingProvider(LocalProvider(engine), RetryPolicy(), sleep=lambda _: None)

    answer = provider.complete(
        CompletionRequest(
            model_id="local.stand-in", user="hello", parameters=InferenceParameters(max_tokens=5)
        )
    )

    assert (answer.text, answer.stop_reason, answer.attempts) == ("hello", StopReason.END_TURN, 3)
