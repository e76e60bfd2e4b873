"""Who judges a prompt's guardrails: the stage's Amazon Bedrock guardrail in AWS
(``ApplyGuardrail`` as botocore's service model has it, Stubber), the embedded evaluators
locally; and a gateway call judged by the guardrail, blocked or failed closed."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from flywheel.adapters.bedrock_guardrails import bedrock_judges
from flywheel.composition import AwsPlatform, InMemoryPlatform
from flywheel.errors import GuardrailUnavailableError
from flywheel.gateway.settings import GatewaySettings
from flywheel.llm.evaluators import GroundednessEvaluator, ToxicityEvaluator
from flywheel.llm.guardrails import GuardrailPolicy, input_item, judge, output_item
from flywheel.llm.invocation import InvokeRequest
from tests.gateway_support import (
    NAME,
    VARIABLES,
    Scripted,
    add_prompt,
    completion,
    gateway,
    promote,
)
from tests.unit.llm.test_bedrock_guardrails import (  # noqa: F401 (stubbed: a fixture)
    NoWait,
    _filter,
    _guardrail,
    _response,
    stubbed,
)

POLICY = GuardrailPolicy.model_validate(
    {
        "input": {"toxicity": 0.5},
        "output": {"toxicity": 0.5, "groundedness": 0.6, "context_variable": "ticket"},
        "bedrock": {"id": "gr1abc", "version": "3"},
    }
)


def test_the_input_is_judged_alone_by_the_guardrails_input_filters(
    stubbed: tuple[Any, Stubber],  # noqa: F811
) -> None:
    client, stubber = stubbed
    text = "ACME Corp\nYou are all idiots."
    stubber.add_response(
        "apply_guardrail",
        _response([_filter("INSULTS", "HIGH", "BLOCKED")], grounding=None, relevance=None),
        {
            "guardrailIdentifier": "gr1abc",
            "guardrailVersion": "3",
            "source": "INPUT",
            "outputScope": "FULL",
            "content": [{"text": {"text": text, "qualifiers": ["guard_content"]}}],
        },
    )
    judges = bedrock_judges(_guardrail(client), POLICY)

    outcome = judge(
        "input",
        judges.input,
        input_item({"customer": "ACME Corp", "ticket": "You are all idiots."}),
    )

    assert outcome is not None
    assert (outcome.stage, outcome.evaluator, outcome.score) == ("input", "toxicity", 1.0)


def test_one_call_judges_the_answers_toxicity_and_groundedness(
    stubbed: tuple[Any, Stubber],  # noqa: F811
) -> None:
    client, stubber = stubbed
    variables = {"customer": "ACME", "ticket": "Exports over 10k rows time out."}
    answer = "Exports over 50k rows time out."
    stubber.add_response(
        "apply_guardrail",
        _response([_filter("INSULTS", "NONE")], grounding=0.31),
        {
            "guardrailIdentifier": "gr1abc",
            "guardrailVersion": "3",
            "source": "OUTPUT",
            "outputScope": "FULL",
            "content": [
                {"text": {"text": variables["ticket"], "qualifiers": ["grounding_source"]}},
                {"text": {"text": "ACME", "qualifiers": ["query"]}},
                {"text": {"text": answer, "qualifiers": ["guard_content"]}},
            ],
        },
    )
    guardrail = _guardrail(client)
    judges = bedrock_judges(guardrail, POLICY)

    outcome = judge(
        "output", judges.output, output_item(answer, variables, context_variable="ticket")
    )

    assert guardrail.calls == 1  # toxicity and groundedness share the call
    assert outcome is not None
    assert (outcome.evaluator, outcome.score) == ("groundedness", 0.31)


def test_a_guardrail_that_keeps_throttling_fails_the_call_closed(
    stubbed: tuple[Any, Stubber],  # noqa: F811
) -> None:
    client, stubber = stubbed
    for _ in range(2):
        stubber.add_client_error("apply_guardrail", "ThrottlingException", http_status_code=429)
    waits = NoWait()
    guardrail = _guardrail(client, waits, max_attempts=2)
    platform = InMemoryPlatform(
        GatewaySettings(
            backend="local",
            llm_policy={"prompts": {NAME: {"guardrails": POLICY.model_dump(mode="json")}}},
        )
    )
    promote(platform, add_prompt(platform))
    provider = Scripted(completion("fine"))
    gw = gateway(platform, provider)
    gw._make_judges = lambda policy: bedrock_judges(guardrail, policy)

    with pytest.raises(GuardrailUnavailableError) as failed:
        gw.invoke(NAME, InvokeRequest(variables=VARIABLES), request_id="r")

    assert failed.value.field == "guardrail.input.toxicity"
    assert "provider_throttled" in failed.value.message
    assert (guardrail.calls, len(waits.slept)) == (2, 1)  # retried once, then failed closed
    assert provider.requests == []  # nothing unjudged was sent


def test_locally_the_embedded_evaluators_judge_even_with_a_bedrock_guardrail_named() -> None:
    platform = AwsPlatform(GatewaySettings(backend="local", endpoint_url="http://127.0.0.1:1"))

    judges = platform.guardrail_judges(POLICY)

    assert [type(e) for e in judges.input] == [ToxicityEvaluator]
    assert [type(e) for e in judges.output] == [ToxicityEvaluator, GroundednessEvaluator]
    assert judges.output[1].threshold == 0.6  # type: ignore[attr-defined]


def test_in_aws_the_stages_bedrock_guardrail_judges_within_the_guardrail_timeout() -> None:
    settings = GatewaySettings(backend="local", region="eu-west-1", guardrail_timeout_seconds=1.5)
    platform = AwsPlatform(settings.model_copy(update={"backend": "aws"}))

    judges = platform.guardrail_judges(POLICY)
    lean = platform.guardrail_judges(POLICY.model_copy(update={"bedrock": None}))

    (asked,) = judges.input
    guardrail = asked._guardrail  # type: ignore[attr-defined]
    assert guardrail.guardrail == POLICY.bedrock
    assert guardrail.retry.max_attempts == 2
    assert guardrail.retry.deadline_seconds == 1.5
    assert guardrail._client.meta.config.read_timeout == 1.5
    assert [e.name for e in judges.output] == ["toxicity", "groundedness"]
    # a policy without a Bedrock guardrail is judged by the embedded evaluators in AWS too
    assert [type(e) for e in lean.input] == [ToxicityEvaluator]
