"""Amazon Bedrock Guardrails behind the evaluator port: the ApplyGuardrail request and
response as botocore's service model has them (Stubber), the score mapping, typed errors
and retries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from flywheel.adapters.bedrock_guardrails import BedrockGuardrail
from flywheel.errors import ConfigError, ProviderError, ProviderThrottledError, ProviderTimeoutError
from flywheel.llm.evaluation import Direction, EvaluationInput, Verdict
from flywheel.llm.prompts import Guardrail
from flywheel.llm.providers import RetryPolicy

GUARDRAIL = Guardrail(id="gr1abc", version="3")
ITEM = EvaluationInput(
    answer="Refunds are issued within 14 days.",
    question="How long do refunds take?",
    context=("Refunds are issued within 14 days of a cancellation request.", "  "),
)
USAGE = {
    "topicPolicyUnits": 0,
    "contentPolicyUnits": 1,
    "wordPolicyUnits": 1,
    "sensitiveInformationPolicyUnits": 0,
    "sensitiveInformationPolicyFreeUnits": 0,
    "contextualGroundingPolicyUnits": 1,
}


def _filter(kind: str, confidence: str, action: str = "NONE") -> dict[str, Any]:
    return {"type": kind, "confidence": confidence, "filterStrength": "MEDIUM",
            "action": action, "detected": confidence != "NONE"}  # fmt: skip


def _response(
    filters: list[dict[str, Any]] | None = None,
    grounding: float | None = 0.92,
    relevance: float | None = 0.81,
    words: tuple[str, ...] = (),
) -> dict[str, Any]:
    assessment: dict[str, Any] = {
        "contentPolicy": {"filters": filters or [_filter("INSULTS", "NONE")]},
    }
    if words:
        assessment["wordPolicy"] = {
            "customWords": [],
            "managedWordLists": [
                {"match": w, "type": "PROFANITY", "action": "NONE", "detected": True} for w in words
            ],
        }
    checks = []
    if grounding is not None:
        action = "NONE" if grounding >= 0.7 else "BLOCKED"
        checks.append({"type": "GROUNDING", "threshold": 0.7, "score": grounding,
                       "action": action, "detected": False})  # fmt: skip
    if relevance is not None:
        checks.append({"type": "RELEVANCE", "threshold": 0.5, "score": relevance,
                       "action": "NONE", "detected": False})  # fmt: skip
    if checks:
        assessment["contextualGroundingPolicy"] = {"filters": checks}
    return {"usage": USAGE, "action": "NONE", "outputs": [], "assessments": [assessment]}


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


class NoWait:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _guardrail(client: Any, waits: NoWait | None = None, **policy: float) -> BedrockGuardrail:
    waits = waits or NoWait()
    return BedrockGuardrail(
        client=client,
        guardrail=GUARDRAIL,
        retry=RetryPolicy(**policy),
        sleep=waits.sleep,
        uniform=lambda low, high: high,
        monotonic=lambda: 0.0,
    )


def test_one_call_judges_toxicity_groundedness_and_relevance(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    expected = {
        "guardrailIdentifier": "gr1abc",
        "guardrailVersion": "3",
        "source": "OUTPUT",
        "outputScope": "FULL",
        "content": [
            {"text": {"text": ITEM.context[0], "qualifiers": ["grounding_source"]}},
            {"text": {"text": ITEM.question, "qualifiers": ["query"]}},
            {"text": {"text": ITEM.answer, "qualifiers": ["guard_content"]}},
        ],
    }
    stubber.add_response("apply_guardrail", _response(), expected)
    guardrail = _guardrail(client)
    evaluators = guardrail.evaluators()

    toxicity = evaluators["toxicity"].evaluate(ITEM)
    grounded = evaluators["groundedness"].evaluate(ITEM)
    relevant = evaluators["relevance"].evaluate(ITEM)

    assert guardrail.calls == 1
    assert (toxicity.score, toxicity.direction, toxicity.verdict) == (
        0.0,
        Direction.LOWER_IS_BETTER,
        Verdict.PASS,
    )
    assert (grounded.score, grounded.threshold, grounded.verdict) == (0.92, 0.7, Verdict.PASS)
    assert (relevant.score, relevant.threshold) == (0.81, 0.5)
    assert grounded.evidence[0].note == (
        "contextual grounding groundedness score 0.92 (the guardrail's threshold 0.70, NONE)"
    )


@pytest.mark.parametrize(
    ("confidence", "score", "verdict"),
    [("LOW", 1 / 3, "pass"), ("MEDIUM", 2 / 3, "fail"), ("HIGH", 1.0, "fail")],
)
def test_filter_confidence_maps_to_a_toxicity_score(
    stubbed: tuple[Any, Stubber], confidence: str, score: float, verdict: str
) -> None:
    client, stubber = stubbed
    filters = [
        _filter("INSULTS", confidence, "BLOCKED"),
        _filter("PROMPT_ATTACK", "HIGH"),  # not toxicity
        _filter("HATE", "NONE"),
    ]
    stubber.add_response("apply_guardrail", _response(filters))
    scored = _guardrail(client).evaluators()["toxicity"].evaluate(ITEM)
    assert scored.score == pytest.approx(score)
    assert scored.verdict.value == verdict
    assert [e.note for e in scored.evidence] == [
        f"answer: INSULTS: confidence {confidence} (filter strength MEDIUM, BLOCKED)"
    ]


def test_a_profanity_word_match_counts_as_medium_and_is_evidence(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_response("apply_guardrail", _response(words=("crap",)))
    scored = _guardrail(client).evaluators()["toxicity"].evaluate(ITEM)
    assert scored.score == pytest.approx(2 / 3)
    assert scored.evidence[0].words == ("crap",)


def test_input_toxicity_is_a_second_call_with_source_input(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("apply_guardrail", _response())
    stubber.add_response(
        "apply_guardrail",
        _response([_filter("INSULTS", "HIGH")], None, None),
        {"guardrailIdentifier": "gr1abc", "guardrailVersion": "3", "source": "INPUT",
         "outputScope": "FULL",
         "content": [{"text": {"text": ITEM.question, "qualifiers": ["guard_content"]}}]},
    )  # fmt: skip
    scored = _guardrail(client).evaluators(include_input=True)["toxicity"].evaluate(ITEM)
    assert scored.score == 1.0
    assert (scored.evidence[0].note or "").startswith("input:")


def test_thresholds_override_the_guardrails_own(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("apply_guardrail", _response(grounding=0.92))
    scored = _guardrail(client).evaluators({"groundedness": 0.95})["groundedness"].evaluate(ITEM)
    assert (scored.threshold, scored.verdict) == (0.95, Verdict.FAIL)
    with pytest.raises(ConfigError, match=r"thresholds\.format: not a guardrail evaluator"):
        _guardrail(client).evaluators({"format": 1.0})


def test_no_context_means_not_applicable_and_no_grounding_call(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, _ = stubbed
    evaluators = _guardrail(client).evaluators()
    bare = EvaluationInput(answer="Hi", question="Hello?")
    assert not evaluators["groundedness"].evaluate(bare).applicable
    assert not evaluators["relevance"].evaluate(bare).applicable
    no_question = EvaluationInput(answer="A", context=("C",))
    assert evaluators["relevance"].evaluate(no_question).evidence[0].note == (
        "the contextual grounding check needs a question"
    )


def test_a_guardrail_without_the_grounding_check_is_a_config_error(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_response("apply_guardrail", _response(grounding=None, relevance=None))
    with pytest.raises(ConfigError, match="has no contextual grounding check of type GROUNDING"):
        _guardrail(client).evaluators()["groundedness"].evaluate(ITEM)


def test_throttling_is_retried_with_jitter_then_answers(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error("apply_guardrail", "ThrottlingException", http_status_code=429)
    stubber.add_client_error("apply_guardrail", "ServiceUnavailableException", http_status_code=503)
    stubber.add_response("apply_guardrail", _response())
    waits = NoWait()
    guardrail = _guardrail(client, waits)
    assert guardrail.evaluators()["toxicity"].evaluate(ITEM).score == 0.0
    assert guardrail.calls == 3
    assert waits.slept == [0.2, 0.4]


@pytest.mark.parametrize(
    ("code", "status", "error", "retryable"),
    [
        ("ThrottlingException", 429, ProviderThrottledError, True),
        ("ServiceQuotaExceededException", 400, ProviderThrottledError, True),
        ("ResourceNotFoundException", 404, ProviderError, False),
        ("AccessDeniedException", 403, ProviderError, False),
        ("ValidationException", 400, ProviderError, False),
    ],
)
def test_service_errors_are_typed_provider_errors_never_library_exceptions(
    stubbed: tuple[Any, Stubber],
    code: str,
    status: int,
    error: type[ProviderError],
    retryable: bool,
) -> None:
    client, stubber = stubbed
    attempts = 2 if retryable else 1
    for _ in range(attempts):
        stubber.add_client_error("apply_guardrail", code, "secret service text", status)
    with pytest.raises(error) as caught:
        _guardrail(client, max_attempts=2).evaluators()["toxicity"].evaluate(ITEM)
    assert type(caught.value) is error
    assert caught.value.details["provider_code"] == code
    assert caught.value.details["attempts"] == attempts
    assert "guardrail gr1abc version 3" in caught.value.message
    assert "secret service text" not in caught.value.message


class _Raising:
    def apply_guardrail(self, **_: Any) -> dict[str, Any]:
        raise ReadTimeoutError(endpoint_url="https://bedrock-runtime")


def test_a_timeout_is_a_provider_timeout_not_retried() -> None:
    guardrail = _guardrail(_Raising())
    with pytest.raises(ProviderTimeoutError, match="did not answer the call to guardrail gr1abc"):
        guardrail.evaluators()["toxicity"].evaluate(ITEM)
    assert guardrail.calls == 1


class _Garbled:
    def apply_guardrail(self, **_: Any) -> dict[str, Any]:
        return {"usage": USAGE, "assessments": [{"contentPolicy": {"filters": [{}]}}]}


def test_an_unreadable_response_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="not an ApplyGuardrail response"):
        _guardrail(_Garbled()).evaluators()["toxicity"].evaluate(ITEM)
