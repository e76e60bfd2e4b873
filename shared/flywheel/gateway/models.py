"""The gateway's HTTP edge: the invoke body parsed once, the answer serialized once.

The bodies themselves are the route's contract, :mod:`flywheel.llm.invocation` (the API
Gateway request model and the OpenAPI document are generated from the same classes).

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

from typing import TYPE_CHECKING

from flywheel.llm.invocation import InvokeRequest
from flywheel.serving.http import parse_body

if TYPE_CHECKING:
    from flywheel.llm.invocation import InvokeResponse

__all__ = ["answer_json", "parse_invoke_request"]


def parse_invoke_request(text: str | None) -> InvokeRequest:
    """Parse and validate an invoke body in one pass (pydantic-core's parser).

    Raises
    ------
    InvalidRequestError
        Not JSON, or not an :class:`~flywheel.llm.invocation.InvokeRequest`; every bad
        field listed (400).
    PayloadTooLargeError
        A body larger than Lambda's payload limit (413).
    """
    return parse_body(InvokeRequest, text)


def answer_json(answer: InvokeResponse) -> str:
    """The answer's JSON: ``text``, or ``output`` for a version with an output schema;
    never both; ``guardrail`` only when a guardrail blocked.

    Examples
    --------
    >>> from flywheel.llm.invocation import InvokeResponse, InvokeUsage
    >>> answer_json(InvokeResponse(prompt="p", version=1, variant="champion", text="hi",
    ...     stop_reason="end_turn", usage=InvokeUsage(input_tokens=3, output_tokens=1),
    ...     cost="0.000005", currency="USD", latency_ms=1.5, attempts=1, repaired=False,
    ...     request_id="r"))[:60]
    '{"prompt":"p","version":1,"variant":"champion","text":"hi","'
    """
    drop = {"text" if answer.text is None else "output"}
    if answer.guardrail is None:
        drop.add("guardrail")
    return answer.model_dump_json(exclude=drop)
