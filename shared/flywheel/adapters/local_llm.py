"""The local stand-in: a deterministic program that answers Bedrock Converse requests.

It is not a model. It echoes the start of the last user message's last paragraph (or,
when the request asks for JSON by a schema, builds a JSON value of that schema from its
words), counts tokens as words and punctuation, and honours ``maxTokens`` and
``stopSequences`` with Converse's stop reasons. The same request always gets the same
answer. Faults are injected per call (:meth:`LocalConverse.inject`): Converse error
codes, ``latency=<ms>``, ``guardrail``, ``toxic`` (an abusive answer, for the quality
monitor to catch) and ``inconsistent`` (a sampled answer that contradicts the others, for
the self-consistency check to catch). The local runtime routes Bedrock's
``Converse`` to it (moto has no Converse); :class:`LocalProvider` calls it in process.
What is real around it is the governance: registry, approvals, audit, prices.

Examples
--------
>>> engine = LocalConverse()
>>> answer = engine.converse({"modelId": "m", "inferenceConfig": {"maxTokens": 3},
...     "messages": [{"role": "user", "content": [{"text": "one two three four"}]}]})
>>> answer["output"]["message"]["content"][0]["text"], answer["stopReason"]
('one two three', 'max_tokens')
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from flywheel.adapters.converse import completion_from, converse_request, error_for
from flywheel.llm.prompts import JSON_INSTRUCTION

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from flywheel.llm.providers import Completion, CompletionRequest

__all__ = ["ConverseError", "LocalConverse", "LocalProvider", "count_tokens"]

#: The stand-in's tokens: runs of word characters, and each other non-space character.
TOKEN = re.compile(r"\w+|[^\w\s]")
#: HTTP status of each Converse error code (what Bedrock answers with).
ERROR_STATUS = {
    "ThrottlingException": 429,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelNotReadyException": 429,
    "ValidationException": 400,
}
#: Words of the user message the plain answer echoes at most.
ECHO_WORDS = 48
GUARDRAIL_TEXT = "The stand-in's guardrail blocked this answer."
#: What the ``toxic`` fault answers (JSON answers are built from its words).
TOXIC_TEXT = (
    "Stop whining, you pathetic moron. Nobody cares about your stupid problem, so shut up "
    "and stop wasting our time."
)


class ConverseError(Exception):
    """A Converse error, as Bedrock would answer it: ``code`` and HTTP ``status``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = ERROR_STATUS.get(code, 400)
        self.message = message


def count_tokens(text: str) -> int:
    """The stand-in's token count of ``text``.

    Examples
    --------
    >>> count_tokens("Hello, world!")
    4
    """
    return len(TOKEN.findall(text))


class LocalConverse:
    """The stand-in: :meth:`converse` takes and returns Converse's request and response
    dicts; thread-safe. ``sleep`` is what injected latency waits with."""

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sleep = sleep
        self._faults: deque[tuple[str, str | None]] = deque()
        self._lock = threading.Lock()
        #: Inconsistent answers given so far per request digest (the next sample index).
        self._sampled: dict[int, int] = {}
        #: Requests answered or refused, oldest first (the last 100).
        self.requests: deque[dict[str, Any]] = deque(maxlen=100)

    def inject(self, *faults: str) -> None:
        """Queue faults, one per coming call: a Converse error code (e.g.
        ``ThrottlingException``), ``latency=<ms>`` (then answer), ``guardrail`` or
        ``toxic`` (answer :data:`TOXIC_TEXT` instead), or ``inconsistent``.

        ``inconsistent`` waits for a *sampled* call (``temperature`` above 0) and makes
        its answer contradict the plain one (numbers changed, or sentences negated),
        seeded by the request and its sample index, so samples differ from each other and
        the same request and index always get the same answer.

        ``<fault>@<model id>`` waits for the next call to that model and leaves other
        models' calls alone (a canary on another model can fail while the champion
        answers).

        Examples
        --------
        >>> stand_in = LocalConverse()
        >>> stand_in.inject("ModelErrorException@amazon.nova-lite-v1:0")
        >>> stand_in.pending()
        ['ModelErrorException@amazon.nova-lite-v1:0']
        """
        parsed: list[tuple[str, str | None]] = []
        for fault in faults:
            code, _, model = fault.partition("@")
            if code not in ERROR_STATUS and code not in _ANSWERS and not _latency(code):
                raise ValueError(f"unknown fault {fault!r}")
            parsed.append((code, model or None))
        with self._lock:
            self._faults.extend(parsed)

    def pending(self) -> list[str]:
        """The faults not yet used, in order."""
        with self._lock:
            return [code + (f"@{model}" if model else "") for code, model in self._faults]

    def _take_fault(self, model_id: object, sampled: bool) -> str | None:
        for i, (code, model) in enumerate(self._faults):
            if code == INCONSISTENT and not sampled:
                continue
            if model is None or model == model_id:
                del self._faults[i]
                return code
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._sampled.clear()

    def converse(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one Converse request.

        Raises
        ------
        ConverseError
            ``ValidationException`` for a request Bedrock would refuse, or the injected code.
        """
        started = time.perf_counter()
        sampled = _sampled(request)
        with self._lock:
            fault = self._take_fault(request.get("modelId"), sampled)
            self.requests.append(dict(request))
            index = 0
            if fault == INCONSISTENT:
                key = _seed(request)
                index = self._sampled.get(key, 0)
                self._sampled[key] = index + 1
        system, turns, config = _validated(request)
        if fault in ERROR_STATUS:
            raise ConverseError(str(fault), f"injected {fault}")
        delay = _latency(fault or "")
        if delay:
            self._sleep(delay / 1000)
        user = _last_paragraph(turns[-1])
        if fault == INCONSISTENT:
            user = contradict(user, _seed(request), index)
        schema = _requested_schema(request, system)
        if fault == "guardrail":
            text, reason = GUARDRAIL_TEXT, "guardrail_intervened"
        elif schema is not None:
            seed = _seed(request)
            words = TOKEN.findall(TOXIC_TEXT if fault == "toxic" else user)
            text, reason = json.dumps(_instance(schema, words, seed, 0)), "end_turn"
        elif fault == "toxic":
            text, reason = TOXIC_TEXT, "end_turn"
        else:
            words = user.split()
            text, reason = " ".join(words[:ECHO_WORDS]), "end_turn"
        text, reason = _stop(text, reason, config)
        input_tokens = count_tokens(system) + sum(count_tokens(t) for t in turns)
        output_tokens = count_tokens(text)
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": reason,
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": round((time.perf_counter() - started) * 1000)},
        }


#: The fault that makes a sampled answer contradict the others.
INCONSISTENT = "inconsistent"
#: Faults that change the answer rather than fail the call.
_ANSWERS = frozenset({"guardrail", "toxic", INCONSISTENT})
_DIGITS = re.compile(r"\d+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sampled(request: Mapping[str, Any]) -> bool:
    """Whether the request asks for sampling (a temperature above 0)."""
    config = request.get("inferenceConfig")
    temperature = config.get("temperature") if isinstance(config, dict) else None
    return isinstance(temperature, int | float) and temperature > 0


def contradict(text: str, seed: int, index: int) -> str:
    """``text`` made to disagree with itself (the ``inconsistent`` fault): each number
    raised by 1 to 9, by how much decided by ``seed`` and the sample ``index`` (so two
    samples differ from each other too); with no number, each sentence negated.

    Examples
    --------
    >>> contradict("Refunds take 5 days, up to 10 for cards.", seed=0, index=0)
    'Refunds take 6 days, up to 12 for cards.'
    >>> contradict("Refunds take 5 days, up to 10 for cards.", seed=0, index=1)
    'Refunds take 7 days, up to 13 for cards.'
    >>> contradict("Exports time out. Imports work.", seed=0, index=0)
    'It is not true that exports time out. It is not true that imports work.'
    """
    if _DIGITS.search(text):
        shifts = iter(range(len(text)))
        return _DIGITS.sub(
            lambda m: str(int(m.group(0)) + 1 + (seed + index + next(shifts)) % 9), text
        )
    return " ".join(
        f"It is not true that {s[:1].lower()}{s[1:]}"
        for s in _SENTENCE_END.split(text.strip())
        if s
    )


def _last_paragraph(text: str) -> str:
    """The last block of ``text`` after a blank line (where a template puts its input)."""
    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    return blocks[-1] if blocks else text


def _latency(fault: str) -> int | None:
    if fault.startswith("latency=") and fault.removeprefix("latency=").isdigit():
        return int(fault.removeprefix("latency="))
    return None


def _invalid(message: str) -> ConverseError:
    return ConverseError("ValidationException", message)


def _validated(request: Mapping[str, Any]) -> tuple[str, list[str], dict[str, Any]]:
    """System text, message texts and inference config, checked as Converse checks them."""
    if not isinstance(request.get("modelId"), str) or not request["modelId"]:
        raise _invalid("modelId is required")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages must hold at least one message")
    texts: list[str] = []
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if not isinstance(message, dict) or message.get("role") != expected:
            raise _invalid(f"messages[{i}]: roles alternate, starting with user")
        blocks = message.get("content")
        if not isinstance(blocks, list) or not blocks:
            raise _invalid(f"messages[{i}].content must hold at least one block")
        text = "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
        if not text.strip():
            raise _invalid(f"messages[{i}] has no text")
        texts.append(text)
    if messages[-1]["role"] != "user":
        raise _invalid("the last message is the user's")
    config = request.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise _invalid("inferenceConfig must be an object")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _invalid("inferenceConfig.maxTokens must be at least 1")
    for key in ("temperature", "topP"):
        value = config.get(key)
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise _invalid(f"inferenceConfig.{key} must be between 0 and 1")
    stops = config.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _invalid("inferenceConfig.stopSequences must hold non-empty strings")
    system = "".join(
        str(b.get("text", "")) for b in request.get("system") or [] if isinstance(b, dict)
    )
    return system, texts, config


def _requested_schema(request: Mapping[str, Any], system: str) -> dict[str, Any] | None:
    """The JSON Schema the request asks the answer to follow: ``outputConfig``'s, else the
    one the system prompt gives after :data:`~flywheel.llm.prompts.JSON_INSTRUCTION`."""
    text_format = ((request.get("outputConfig") or {}).get("textFormat")) or {}
    text = ((text_format.get("structure") or {}).get("jsonSchema") or {}).get("schema")
    if text is None and JSON_INSTRUCTION in system:
        text = system.rsplit(JSON_INSTRUCTION, 1)[1].strip()
    if text is None:
        return None
    try:
        schema = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        raise _invalid("the JSON schema is not valid JSON") from None
    return schema if isinstance(schema, dict) else {}


def _seed(request: Mapping[str, Any]) -> int:
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode("utf-8"))
    return int.from_bytes(digest.digest()[:8], "big")


def _instance(schema: Mapping[str, Any], words: list[str], seed: int, depth: int) -> Any:
    """A JSON value of ``schema`` (``type``, ``properties``, ``items``, ``enum``,
    ``const``, ``minItems``, ``minimum``, ``maxLength``), made from ``words``."""
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        options = schema["enum"]
        return options[seed % len(options)]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if depth > 8:
        return None
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            key: _instance(sub, words, seed + i, depth + 1)
            for i, (key, sub) in enumerate(properties.items())
            if isinstance(sub, dict)
        }
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        found = schema.get("items")
        items: Mapping[str, Any] = found if isinstance(found, dict) else {}
        return [_instance(items, words, seed + i, depth + 1) for i in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", seed % 10))
    if kind == "number":
        return float(schema.get("minimum", (seed % 100) / 10))
    if kind == "boolean":
        return seed % 2 == 0
    if kind == "null":
        return None
    start = seed % max(1, len(words))
    text = " ".join(words[start : start + 12]) or "stand-in"
    limit = schema.get("maxLength")
    return text[: int(limit)] if isinstance(limit, int) and limit > 0 else text


def _stop(text: str, reason: str, config: Mapping[str, Any]) -> tuple[str, str]:
    """``text`` cut at the first stop sequence, then at ``maxTokens`` tokens."""
    cuts = [text.find(s) for s in config.get("stopSequences") or [] if s in text]
    if cuts:
        text, reason = text[: min(cuts)], "stop_sequence"
    max_tokens = config.get("maxTokens")
    if isinstance(max_tokens, int):
        tokens = list(TOKEN.finditer(text))
        if len(tokens) > max_tokens:
            text, reason = text[: tokens[max_tokens - 1].end()], "max_tokens"
    return text, reason


class LocalProvider:
    """The stand-in behind the provider port, in process (tests, the in-memory platform).

    Examples
    --------
    >>> from flywheel.llm.prompts import InferenceParameters
    >>> from flywheel.llm.providers import CompletionRequest
    >>> LocalProvider().complete(CompletionRequest(
    ...     model_id="local.stand-in", user="Hello there",
    ...     parameters=InferenceParameters(max_tokens=10))).text
    'Hello there'
    """

    def __init__(self, engine: LocalConverse | None = None) -> None:
        self.engine = engine or LocalConverse()

    def complete(self, request: CompletionRequest) -> Completion:
        started = time.perf_counter()
        try:
            response = self.engine.converse(converse_request(request))
        except ConverseError as err:
            raise error_for(err.code, model_id=request.model_id,
                            provider="the local stand-in") from None  # fmt: skip
        return completion_from(
            response,
            model_id=request.model_id,
            measured_ms=(time.perf_counter() - started) * 1000,
        )
