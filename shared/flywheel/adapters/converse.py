"""The Amazon Bedrock Converse contract, as plain dicts: a request from a
:class:`~flywheel.llm.providers.CompletionRequest`, a completion from a response, and the
typed error for each of Converse's error codes. The Bedrock adapter and the local
stand-in share it, so both speak exactly the same shapes.

Examples
--------
>>> from flywheel.llm.prompts import InferenceParameters
>>> from flywheel.llm.providers import CompletionRequest
>>> converse_request(CompletionRequest(model_id="m", user="Hi", system="Be brief.",
...     parameters=InferenceParameters(max_tokens=5)))["inferenceConfig"]
{'maxTokens': 5}
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flywheel.errors import ProviderError, ProviderThrottledError, ProviderTimeoutError
from flywheel.llm.providers import Completion, StopReason, Usage

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flywheel.llm.providers import CompletionRequest

__all__ = ["RETRYABLE_CODES", "completion_from", "converse_request", "error_for"]

#: Converse errors that say the service could not take the call now: a retry may work.
RETRYABLE_CODES = frozenset(
    {"ServiceUnavailableException", "InternalServerException", "ModelNotReadyException"}
)
_STOP_REASONS = {reason.value: reason for reason in StopReason}


def converse_request(request: CompletionRequest) -> dict[str, Any]:
    """The ``Converse`` parameters (``modelId``, ``messages``, ``system``,
    ``inferenceConfig``, ``guardrailConfig``, ``outputConfig``) for ``request``."""
    messages = [{"role": t.role, "content": [{"text": t.text}]} for t in request.history]
    messages.append({"role": "user", "content": [{"text": request.user}]})
    params = request.parameters
    config: dict[str, Any] = {"maxTokens": params.max_tokens}
    if params.temperature is not None:
        config["temperature"] = params.temperature
    if params.top_p is not None:
        config["topP"] = params.top_p
    if params.stop_sequences:
        config["stopSequences"] = list(params.stop_sequences)
    body: dict[str, Any] = {
        "modelId": request.model_id,
        "messages": messages,
        "inferenceConfig": config,
    }
    if request.system:
        body["system"] = [{"text": request.system}]
    if request.guardrail is not None:
        body["guardrailConfig"] = {
            "guardrailIdentifier": request.guardrail.id,
            "guardrailVersion": request.guardrail.version,
            "trace": request.guardrail.trace,
        }
    if request.output_schema is not None:
        schema = json.dumps(request.output_schema, sort_keys=True, separators=(",", ":"))
        body["outputConfig"] = {
            "textFormat": {
                "type": "json_schema",
                "structure": {"jsonSchema": {"schema": schema, "name": "answer"}},
            }
        }
    return body


def completion_from(
    response: Mapping[str, Any], *, model_id: str, measured_ms: float
) -> Completion:
    """The :class:`Completion` a ``Converse`` response holds.

    ``latency_ms`` is the response's ``metrics.latencyMs`` (the model's own time), else
    ``measured_ms``.

    Raises
    ------
    ProviderError
        The response lacks its text, stop reason or usage.
    """
    try:
        blocks = response["output"]["message"]["content"]
        text = "".join(str(b["text"]) for b in blocks if "text" in b)
        reason = _STOP_REASONS.get(str(response["stopReason"]), StopReason.OTHER)
        usage = response["usage"]
        counted = Usage(
            input_tokens=int(usage["inputTokens"]), output_tokens=int(usage["outputTokens"])
        )
        latency = float((response.get("metrics") or {}).get("latencyMs", measured_ms))
    except (KeyError, TypeError, ValueError):
        raise ProviderError(
            f"the answer of {model_id} is not a Converse response", field="provider"
        ) from None
    return Completion(
        text=text,
        stop_reason=reason,
        usage=counted,
        latency_ms=max(0.0, latency),
        model_id=model_id,
    )


def error_for(code: str, *, model_id: str, provider: str = "Amazon Bedrock") -> ProviderError:
    """The typed error for a Converse error ``code`` (never the provider's message).

    Examples
    --------
    >>> type(error_for("ThrottlingException", model_id="m")).__name__
    'ProviderThrottledError'
    >>> error_for("ServiceUnavailableException", model_id="m").details["retryable"]
    True
    """
    if code == "ThrottlingException":
        return ProviderThrottledError(
            f"{provider} throttled the call to {model_id}",
            field="provider",
            details={"provider_code": code, "retryable": True},
        )
    if code == "ModelTimeoutException":
        return ProviderTimeoutError(
            f"{model_id} did not answer in time ({provider})",
            field="provider",
            details={"provider_code": code, "retryable": False},
        )
    return ProviderError(
        f"{provider} refused the call to {model_id} ({code})",
        field="provider",
        details={"provider_code": code, "retryable": code in RETRYABLE_CODES},
    )
