"""What a stage allows its LLM applications: budgets, capture policies, canary alarms.

One :class:`LlmPolicy` per stage, written in the project file's ``llm:`` section and
handed to the gateway as JSON (``FLYWHEEL_LLM_POLICY``). A prompt the policy does not
name gets :class:`PromptPolicy`'s defaults: no budget of its own, its calls captured with
e-mail addresses and card numbers redacted, at most 16 KiB a text field.

Capture policies say what of a call may be stored:

* ``full``: the text as it was;
* ``redact``: the text with every match of the named patterns replaced by
  ``[REDACTED:<pattern>]`` (card numbers only when their digits pass the Luhn check, so
  order numbers survive);
* ``hash``: only the SHA-256 of the text (equal texts can still be counted and joined);
* ``none``: nothing of the text (usage, cost, latency, version and variant are kept).

Examples
--------
>>> policy = CapturePolicy(mode=CaptureMode.REDACT)
>>> redact("Mail ana@example.com, card 4111 1111 1111 1111, order 1234 5678 9012 3456",
...        policy.compiled())
('Mail [REDACTED:email], card [REDACTED:card_number], order 1234 5678 9012 3456', 2)
>>> LlmPolicy().prompt("anything").capture.mode
<CaptureMode.REDACT: 'redact'>
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, field_validator, model_validator

from flywheel.llm.budgets import TEAM_TAG, BudgetLimits, BudgetPolicy
from flywheel.llm.guardrails import GuardrailPolicy
from flywheel.models import Frozen
from flywheel.registry.models import validate_model_name

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "BUILTIN_PATTERNS",
    "CaptureMode",
    "CapturePolicy",
    "LlmPolicy",
    "PromptAlarms",
    "PromptPolicy",
    "apply_capture",
    "redact",
]

_MAX_AMOUNT = Decimal("1e12")
PatternName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]

#: Patterns every policy may name without defining them.
BUILTIN_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    # 13-19 digits, optionally in groups separated by one space or dash; Luhn-checked.
    "card_number": r"\b\d(?:[ -]?\d){12,18}\b",
    "phone": r"(?<![\w+])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}\b",
    "ipv4": r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b",
    "aws_access_key": r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
}


class CaptureMode(StrEnum):
    FULL = "full"
    REDACT = "redact"
    HASH = "hash"
    NONE = "none"


class CapturePolicy(Frozen):
    """What of a call's text (variables, rendered prompt, answer) may be stored.

    Examples
    --------
    >>> CapturePolicy(redact=("email", "iban"))
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for CapturePolicy
    ...
    """

    mode: CaptureMode = CaptureMode.REDACT
    #: Patterns applied in ``redact`` mode: built-in names or names of ``patterns``.
    redact: tuple[PatternName, ...] = ("email", "card_number")
    #: The policy's own patterns: name -> regular expression (Python syntax).
    patterns: dict[PatternName, Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=dict, max_length=20
    )
    #: Each captured text field is cut to this many UTF-8 bytes (marked as truncated).
    max_bytes: int = Field(default=16_384, ge=256, le=262_144)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: dict[str, str]) -> dict[str, str]:
        for name, expression in patterns.items():
            try:
                re.compile(expression)
            except re.error as err:
                raise ValueError(f"pattern {name!r} is not a regular expression: {err}") from err
        return patterns

    @model_validator(mode="after")
    def _known(self) -> CapturePolicy:
        unknown = [n for n in self.redact if n not in BUILTIN_PATTERNS and n not in self.patterns]
        if unknown:
            raise ValueError(
                f"redact names unknown patterns {unknown}; built in: {sorted(BUILTIN_PATTERNS)}"
            )
        return self

    def compiled(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        """The ``redact`` patterns, compiled, in order."""
        merged = {**BUILTIN_PATTERNS, **self.patterns}
        return tuple((name, re.compile(merged[name])) for name in self.redact)


class PromptAlarms(Frozen):
    """The canary alarms of a prompt's new version (the promotion workflow reads them)."""

    #: Share of calls answered 5xx (provider errors, timeouts, schema failures), percent.
    error_rate_percent: float = Field(default=5.0, gt=0, le=100)
    #: p99 of the whole call, milliseconds (the provider's time included).
    latency_p99_ms: float = Field(default=20_000, gt=0, le=900_000)
    #: Average cost of a call, in the price table's currency; ``None``: no cost alarm.
    cost_per_call: Decimal | None = Field(default=None, gt=0, le=_MAX_AMOUNT)


class PromptPolicy(Frozen):
    """One prompt's budget, teams, capture policy, canary alarms and guardrails."""

    #: Team tags its calls are charged to (each team's budget, if any, applies).
    teams: tuple[str, ...] = Field(default=(), max_length=8)
    budget: BudgetLimits | None = None
    capture: CapturePolicy = CapturePolicy()
    alarms: PromptAlarms = PromptAlarms()
    #: Input and output guardrails in the gateway's request path (``None``: none).
    guardrails: GuardrailPolicy | None = None

    @field_validator("teams")
    @classmethod
    def _tags(cls, teams: tuple[str, ...]) -> tuple[str, ...]:
        for tag in teams:
            if not TEAM_TAG.fullmatch(tag):
                raise ValueError(f"team {tag!r}: lowercase letters, digits, '-', '_' (1-63)")
        return teams


class LlmPolicy(Frozen):
    """A stage's LLM policy: team budgets, per-prompt policies, the project's AWS budget.

    Examples
    --------
    >>> policy = LlmPolicy.model_validate({
    ...     "teams": {"support": {"month": "300"}},
    ...     "prompts": {"ticket-summary": {"teams": ["support"], "budget": {"day": "5"}}},
    ... })
    >>> sorted(policy.budget_policy().prompts), sorted(policy.budget_policy().teams)
    (['ticket-summary'], ['support'])
    """

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    teams: dict[str, BudgetLimits] = Field(default_factory=dict, max_length=1000)
    prompts: dict[str, PromptPolicy] = Field(default_factory=dict, max_length=1000)
    #: The project's monthly AWS cost budget (AWS Budgets, all services); ``None``: none.
    monthly_budget: Decimal | None = Field(default=None, gt=0, le=_MAX_AMOUNT)
    #: Budgets (gateway budgets and the AWS budget) alert at this share of their limit.
    alert_percent: float = Field(default=80.0, gt=0, le=100)

    @field_validator("prompts")
    @classmethod
    def _prompt_names(cls, prompts: dict[str, PromptPolicy]) -> dict[str, PromptPolicy]:
        for name in prompts:
            validate_model_name(name)
        return prompts

    @field_validator("teams")
    @classmethod
    def _team_tags(cls, teams: dict[str, BudgetLimits]) -> dict[str, BudgetLimits]:
        for tag in teams:
            if not TEAM_TAG.fullmatch(tag):
                raise ValueError(f"team {tag!r}: lowercase letters, digits, '-', '_' (1-63)")
        return teams

    def prompt(self, name: str) -> PromptPolicy:
        """``name``'s policy, or the defaults."""
        return self.prompts.get(name) or PromptPolicy()

    def budget_policy(self) -> BudgetPolicy:
        """The budgets the gateway reserves against."""
        return BudgetPolicy(
            currency=self.currency,
            prompts={n: p.budget for n, p in self.prompts.items() if p.budget is not None},
            teams=dict(self.teams),
        )


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact(text: str, patterns: tuple[tuple[str, re.Pattern[str]], ...]) -> tuple[str, int]:
    """``text`` with each match replaced by ``[REDACTED:<name>]``, and how many were.

    Examples
    --------
    >>> redact("call +44 20 7946 0958", CapturePolicy(redact=("phone",)).compiled())
    ('call [REDACTED:phone]', 1)
    """
    count = 0
    for name, pattern in patterns:

        def replace(match: re.Match[str], name: str = name) -> str:
            nonlocal count
            if name == "card_number":
                digits = re.sub(r"\D", "", match.group(0))
                if not _luhn(digits):
                    return match.group(0)
            count += 1
            return f"[REDACTED:{name}]"

        text = pattern.sub(replace, text)
    return text, count


def _cut(text: str, max_bytes: int) -> tuple[str, bool]:
    data = text.encode()
    if len(data) <= max_bytes:
        return text, False
    return data[:max_bytes].decode(errors="ignore"), True


def apply_capture(policy: CapturePolicy, fields: Mapping[str, str]) -> dict[str, object]:
    """The text ``fields`` as ``policy`` lets them be stored, plus what was done.

    Returns the stored fields (``None`` in mode ``none``; ``sha256:<hex>`` in mode
    ``hash``) and ``_capture``: the mode, the number of redactions and which fields were
    cut to ``max_bytes``.

    Examples
    --------
    >>> stored = apply_capture(CapturePolicy(mode=CaptureMode.HASH), {"answer": "hi"})
    >>> stored["answer"][:15], stored["_capture"]["mode"]
    ('sha256:8f434346', 'hash')
    """
    out: dict[str, object] = {}
    redactions = 0
    truncated: list[str] = []
    compiled = policy.compiled() if policy.mode is CaptureMode.REDACT else ()
    for key, original in fields.items():
        text = original
        if policy.mode is CaptureMode.NONE:
            out[key] = None
            continue
        if policy.mode is CaptureMode.HASH:
            out[key] = "sha256:" + hashlib.sha256(original.encode()).hexdigest()
            continue
        if compiled:
            text, n = redact(text, compiled)
            redactions += n
        text, cut = _cut(text, policy.max_bytes)
        if cut:
            truncated.append(key)
        out[key] = text
    out["_capture"] = {"mode": str(policy.mode), "redactions": redactions, "truncated": truncated}
    return out
