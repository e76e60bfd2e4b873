"""What the LLM gateway measures (the port): one report per call.

Every call of a known prompt is reported with its prompt and the variant that answered
(CloudWatch dimensions ``[Prompt, Variant]``, namespace ``Flywheel/<stage>``, the one
the inference functions use), so a canary's error rate, latency and cost per call are
compared with the champion's.

Notes
-----
======================  ============  ====================================================
metric                  unit          meaning
======================  ============  ====================================================
``Calls``               Count         1 per call answered (2xx, 4xx or 5xx) once the
                                      prompt and variant are known: the alarms' denominator
``Errors``              Count         1 for a 5xx answer (provider error, timeout, invalid
                                      output after the repair), else 0
``Latency``             Milliseconds  the whole call, provider included
``ProviderLatency``     Milliseconds  time spent waiting for the provider (retries and
                                      the repair call included); only when it was called
``InputTokens``         Count         tokens the provider counted; only when it was called
``OutputTokens``        Count         idem
``Cost``                None          exact cost settled (price-table currency); 0 when
                                      nothing was charged
``BudgetRefusals``      Count         1 for a 429 from a budget, else 0
``RepairRetries``       Count         1 when the output schema's repair retry was made
``CaptureFailures``     Count         captured calls lost since the previous report
``SettleFailures``      Count         settlements the ledger refused (the reservation
                                      stays charged: spend is over-, never under-counted)
``ShadowSkipped``       Count         shadow calls skipped (queue full, budget, variables)
``GuardrailBlocked``    Count         1 when a guardrail blocked the input or the answer,
                                      else 0; only for prompts with guardrails
``GuardrailFailures``   Count         guardrail judges that failed and were let through
                                      (``on_error: allow``); only when there were any
======================  ============  ====================================================

Examples
--------
>>> report = CallReport(prompt="greet", version=2, variant="canary", status=502,
...                     code="provider_error", latency_ms=812.0)
>>> report.errors, report.budget_refusals
(1, 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

__all__ = ["CallReport", "GatewayMetrics"]


@dataclass(frozen=True, slots=True)
class CallReport:
    """One call's outcome and measures."""

    prompt: str
    version: int
    variant: str
    #: The HTTP status answered.
    status: int
    #: The error code of a non-2xx answer.
    code: str | None = None
    latency_ms: float = 0.0
    provider_called: bool = False
    provider_latency_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)
    repair_retries: int = 0
    capture_lost: int = 0
    settle_failures: int = 0
    #: Whether the prompt has guardrails (``GuardrailBlocked`` is reported, 0 or 1).
    guarded: bool = False
    #: The stage of the guardrail that blocked the call (``input``/``output``), if any.
    guardrail_stage: str | None = None
    guardrail_failures: int = 0

    @property
    def errors(self) -> int:
        return 1 if self.status >= 500 else 0

    @property
    def guardrail_blocked(self) -> int:
        return 1 if self.guardrail_stage is not None else 0

    @property
    def budget_refusals(self) -> int:
        return 1 if self.code == "budget_exceeded" else 0


class GatewayMetrics(Protocol):
    """Where the gateway reports (the port): CloudWatch EMF, or memory in tests."""

    def call_finished(self, report: CallReport) -> None:
        """A call was answered (also from the shadow's background threads)."""
        ...

    def shadow_skipped(self, prompt: str, version: int, reason: str) -> None:
        """A shadow call was not made: ``queue_full``, ``budget`` or ``variables``."""
        ...
