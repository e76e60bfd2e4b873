"""The provider port: one completion per call, typed errors, bounded retries with jitter.

Adapters (``flywheel.adapters.bedrock``, ``openai_http``, ``local_llm``) implement
:class:`CompletionProvider`; they raise :class:`~flywheel.errors.ProviderThrottledError`,
:class:`~flywheel.errors.ProviderTimeoutError` or :class:`~flywheel.errors.ProviderError`
(``details["retryable"]`` when the provider was unavailable), never library exceptions.
:class:`RetryingProvider` retries throttled and unavailable calls, at most
``max_attempts`` times, with full jitter, within a deadline.

Examples
--------
>>> from flywheel.adapters.local_llm import LocalProvider
>>> request = CompletionRequest(model_id="local.stand-in", user="Say hi to Bo.",
...                             parameters=InferenceParameters(max_tokens=20))
>>> completion = RetryingProvider(LocalProvider()).complete(request)
>>> completion.stop_reason, completion.attempts
(<StopReason.END_TURN: 'end_turn'>, 1)
"""

from __future__ import annotations

import random
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from pydantic import Field, JsonValue

from flywheel.errors import ProviderError, ProviderThrottledError
from flywheel.llm.prompts import Guardrail, InferenceParameters
from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Callable

    from flywheel.llm.prompts import PromptSpec, RenderedPrompt

__all__ = [
    "Completion",
    "CompletionProvider",
    "CompletionRequest",
    "RetryPolicy",
    "RetryingProvider",
    "StopReason",
    "Turn",
    "Usage",
    "request_for",
]


class StopReason(StrEnum):
    """Why the answer ended (Converse's reasons; other providers' are mapped to these)."""

    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    GUARDRAIL_INTERVENED = "guardrail_intervened"
    CONTENT_FILTERED = "content_filtered"
    OTHER = "other"


class Turn(Frozen):
    """One earlier message of the conversation (before the rendered user message)."""

    role: str = Field(pattern=r"^(user|assistant)$")
    text: str = Field(min_length=1)


class CompletionRequest(Frozen):
    """One call: the rendered system and user text, the model and how to sample.

    ``history`` holds earlier turns, oldest first; ``output_schema`` is set only when the
    prompt asks the provider itself for JSON (``structured_output``).
    """

    model_id: str = Field(min_length=1, max_length=2048)
    system: str = ""
    user: str = Field(min_length=1)
    history: tuple[Turn, ...] = ()
    parameters: InferenceParameters
    output_schema: dict[str, JsonValue] | None = None
    guardrail: Guardrail | None = None


class Usage(Frozen):
    """Tokens the provider counted for one call."""

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Completion(Frozen):
    """The provider's answer: text, why it stopped, tokens, latency (ms, the provider's
    own figure when it reports one) and how many attempts it took."""

    text: str
    stop_reason: StopReason
    usage: Usage
    latency_ms: float = Field(ge=0)
    model_id: str
    attempts: int = Field(default=1, ge=1)


class CompletionProvider(Protocol):
    """A model behind an API: one completion per call.

    Raises
    ------
    ProviderThrottledError
        The provider refused the call for its rate limits.
    ProviderTimeoutError
        No answer within the adapter's timeout.
    ProviderError
        Anything else the provider reported (``details["retryable"]``: it was unavailable).
    """

    def complete(self, request: CompletionRequest) -> Completion: ...


def request_for(spec: PromptSpec, rendered: RenderedPrompt) -> CompletionRequest:
    """The call a rendered prompt makes to its provider.

    Examples
    --------
    >>> from flywheel.llm.prompts import parse_prompt, render
    >>> spec = parse_prompt({"name": "p", "description": "d", "owner": "o",
    ...     "provider": "local", "model_id": "local.stand-in", "template": "Hi {{ x }}",
    ...     "variables": {"x": {}}, "parameters": {"max_tokens": 9}})
    >>> request_for(spec, render(spec, {"x": "Bo"})).user
    'Hi Bo'
    """
    return CompletionRequest(
        model_id=spec.model_id,
        system=rendered.system,
        user=rendered.user,
        parameters=spec.parameters,
        output_schema=spec.output_schema if spec.structured_output else None,
        guardrail=spec.guardrail,
    )


class RetryPolicy(Frozen):
    """How throttled or unavailable calls are retried: ``max_attempts`` calls in all, the
    n-th wait uniform in ``[0, min(max_delay, base_delay * 2**n)]`` (full jitter), and no
    wait that would end past ``deadline_seconds`` after the first call started."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    base_delay_seconds: float = Field(default=0.2, gt=0, le=10)
    max_delay_seconds: float = Field(default=2.0, gt=0, le=60)
    deadline_seconds: float = Field(default=20.0, gt=0, le=900)


def _retryable(error: ProviderError) -> bool:
    return isinstance(error, ProviderThrottledError) or bool(error.details.get("retryable"))


class RetryingProvider:
    """A :class:`CompletionProvider` that retries another one by :class:`RetryPolicy`.

    The completion's ``attempts`` counts every call made; an error that is given up on
    carries ``details["attempts"]``.
    """

    def __init__(
        self,
        provider: CompletionProvider,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._uniform = uniform
        self._monotonic = monotonic

    def complete(self, request: CompletionRequest) -> Completion:
        policy = self.policy
        started = self._monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                completion = self._provider.complete(request)
            except ProviderError as error:
                delay = self._uniform(
                    0.0,
                    min(policy.max_delay_seconds, policy.base_delay_seconds * 2 ** (attempt - 1)),
                )
                late = self._monotonic() - started + delay > policy.deadline_seconds
                if not _retryable(error) or attempt >= policy.max_attempts or late:
                    error.details["attempts"] = attempt
                    raise
                self._sleep(delay)
                continue
            return completion.model_copy(update={"attempts": attempt})
