"""The provider adapters against the protocols they speak: Bedrock's Converse through
boto3 (moto, answered by the local stand-in), and an OpenAI-compatible HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from flywheel.adapters.bedrock import BedrockProvider
from flywheel.adapters.local_llm import LocalConverse
from flywheel.adapters.openai_http import OpenAiCompatibleProvider
from flywheel.composition.clients import SERVICE_CONFIGS
from flywheel.errors import (
    ConfigError,
    ProviderError,
    ProviderThrottledError,
    ProviderTimeoutError,
)
from flywheel.llm.prompts import Guardrail, InferenceParameters, render
from flywheel.llm.providers import (
    CompletionRequest,
    RetryingProvider,
    RetryPolicy,
    StopReason,
    Turn,
    request_for,
)
from flywheel.local.bedrock import install_converse, uninstall_converse
from tests.factories import prompt_spec

SCHEMA = {"type": "object", "required": ["s"], "properties": {"s": {"type": "string"}}}
REQUEST = CompletionRequest(
    model_id="anthropic.claude-3-haiku-20240307-v1:0",
    system="Be brief.",
    user="The login page answers 500 since the deploy.",
    history=(Turn(role="user", text="Hello"), Turn(role="assistant", text="Hi, how can I help?")),
    parameters=InferenceParameters(max_tokens=6, temperature=0.1, top_p=0.9),
    guardrail=Guardrail(id="gr1", version="2"),
)


@pytest.fixture
def stand_in(moto_aws: None) -> Iterator[LocalConverse]:
    engine = LocalConverse()
    install_converse(engine)
    yield engine
    uninstall_converse()


def _bedrock() -> BedrockProvider:
    """The adapter on a client made as the composition root makes it."""
    config = SERVICE_CONFIGS["bedrock-runtime"]
    return BedrockProvider(client=boto3.client("bedrock-runtime", config=config))


def test_bedrock_converse_round_trips_through_boto3(stand_in: LocalConverse) -> None:
    answer = _bedrock().complete(REQUEST)

    sent = stand_in.requests[-1]
    assert sent["modelId"] == REQUEST.model_id
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["system"] == [{"text": "Be brief."}]
    assert sent["inferenceConfig"] == {"maxTokens": 6, "temperature": 0.1, "topP": 0.9}
    assert sent["guardrailConfig"] == {
        "guardrailIdentifier": "gr1",
        "guardrailVersion": "2",
        "trace": "disabled",
    }
    assert (answer.text, answer.stop_reason) == ("The login page answers 500 since", "max_tokens")
    assert answer.usage.output_tokens == 6
    assert answer.model_id == REQUEST.model_id


def test_bedrock_structured_output_asks_with_output_config(stand_in: LocalConverse) -> None:
    spec = prompt_spec(output_schema=SCHEMA, structured_output=True)
    request = request_for(spec, render(spec, {"customer": "c", "ticket": "export broken"}))

    answer = _bedrock().complete(request)

    schema = stand_in.requests[-1]["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert json.loads(schema["schema"]) == SCHEMA
    value = json.loads(answer.text)
    assert list(value) == ["s"]
    assert value["s"] in "export broken"


@pytest.mark.parametrize(
    ("code", "error", "retryable"),
    [
        ("ThrottlingException", ProviderThrottledError, True),
        ("ModelTimeoutException", ProviderTimeoutError, False),
        ("ServiceUnavailableException", ProviderError, True),
        ("ModelErrorException", ProviderError, False),
        ("ValidationException", ProviderError, False),
    ],
)
def test_bedrock_errors_become_typed_errors_without_the_providers_text(
    stand_in: LocalConverse, code: str, error: type[ProviderError], retryable: bool
) -> None:
    stand_in.inject(code)

    with pytest.raises(error) as caught:
        _bedrock().complete(REQUEST)

    assert caught.value.details == {"provider_code": code, "retryable": retryable}
    assert "injected" not in str(caught.value)


def test_bedrock_throttling_is_retried_by_the_port_not_by_botocore(
    stand_in: LocalConverse,
) -> None:
    stand_in.inject("ThrottlingException", "ThrottlingException")
    provider = RetryingProvider(_bedrock(), RetryPolicy(max_attempts=3), sleep=lambda _: None)

    answer = provider.complete(REQUEST)

    assert answer.attempts == 3
    assert len(stand_in.requests) == 3  # one call per attempt: botocore retried nothing


def test_bedrock_timeouts_and_connection_failures_are_typed() -> None:
    class Client:
        def __init__(self, error: Exception) -> None:
            self.error = error

        def converse(self, **_: Any) -> Any:
            raise self.error

    with pytest.raises(ProviderTimeoutError, match="did not answer"):
        BedrockProvider(client=Client(ReadTimeoutError(endpoint_url="https://b"))).complete(REQUEST)
    with pytest.raises(ProviderError, match="could not be reached") as caught:
        BedrockProvider(client=Client(EndpointConnectionError(endpoint_url="https://b"))).complete(
            REQUEST
        )
    assert caught.value.details["retryable"] is True


# -- OpenAI-compatible ---------------------------------------------------------------------------
class Server:
    """A scripted /v1/chat/completions: each request gets the next (status, body, delay)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, Any, float]] = []
        self.seen: list[tuple[dict[str, str], dict[str, Any]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                owner.seen.append((dict(self.headers), json.loads(self.rfile.read(length))))
                status, body, delay = owner.script.pop(0)
                time.sleep(delay)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    found = Server()
    yield found
    found.http.shutdown()
    found.http.server_close()


def _answer(text: str = "It is down.", finish: str = "stop") -> dict[str, Any]:
    return {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25},
    }


def test_openai_compatible_sends_the_chat_and_reads_the_answer(server: Server) -> None:
    server.script.append((200, _answer(finish="length"), 0))
    spec = prompt_spec(
        provider="openai_compatible",
        model_id="gpt-4o-mini",
        output_schema=SCHEMA,
        structured_output=True,
        parameters={"max_tokens": 9, "temperature": 0.3, "stop_sequences": ["END"]},
    )
    request = request_for(spec, render(spec, {"customer": "c", "ticket": "t"}))
    provider = OpenAiCompatibleProvider(server.url, api_key=lambda: "sk-test")

    answer = provider.complete(request)

    headers, body = server.seen[-1]
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "gpt-4o-mini"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == "Customer c wrote:\n\nt"
    assert (body["max_tokens"], body["temperature"], body["stop"]) == (9, 0.3, ["END"])
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert (answer.text, answer.stop_reason) == ("It is down.", StopReason.MAX_TOKENS)
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (21, 4)


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (429, ProviderThrottledError, True),
        (503, ProviderError, True),
        (504, ProviderTimeoutError, False),
        (400, ProviderError, False),
        (401, ProviderError, False),
    ],
)
def test_openai_compatible_statuses_become_typed_errors(
    server: Server, status: int, error: type[ProviderError], retryable: bool
) -> None:
    server.script.append((status, {"error": {"message": "secret details"}}, 0))

    with pytest.raises(error) as caught:
        OpenAiCompatibleProvider(server.url).complete(REQUEST)

    assert caught.value.details["retryable"] is retryable
    assert "secret details" not in str(caught.value)
    assert "Authorization" not in server.seen[-1][0]  # no key configured: none sent


def test_openai_compatible_timeout_and_unreadable_answers(server: Server) -> None:
    server.script.extend([(200, _answer(), 1.0), (200, b"<html>", 0), (200, {"choices": []}, 0)])
    slow = OpenAiCompatibleProvider(server.url, timeout_seconds=0.2)

    with pytest.raises(ProviderTimeoutError, match=r"did not answer in 0\.2 s"):
        slow.complete(REQUEST)
    time.sleep(1.0)  # let the slow answer go
    for _ in range(2):
        with pytest.raises(ProviderError, match="not a chat completion"):
            OpenAiCompatibleProvider(server.url).complete(REQUEST)


def test_openai_compatible_unreachable_and_misconfigured() -> None:
    with pytest.raises(ProviderError, match="could not be reached") as caught:
        OpenAiCompatibleProvider("http://127.0.0.1:9/v1", timeout_seconds=1).complete(REQUEST)
    assert caught.value.details["retryable"] is True
    with pytest.raises(ConfigError, match="openai_base_url"):
        OpenAiCompatibleProvider("ftp://models.example.com")
