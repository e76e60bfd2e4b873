"""Captured LLM calls: one JSON line per call that reached the provider, written in
batches by :class:`~flywheel.serving.capture.CaptureWriter` (off the request path).

The request path hands over a :class:`CapturedCall` holding the raw texts; the writer's
thread applies the prompt's :class:`~flywheel.llm.policy.CapturePolicy` when it builds
the line (:func:`~flywheel.llm.policy.apply_capture`: ``full``, ``redact``, ``hash`` or
``none``, each text cut to ``max_bytes``), so nothing of the policy costs the caller
time, and only the policy's result is ever written.  Variables are captured as the text
they rendered as; the rendered prompt only as its SHA-256 (always).

Notes
-----
Objects are written to the features bucket under::

    llm-capture/prompt=<name>/version=<v>/dt=YYYY-MM-DD/hour=HH/<uuid>.jsonl.gz

A line (shadow calls are lines of the shadow version with ``variant: "shadow"`` and the
same ``request_id``)::

    {"request_id": "...", "timestamp": "2026-12-07T18:00:00.123Z", "prompt": "greet",
     "version": 2, "variant": "canary", "variables": {"who": "[REDACTED:email]"},
     "rendered_sha256": "...", "answer": "Hello", "output_valid": null,
     "usage": {"input_tokens": 12, "output_tokens": 2}, "cost": "0.000016",
     "latency_ms": 412.3, "provider_latency_ms": 410.9, "attempts": 1, "repaired": false,
     "status": 200, "error": null,
     "_capture": {"mode": "redact", "redactions": 1, "truncated": []}}

A call a guardrail blocked also has ``"guardrail": {"stage": "input"|"output", "action":
"blocked", "evaluator": "toxicity", "score": 0.97}`` (absent otherwise); its ``answer`` is
the provider's original answer (``null`` for a blocked input: the provider was not
called), under the capture policy like any answer, never the message the caller got.

Examples
--------
>>> from flywheel.adapters.memory_capture import InMemoryCaptureSink
>>> from flywheel.serving.capture import CaptureWriter, read_capture
>>> sink = InMemoryCaptureSink()
>>> writer = CaptureWriter(sink, prefix="llm-capture/", key=llm_capture_key, background=False)
>>> writer.submit(CapturedCall.example())
True
>>> _ = writer.flush()
>>> [key.split("/")[1:3] for key in sink.objects]
[['prompt=greet', 'version=2']]
>>> row = read_capture(sink, "llm-capture/")[0]
>>> row["variables"], row["_capture"]["redactions"]
({'who': 'write to [REDACTED:email]'}, 1)
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flywheel.llm.policy import CaptureMode, CapturePolicy, apply_capture
from flywheel.llm.prompts import Variable

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_LLM_CAPTURE_PREFIX", "CapturedCall", "llm_capture_key"]

DEFAULT_LLM_CAPTURE_PREFIX = "llm-capture/"
_DUMPS = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode


def llm_capture_key(
    prompt: str, version: int, timestamp: float, *, prefix: str = DEFAULT_LLM_CAPTURE_PREFIX
) -> str:
    """The object key for calls of ``prompt``/``version`` captured at ``timestamp`` (UTC).

    Examples
    --------
    >>> llm_capture_key("greet", 2, 1_700_000_000.0).rsplit("/", 1)[0]
    'llm-capture/prompt=greet/version=2/dt=2023-11-14/hour=22'
    """
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return (
        f"{prefix}prompt={prompt}/version={version}/dt={when:%Y-%m-%d}/hour={when:%H}/"
        f"{uuid.uuid4().hex}.jsonl.gz"
    )


@dataclass(slots=True)
class CapturedCall:
    """One call as the gateway hands it over (the capture policy is applied later)."""

    request_id: str
    timestamp: float
    prompt: str
    version: int
    variant: str
    policy: CapturePolicy
    variables: Mapping[str, object]
    rendered_sha256: str | None
    answer: str | None
    #: Whether the answer matched the output schema (``None``: the version has none).
    output_valid: bool | None
    input_tokens: int
    output_tokens: int
    cost: Decimal
    latency_ms: float
    provider_latency_ms: float
    attempts: int
    repaired: bool
    status: int
    error: str | None = None
    #: What a guardrail did (``GuardrailOutcome`` as JSON); ``None``: nothing blocked.
    guardrail: Mapping[str, object] | None = None

    # -- what CaptureWriter needs (flywheel.serving.capture.Capturable) ---------------------
    @property
    def model(self) -> str:
        """The partition's name: the prompt."""
        return self.prompt

    @property
    def row_count(self) -> int:
        return 1

    def lines(self) -> list[str]:
        """The call as one compact JSON line (runs on the writer's thread)."""
        return [_DUMPS(self.row())]

    def row(self) -> dict[str, Any]:
        """The call as stored: texts as :attr:`policy` lets them be.

        Examples
        --------
        >>> policy = CapturePolicy(mode="hash")
        >>> row = CapturedCall.example(policy=policy).row()
        >>> row["answer"][:7], row["variables"]["who"][:7], row["_capture"]["mode"]
        ('sha256:', 'sha256:', 'hash')
        """
        fields = {f"variables.{k}": Variable.text(v) for k, v in self.variables.items()}
        if self.answer is not None:
            fields["answer"] = self.answer
        stored = apply_capture(self.policy, fields)
        applied: dict[str, Any] = dict(stored.pop("_capture"))  # type: ignore[call-overload]
        applied["truncated"] = [name.removeprefix("variables.") for name in applied["truncated"]]
        variables = (
            None
            if self.policy.mode is CaptureMode.NONE
            else {k: stored[f"variables.{k}"] for k in self.variables}
        )
        stamp = datetime.fromtimestamp(self.timestamp, tz=UTC)
        row: dict[str, Any] = {
            "request_id": self.request_id,
            "timestamp": f"{stamp:%Y-%m-%dT%H:%M:%S}.{stamp.microsecond // 1000:03d}Z",
            "prompt": self.prompt,
            "version": self.version,
            "variant": self.variant,
            "variables": variables,
            "rendered_sha256": self.rendered_sha256,
            "answer": stored.get("answer"),
            "output_valid": self.output_valid,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            "cost": format(self.cost, "f"),
            "latency_ms": round(self.latency_ms, 3),
            "provider_latency_ms": round(self.provider_latency_ms, 3),
            "attempts": self.attempts,
            "repaired": self.repaired,
            "status": self.status,
            "error": self.error,
            "_capture": applied,
        }
        if self.guardrail is not None:
            row["guardrail"] = dict(self.guardrail)
        return row

    @classmethod
    def example(cls, policy: CapturePolicy | None = None) -> CapturedCall:
        """A small call for documentation and tests."""
        return cls(
            request_id="req-1",
            timestamp=1_700_000_000.0,
            prompt="greet",
            version=2,
            variant="canary",
            policy=policy or CapturePolicy(),
            variables={"who": "write to ana@example.com"},
            rendered_sha256="0" * 64,
            answer="Hello",
            output_valid=None,
            input_tokens=12,
            output_tokens=2,
            cost=Decimal("0.000016"),
            latency_ms=412.3,
            provider_latency_ms=410.9,
            attempts=1,
            repaired=False,
            status=200,
        )
