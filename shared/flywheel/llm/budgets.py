"""Cost budgets per prompt and per team, per UTC day and month, that hold under concurrency
(ADR 79).

Before a call, :meth:`Budgets.reserve` charges its worst case (estimated input tokens plus
the prompt's ``max_tokens`` as output) to every budget that applies, all or none, in one
conditional write; after the call, :meth:`Budgets.settle` replaces the reservation with
the actual cost in one write. Amounts are exact ``Decimal`` in the price table's currency.

Examples
--------
>>> from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
>>> from flywheel.clock import FixedClock
>>> policy = BudgetPolicy(prompts={"greeting": BudgetLimits(day=Decimal("0.005"))})
>>> clock = FixedClock(datetime(2026, 12, 7, 18, tzinfo=UTC))
>>> budgets = Budgets(policy, InMemoryBudgetLedger(), clock=clock)
>>> call = BudgetCall(prompt="greeting", provider="local", model_id="local.stand-in",
...                   input_tokens=1000, max_tokens=1000)
>>> first = budgets.reserve(call)
>>> first.amount
Decimal('0.003')
>>> budgets.reserve(call)
Traceback (most recent call last):
...
flywheel.errors.BudgetExceededError: budget prompt:greeting (day 2026-12-07, limit 0.005 USD) ...
>>> budgets.settle(first, Usage(input_tokens=900, output_tokens=100))
Decimal('0.0011')
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field, field_validator, model_validator

from flywheel.clock import Clock, SystemClock
from flywheel.errors import BudgetExceededError
from flywheel.llm.prices import PriceTable, default_prices
from flywheel.llm.prompts import Provider
from flywheel.llm.providers import Usage
from flywheel.models import Frozen
from flywheel.registry.models import validate_model_name

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flywheel.llm.prompts import RenderedPrompt

__all__ = [
    "BudgetCall",
    "BudgetLedger",
    "BudgetLimits",
    "BudgetLine",
    "BudgetPolicy",
    "Budgets",
    "Period",
    "Reservation",
    "Scope",
    "estimate_input_tokens",
]

#: Team tags: lowercase letters, digits, dashes and underscores (what AWS tag values hold).
TEAM_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: Tokens added to every estimate for the message framing a provider counts as input.
FRAMING_TOKENS = 16
#: At most this many teams per call, so a call's lines fit one transaction (100 items).
MAX_TEAMS = 8
_MAX_AMOUNT = Decimal("1e12")


class Scope(StrEnum):
    PROMPT = "prompt"
    TEAM = "team"


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"


class BudgetLimits(Frozen):
    """A budget's limits per UTC day and per UTC month (at least one), in the price
    table's currency."""

    day: Decimal | None = Field(default=None, gt=0, le=_MAX_AMOUNT, decimal_places=12)
    month: Decimal | None = Field(default=None, gt=0, le=_MAX_AMOUNT, decimal_places=12)

    @model_validator(mode="after")
    def _some(self) -> BudgetLimits:
        if self.day is None and self.month is None:
            raise ValueError("a budget limits a day, a month or both")
        if self.day is not None and self.month is not None and self.day > self.month:
            raise ValueError(f"day limit {self.day} is above month limit {self.month}")
        return self


class BudgetPolicy(Frozen):
    """Budgets by prompt name and by team tag; a call is charged to each that applies.

    Examples
    --------
    >>> BudgetPolicy(teams={"Support": BudgetLimits(month=Decimal(5))})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for BudgetPolicy
    ...
    """

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    prompts: dict[str, BudgetLimits] = Field(default_factory=dict, max_length=10_000)
    teams: dict[str, BudgetLimits] = Field(default_factory=dict, max_length=10_000)

    @field_validator("prompts")
    @classmethod
    def _prompt_names(cls, prompts: dict[str, BudgetLimits]) -> dict[str, BudgetLimits]:
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


class BudgetLine(Frozen):
    """One budget in one period: where its spend is kept and its limit.

    Examples
    --------
    >>> line = BudgetLine(scope="team", name="support", period="month",
    ...                   period_key="2026-12", limit=Decimal(5))
    >>> line.pk, line.sk, line.budget
    ('BUDGET#team#support', 'MONTH#2026-12', 'team:support')
    """

    scope: Scope
    name: str
    period: Period
    period_key: str
    limit: Decimal

    @property
    def pk(self) -> str:
        return f"BUDGET#{self.scope}#{self.name}"

    @property
    def sk(self) -> str:
        return f"{self.period.upper()}#{self.period_key}"

    @property
    def budget(self) -> str:
        return f"{self.scope}:{self.name}"


class BudgetLedger(Protocol):
    """Where spend is kept: each method is one atomic write over all its lines."""

    def reserve(self, lines: Sequence[BudgetLine], amount: Decimal) -> int | None:
        """Add ``amount`` to every line if each stays within its limit, else to none.

        Returns ``None`` when charged, else the index of a line that refused.
        """
        ...

    def adjust(self, lines: Sequence[BudgetLine], delta: Decimal) -> None:
        """Add ``delta`` (negative: a refund) to every line, unconditionally."""
        ...

    def spent(self, line: BudgetLine) -> Decimal:
        """What ``line`` has spent so far (0 when never charged)."""
        ...


def estimate_input_tokens(rendered: RenderedPrompt) -> int:
    """A conservative input-token estimate: UTF-8 bytes / 3, rounded up, plus framing.

    Tokenizers average about 4 bytes a token on English text and rarely fewer than 3
    elsewhere; settling corrects the estimate to the provider's count.

    Examples
    --------
    >>> from flywheel.llm.prompts import RenderedPrompt
    >>> estimate_input_tokens(RenderedPrompt(system="", user="x" * 300, sha256="0" * 64))
    116
    """
    size = len(rendered.system.encode()) + len(rendered.user.encode())
    return math.ceil(size / 3) + FRAMING_TOKENS


class BudgetCall(Frozen):
    """What a call may cost at most: its prompt, teams, model and token bounds."""

    prompt: str
    teams: tuple[str, ...] = Field(default=(), max_length=MAX_TEAMS)
    provider: Provider
    model_id: str = Field(min_length=1, max_length=2048)
    input_tokens: int = Field(ge=0)
    max_tokens: int = Field(ge=1)


class Reservation(Frozen):
    """A reserved worst case: the lines charged, the amount, and when."""

    id: str
    call: BudgetCall
    lines: tuple[BudgetLine, ...]
    amount: Decimal
    reserved_at: datetime


def _period_end(period: Period, now: datetime) -> datetime:
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period is Period.DAY:
        return start + timedelta(days=1)
    return datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)


class Budgets:
    """Reserve and settle calls against a :class:`BudgetPolicy` on a :class:`BudgetLedger`."""

    def __init__(
        self,
        policy: BudgetPolicy,
        ledger: BudgetLedger,
        *,
        prices: PriceTable | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.policy = policy
        self.prices = prices or default_prices()
        self.ledger = ledger
        self.clock = clock or SystemClock()
        if self.prices.currency != policy.currency:
            raise ValueError(f"budgets are in {policy.currency}, prices in {self.prices.currency}")

    def lines(self, call: BudgetCall, now: datetime) -> tuple[BudgetLine, ...]:
        """The budget lines ``call`` is charged to at ``now`` (UTC)."""
        now = now.astimezone(UTC)
        keys = {Period.DAY: now.strftime("%Y-%m-%d"), Period.MONTH: now.strftime("%Y-%m")}
        found: list[BudgetLine] = []
        owners = [(Scope.PROMPT, call.prompt, self.policy.prompts.get(call.prompt))]
        owners += [(Scope.TEAM, t, self.policy.teams.get(t)) for t in dict.fromkeys(call.teams)]
        for scope, name, limits in owners:
            if limits is None:
                continue
            for period, limit in ((Period.DAY, limits.day), (Period.MONTH, limits.month)):
                if limit is not None:
                    found.append(BudgetLine(scope=scope, name=name, period=period,
                                            period_key=keys[period], limit=limit))  # fmt: skip
        return tuple(found)

    def reserve(self, call: BudgetCall) -> Reservation:
        """Charge ``call``'s worst case to every budget that applies, or to none.

        Raises
        ------
        BudgetExceededError
            A budget would go over its limit; it names the budget and the seconds until
            its period ends.
        """
        now = self.clock.now().astimezone(UTC)
        worst = Usage(input_tokens=call.input_tokens, output_tokens=call.max_tokens)
        amount = self.prices.cost(worst, call.model_id, call.provider)
        lines = self.lines(call, now)
        refused: int | None = None
        for i, line in enumerate(lines):
            if amount > line.limit:  # could never fit: refuse without a write
                refused = i
                break
        if refused is None and lines:
            refused = self.ledger.reserve(lines, amount)
        if refused is not None:
            raise self._exceeded(lines[refused], amount, now)
        return Reservation(
            id=uuid.uuid4().hex, call=call, lines=lines, amount=amount, reserved_at=now
        )

    def settle(
        self,
        reservation: Reservation,
        usage: Usage,
        *,
        version: int | None = None,
        variant: str | None = None,
    ) -> Decimal:
        """Replace the reservation with what ``usage`` costs (0 tokens: a full refund);
        returns the actual cost. Charged to the periods of the reservation.

        ``version`` and ``variant`` name the prompt version and routing variant that
        answered (the usage counters behind ``flywheel cost report``)."""
        del version, variant  # counted once the usage counters exist
        call = reservation.call
        actual = self.prices.cost(usage, call.model_id, call.provider)
        delta = actual - reservation.amount
        if reservation.lines:
            self.ledger.adjust(reservation.lines, delta)
        return actual

    def _exceeded(self, line: BudgetLine, amount: Decimal, now: datetime) -> BudgetExceededError:
        wait = max(1, math.ceil((_period_end(line.period, now) - now).total_seconds()))
        details: dict[str, Any] = {
            "budget": line.budget,
            "period": str(line.period),
            "period_key": line.period_key,
            "limit": str(line.limit),
            "reserved": str(amount),
            "retry_after_seconds": wait,
        }
        return BudgetExceededError(
            f"budget {line.budget} ({line.period} {line.period_key}, limit {line.limit} "
            f"{self.policy.currency}) has no room for this call's worst case {amount}; "
            f"retry in {wait} s",
            field="budget",
            details=details,
        )
