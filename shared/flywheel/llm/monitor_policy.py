"""What the production quality monitor does with a prompt (``llm.prompts.<name>.monitor``).

The scheduled monitor (:mod:`flywheel.monitoring.llm_monitor`, ADR 82) scores a seeded
sample of each serving version's captured calls with the evaluators and judges the
window's rates against these limits. Every limit is optional; a verdict needs at least
``min_scored`` scored calls. The daily budget caps what scoring may cost a prompt per
UTC day: the calls scored, and the money paid evaluators (Bedrock Guardrails, a judge
prompt) charge; embedded evaluators cost nothing.

Examples
--------
>>> policy = PromptMonitorPolicy.model_validate(
...     {"sample_rate": 0.2, "toxicity_rate_max": 0.02, "budget": {"max_calls": 500}})
>>> policy.sample_rate, policy.budget.max_calls, policy.rollback_canary
(0.2, 500, True)
>>> sampled(policy.seed, "req-1", 1.0), sampled(policy.seed, "req-1", 0.0)
(True, False)
>>> PromptMonitorPolicy.model_validate({"sample_rate": 0})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for PromptMonitorPolicy
...
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from pydantic import Field, field_validator

from flywheel.llm.prompts import Guardrail
from flywheel.models import Frozen

__all__ = ["EVALUATED", "MonitorBudget", "PromptMonitorPolicy", "sampled"]

#: The evaluators whose figures the monitor judges, and the metric each becomes.
EVALUATED = ("toxicity", "groundedness", "relevance", "format")
_SHARE = Field(default=None, ge=0, le=1)


class MonitorBudget(Frozen):
    """What scoring one prompt may use per UTC day (all its versions together)."""

    #: Calls scored a day at most (the sample is cut, not the window's rows).
    max_calls: int = Field(default=2000, ge=1, le=1_000_000)
    #: What paid evaluators may cost a day, USD (``None``: no money limit).
    max_usd: Decimal | None = Field(default=None, gt=0, le=Decimal("1e6"))


class PromptMonitorPolicy(Frozen):
    """One prompt's production monitor: sampling, budget, limits, cooldown, rollback."""

    #: Share of the window's captured calls scored (each call drawn by its request id).
    sample_rate: float = Field(default=0.1, gt=0, le=1)
    #: Seed of the draw: a rerun over the same window scores the same calls.
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    #: Hours of captured calls each run reads (the current hour and the ones before).
    window_hours: int = Field(default=1, ge=1, le=48)
    budget: MonitorBudget = MonitorBudget()
    #: Share of scored answers whose toxicity verdict fails, at most.
    toxicity_rate_max: float | None = Field(default=0.05, ge=0, le=1)
    #: Mean groundedness of the answers that had a context, at least.
    groundedness_min: float | None = _SHARE
    #: Mean relevance to the question, at least.
    relevance_min: float | None = _SHARE
    #: Share of answers that did not parse as the version's output schema, at most.
    format_failure_rate_max: float | None = Field(default=0.05, ge=0, le=1)
    #: Scored calls a version needs in the window before it gets a verdict.
    min_scored: int = Field(default=20, ge=1, le=100_000)
    #: After ``LlmQualityDegraded`` for a version, no other for it this long (verdicts
    #: are still recorded every run).
    cooldown_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)
    #: A degraded verdict for the version on canary fails its canary check (rollback).
    rollback_canary: bool = True
    #: In AWS, the Amazon Bedrock guardrail that judges toxicity, groundedness and
    #: relevance (its contextual grounding check), paid per text unit and counted against
    #: ``budget.max_usd``; ``None``, and on the local runtime: the embedded evaluators.
    guardrail: Guardrail | None = None
    #: Per-answer thresholds handed to the evaluators (``toxicity: 0.5``).
    thresholds: dict[str, float] = Field(default_factory=dict, max_length=10)

    @field_validator("thresholds")
    @classmethod
    def _shares(cls, thresholds: dict[str, float]) -> dict[str, float]:
        for name, value in thresholds.items():
            if name not in EVALUATED:
                raise ValueError(f"{name}: not an evaluator ({', '.join(EVALUATED)})")
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: a threshold is a score between 0 and 1")
        return thresholds

    def limits(self) -> dict[str, tuple[float, str]]:
        """The declared limits by metric: ``(limit, "max" | "min")``.

        Examples
        --------
        >>> PromptMonitorPolicy(relevance_min=0.3).limits()["relevance"]
        (0.3, 'min')
        """
        found: dict[str, tuple[float, str]] = {}
        for metric, value, side in (
            ("toxicity_rate", self.toxicity_rate_max, "max"),
            ("groundedness", self.groundedness_min, "min"),
            ("relevance", self.relevance_min, "min"),
            ("format_failure_rate", self.format_failure_rate_max, "max"),
        ):
            if value is not None:
                found[metric] = (value, side)
        return found


def sampled(seed: int, request_id: str, rate: float) -> bool:
    """Whether the call ``request_id`` is in the sample: a hash of the seed and the id, so
    the same calls are drawn on every run, on every machine.

    Examples
    --------
    >>> [sampled(0, f"r{i}", 0.5) for i in range(6)] == [sampled(0, f"r{i}", 0.5)
    ...                                                  for i in range(6)]
    True
    """
    if rate >= 1:
        return True
    digest = hashlib.blake2b(f"{seed}:{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate
