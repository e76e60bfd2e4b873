"""An OpenAI-compatible HTTP endpoint behind the provider port (``POST
{base_url}/chat/completions``), for teams that run their own model server.

Stdlib HTTP only (no client library); one timeout bounds connecting and reading. HTTP
429 is throttling, 408 and 504 a timeout, 500/502/503 retryable; other statuses are the
server refusing the call. The API key, when there is one, is sent as a bearer token and
never logged or put in an error.

Examples
--------
>>> provider = OpenAiCompatibleProvider("http://127.0.0.1:8000/v1")
>>> provider.url
'http://127.0.0.1:8000/v1/chat/completions'
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from flywheel.errors import (
    ConfigError,
    ProviderError,
    ProviderThrottledError,
    ProviderTimeoutError,
)
from flywheel.llm.providers import Completion, StopReason, Usage

if TYPE_CHECKING:
    from collections.abc import Callable

    from flywheel.llm.providers import CompletionRequest

__all__ = ["OpenAiCompatibleProvider"]

_FINISH = {
    "stop": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
    "content_filter": StopReason.CONTENT_FILTERED,
}
#: Answers larger than this are refused unread (an answer is text, not a download).
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class OpenAiCompatibleProvider:
    """:class:`~flywheel.llm.providers.CompletionProvider` on ``/chat/completions``.

    ``base_url`` ends where the OpenAI API's paths start (usually ``.../v1``);
    ``api_key`` is called for each request (``None``: no ``Authorization`` header).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Callable[[], str | None] | None = None,
        timeout_seconds: float = 60.0,
        opener: Callable[..., Any] = urllib.request.urlopen,
    ) -> None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(
                "openai_base_url: an http(s) URL, e.g. https://llm.example.com/v1",
                field="openai_base_url",
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._timeout = timeout_seconds
        self._open = opener

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        """The JSON body of ``request``."""
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": t.role, "content": t.text} for t in request.history)
        messages.append({"role": "user", "content": request.user})
        params = request.parameters
        body: dict[str, Any] = {
            "model": request.model_id,
            "messages": messages,
            "max_tokens": params.max_tokens,
        }
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop_sequences:
            body["stop"] = list(params.stop_sequences)
        if request.output_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.output_schema},
            }
        return body

    def complete(self, request: CompletionRequest) -> Completion:
        model = request.model_id
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._api_key() if self._api_key is not None else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        http_request = urllib.request.Request(
            self.url, data=json.dumps(self.body(request)).encode("utf-8"), headers=headers,
            method="POST",
        )  # fmt: skip
        started = time.perf_counter()
        try:
            with self._open(http_request, timeout=self._timeout) as answer:
                raw = answer.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as err:
            raise _status_error(err.code, model) from None
        except TimeoutError:
            raise ProviderTimeoutError(
                f"{model} did not answer in {self._timeout:g} s (OpenAI-compatible endpoint)",
                field="provider",
                details={"retryable": False},
            ) from None
        except (urllib.error.URLError, OSError) as err:
            if isinstance(getattr(err, "reason", None), TimeoutError):
                raise ProviderTimeoutError(
                    f"{model} did not answer in {self._timeout:g} s (OpenAI-compatible endpoint)",
                    field="provider",
                    details={"retryable": False},
                ) from None
            raise ProviderError(
                f"the OpenAI-compatible endpoint for {model} could not be reached",
                field="provider",
                details={"retryable": True},
            ) from None
        measured = (time.perf_counter() - started) * 1000
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ProviderError(
                f"the answer of {model} is larger than {MAX_RESPONSE_BYTES} bytes",
                field="provider",
            )
        return _completion(raw, model, measured)


def _status_error(status: int, model: str) -> ProviderError:
    where = "the OpenAI-compatible endpoint"
    if status == 429:
        return ProviderThrottledError(
            f"{where} throttled the call to {model}",
            field="provider",
            details={"status": status, "retryable": True},
        )
    if status in (408, 504):
        return ProviderTimeoutError(
            f"{where} timed out answering {model} (HTTP {status})",
            field="provider",
            details={"status": status, "retryable": False},
        )
    return ProviderError(
        f"{where} refused the call to {model} (HTTP {status})",
        field="provider",
        details={"status": status, "retryable": status in (500, 502, 503)},
    )


def _completion(raw: bytes, model: str, measured_ms: float) -> Completion:
    try:
        body = json.loads(raw)
        choice = body["choices"][0]
        text = choice["message"]["content"] or ""
        usage = body["usage"]
        counted = Usage(
            input_tokens=int(usage["prompt_tokens"]),
            output_tokens=int(usage["completion_tokens"]),
        )
        reason = _FINISH.get(str(choice.get("finish_reason")), StopReason.OTHER)
        if not isinstance(text, str):
            raise TypeError
    except (KeyError, IndexError, TypeError, ValueError):
        raise ProviderError(
            f"the answer of {model} is not a chat completion", field="provider"
        ) from None
    return Completion(
        text=text, stop_reason=reason, usage=counted, latency_ms=measured_ms, model_id=model
    )
