"""The bodies of ``POST /v1/prompts/{name}/invoke``: the request and the answer.

Examples
--------
>>> request = parse_invoke_request('{"variables": {"who": "Bo"}, "assignment_key": "u-1"}')
>>> request.variables, request.assignment_key
({'who': 'Bo'}, 'u-1')
>>> parse_invoke_request('{"variables": [], "extra": 1}')
Traceback (most recent call last):
...
flywheel.errors.InvalidRequestError: the request body is invalid
"""

from __future__ import annotations

from pydantic import Field, JsonValue

from flywheel.models import Frozen
from flywheel.serving.http import parse_body
from flywheel.serving.models import Variant

__all__ = ["InvokeRequest", "InvokeResponse", "TokenUsage", "parse_invoke_request"]

#: Variables a call may send at most (a prompt declares at most 50).
MAX_VARIABLES = 100


class InvokeRequest(Frozen):
    """One call of a prompt: its variables, and optionally an A/B assignment key and the
    caller's request id (else API Gateway's)."""

    variables: dict[str, JsonValue] = Field(
        default_factory=dict,
        max_length=MAX_VARIABLES,
        description="The prompt's variables by name (checked against its spec: 422 naming each).",
    )
    assignment_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Sticky A/B assignment (a user or session id); without it: arm a.",
    )
    request_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="The caller's correlation id (letters, digits, . _ : -); else API Gateway's.",
    )


class TokenUsage(Frozen):
    """Tokens the provider counted, every call of this answer together (a repair too)."""

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class InvokeResponse(Frozen):
    """A prompt's answer: ``text``, or ``output`` (the parsed JSON) for a version with an
    output schema; what it cost and who answered."""

    prompt: str
    version: int = Field(ge=1, description="The prompt version that answered.")
    variant: Variant = Field(description="champion, canary, or the A/B arm (a, b).")
    text: str | None = Field(default=None, description="The answer (versions without a schema).")
    output: JsonValue = Field(
        default=None, description="The answer as JSON of the version's output schema."
    )
    stop_reason: str = Field(description="end_turn, max_tokens, stop_sequence, guardrail_...")
    usage: TokenUsage
    cost: str = Field(description="Exact cost of every provider call of this answer (decimal).")
    currency: str = Field(description="The price table's currency (USD).")
    latency_ms: float = Field(ge=0, description="The whole call, the provider's time included.")
    attempts: int = Field(ge=1, description="Provider requests made (throttling retries, repair).")
    repaired: bool = Field(description="The first answer failed the schema; one repair fixed it.")
    request_id: str

    def to_json(self) -> str:
        """The answer's JSON: ``text`` or ``output``, never both.

        Examples
        --------
        >>> InvokeResponse(prompt="p", version=1, variant="champion", text="hi",
        ...     stop_reason="end_turn", usage=TokenUsage(input_tokens=3, output_tokens=1),
        ...     cost="0.000005", currency="USD", latency_ms=1.5, attempts=1, repaired=False,
        ...     request_id="r").to_json()[:60]
        '{"prompt":"p","version":1,"variant":"champion","text":"hi","'
        """
        drop = "text" if self.text is None else "output"
        return self.model_dump_json(exclude={drop})


def parse_invoke_request(text: str | None) -> InvokeRequest:
    """Parse and validate an invoke body in one pass.

    Raises
    ------
    InvalidRequestError
        Not JSON, or not an :class:`InvokeRequest`; every bad field listed (400).
    PayloadTooLargeError
        A body larger than Lambda's payload limit (413).
    """
    return parse_body(InvokeRequest, text)
