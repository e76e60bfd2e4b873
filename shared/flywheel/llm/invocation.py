"""The HTTP contract of ``POST /v1/prompts/{name}/invoke``: its body and its answer.

The API Gateway request model of the route is generated from :class:`InvokeRequest`
(``infra.api_schemas``), and the OpenAPI document describes both models. The body names
the prompt's variables; the version that answers is chosen by the gateway (champion,
canary, A/B arm), sticky per ``assignment_key`` in an A/B test.

Examples
--------
>>> body = InvokeRequest.model_validate({"variables": {"ticket": "It is down"}})
>>> body.variables, body.assignment_key
({'ticket': 'It is down'}, None)
>>> InvokeRequest.model_validate({"variables": {}, "assignment_key": "k" * 257})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for InvokeRequest
...
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flywheel.llm.guardrails import GuardrailOutcome
from flywheel.models import Frozen

__all__ = [
    "INVOKE_ROUTE",
    "MAX_ASSIGNMENT_KEY_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "InvokeRequest",
    "InvokeResponse",
    "InvokeUsage",
]

#: The route, in the Powertools resolvers' syntax.
INVOKE_ROUTE = "/v1/prompts/<name>/invoke"
#: A caller's A/B assignment key is an opaque string of at most this many characters.
MAX_ASSIGNMENT_KEY_LENGTH = 256
#: A caller's own request id (echoed in the answer and the captured row).
MAX_REQUEST_ID_LENGTH = 128


class InvokeRequest(Frozen):
    """The body of ``POST /v1/prompts/{name}/invoke``."""

    #: The prompt's variables by name; each is checked against the version's declared
    #: variables (a bad one is a 422 naming ``variables.<name>``).
    variables: dict[str, Any] = Field(
        description="The prompt's variables by name, checked against the answering version's."
    )
    #: Keeps a caller on one arm of an A/B test (the same key, the same arm).
    assignment_key: str | None = Field(
        default=None,
        max_length=MAX_ASSIGNMENT_KEY_LENGTH,
        description="Sticky A/B assignment: the same key always gets the same arm.",
    )
    #: The caller's id for this call (default: API Gateway's request id).
    request_id: str | None = Field(
        default=None,
        max_length=MAX_REQUEST_ID_LENGTH,
        description="The caller's id for this call, echoed in the answer and the capture.",
    )


class InvokeUsage(Frozen):
    """Tokens the provider counted for the call."""

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class InvokeResponse(Frozen):
    """The gateway's answer: what the version said, which version and variant said it,
    and what it cost."""

    prompt: str
    version: int = Field(ge=1)
    variant: Literal["champion", "canary", "a", "b"]
    #: The answer's text, for versions without an output schema.
    text: str | None = None
    #: The answer parsed as JSON, for versions with an output schema (validated by it).
    output: Any = None
    stop_reason: str
    usage: InvokeUsage
    #: Exact cost in ``currency``, as a decimal string (``"0.000412"``).
    cost: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    latency_ms: float = Field(ge=0)
    #: Provider calls made (throttled and unavailable calls are retried).
    attempts: int = Field(ge=1)
    #: Whether the answer came from the one repair retry after an output-schema failure.
    repaired: bool
    request_id: str
    #: Set when a guardrail blocked the input or the answer: ``text`` is then the
    #: prompt's configured message and ``stop_reason`` is ``guardrail_intervened``
    #: (absent from the JSON otherwise).
    guardrail: GuardrailOutcome | None = Field(
        default=None,
        description="Present when a guardrail blocked the input or the answer; the text is "
        "then the prompt's configured message.",
    )
