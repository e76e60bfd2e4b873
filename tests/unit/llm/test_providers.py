"""The provider port's retries: throttled and unavailable calls only, bounded, with full
jitter, within a deadline, every attempt counted."""

from __future__ import annotations

import pytest

from flywheel.errors import ProviderError, ProviderThrottledError, ProviderTimeoutError
from flywheel.llm.prompts import InferenceParameters, render
from flywheel.llm.providers import (
    Completion,
    CompletionRequest,
    RetryingProvider,
    RetryPolicy,
    StopReason,
    Usage,
    request_for,
)
from tests.factories import prompt_spec

REQUEST = CompletionRequest(model_id="m", user="hi", parameters=InferenceParameters(max_tokens=5))
ANSWER = Completion(
    text="ok",
    stop_reason=StopReason.END_TURN,
    usage=Usage(input_tokens=1, output_tokens=1),
    latency_ms=3,
    model_id="m",
)


class Scripted:
    """A provider that fails as scripted, then answers."""

    def __init__(self, *failures: ProviderError) -> None:
        self.failures = list(failures)
        self.calls = 0

    def complete(self, request: CompletionRequest) -> Completion:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return ANSWER


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.bounds: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def uniform(self, low: float, high: float) -> float:
        self.bounds.append(high)
        return high  # the longest wait full jitter may choose

    def monotonic(self) -> float:
        return self.now


def _retrying(provider: Scripted, clock: Clock, **policy: float) -> RetryingProvider:
    return RetryingProvider(
        provider,
        RetryPolicy(**policy),
        sleep=clock.sleep,
        uniform=clock.uniform,
        monotonic=clock.monotonic,
    )


def _throttled() -> ProviderThrottledError:
    return ProviderThrottledError("slow down", details={"retryable": True})


def test_throttled_calls_are_retried_with_growing_jittered_waits_and_counted() -> None:
    clock = Clock()
    provider = Scripted(_throttled(), _throttled())

    answer = _retrying(provider, clock, max_attempts=3).complete(REQUEST)

    assert answer.attempts == 3
    assert provider.calls == 3
    assert clock.bounds == [0.2, 0.4]  # base * 2**n, the ceiling of each full-jitter draw
    assert clock.slept == [0.2, 0.4]


def test_waits_never_exceed_the_maximum_delay() -> None:
    clock = Clock()
    provider = Scripted(*[_throttled() for _ in range(5)])

    _retrying(provider, clock, max_attempts=6, max_delay_seconds=0.5).complete(REQUEST)

    assert max(clock.slept) == 0.5
    assert clock.bounds == [0.2, 0.4, 0.5, 0.5, 0.5]


def test_retries_stop_after_max_attempts_and_the_error_says_how_many() -> None:
    clock = Clock()
    provider = Scripted(*[_throttled() for _ in range(5)])

    with pytest.raises(ProviderThrottledError) as caught:
        _retrying(provider, clock, max_attempts=3).complete(REQUEST)

    assert provider.calls == 3
    assert caught.value.details["attempts"] == 3


def test_an_unavailable_provider_is_retried_but_a_refusal_or_timeout_is_not() -> None:
    unavailable = ProviderError("503", details={"retryable": True})
    assert _retrying(Scripted(unavailable), Clock()).complete(REQUEST).attempts == 2

    for error in (ProviderError("bad request", details={"retryable": False}),
                  ProviderTimeoutError("slow", details={"retryable": False})):  # fmt: skip
        provider = Scripted(error)
        with pytest.raises(type(error)):
            _retrying(provider, Clock()).complete(REQUEST)
        assert provider.calls == 1


def test_no_wait_runs_past_the_deadline() -> None:
    clock = Clock()
    provider = Scripted(*[_throttled() for _ in range(5)])

    with pytest.raises(ProviderThrottledError) as caught:
        _retrying(provider, clock, max_attempts=10, deadline_seconds=0.5).complete(REQUEST)

    assert clock.slept == [0.2]  # the next wait (0.4) would end at 0.6 s
    assert caught.value.details["attempts"] == 2


def test_a_rendered_prompt_asks_for_json_natively_only_when_the_spec_says_so() -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string"}}}
    plain = prompt_spec(output_schema=schema)
    native = prompt_spec(output_schema=schema, structured_output=True)
    values = {"customer": "c", "ticket": "t"}

    assert request_for(plain, render(plain, values)).output_schema is None
    assert request_for(native, render(native, values)).output_schema == schema
    assert request_for(plain, render(plain, values)).parameters.max_tokens == 64
