"""Cost budgets per prompt and per team, per UTC day and month, that hold under concurrency
(ADR 79).

Before a call, :meth:`Budgets.reserve` charges its worst case (estimated input tokens plus
the prompt's ``max_tokens`` as output) to every budget that applies, all or none, in one
conditional write; after the call, :meth:`Budgets.settle` replaces the reservation with
the actual cost and counts the call (calls, input and output tokens, cost) in the usage
counters, in one write. Amounts are exact ``Decimal`` in the price table's currency.
The keys of the gateway's usage table are listed under Notes.

Notes
-----

==============================  ==========================================  ==============
``pk``                          ``sk``                                      what
==============================  ==========================================  ==============
``BUDGET#<scope>#<name>``       ``DAY#<yyyy-mm-dd>`` / ``MONTH#<yyyy-mm>``  ``spent``,
                                                                            ``calls``,
                                                                            ``limit``
``BUDGET#<scope>#<name>``       ``ALERT#DAY#<yyyy-mm-dd>`` /                the period's
                                ``ALERT#MONTH#<yyyy-mm>``                   budget alert
``USAGE#prompt#<prompt>``       ``DAY#<yyyy-mm-dd>#V<version>#<variant>``   ``calls``,
                                                                            ``input_tokens``,
                                                                            ``output_tokens``,
                                                                            ``cost``
``USAGE#team#<tag>``            ``DAY#<yyyy-mm-dd>#<prompt>``               the same
==============================  ==========================================  ==============

``<scope>`` is ``prompt`` or ``team``; a version or variant the caller did not name is
written ``-`` (``V-``). A call is counted in the UTC day it was reserved in, as it is
charged.

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
>>> budgets.settle(first, Usage(input_tokens=900, output_tokens=100), version=1,
...                variant="champion")
Decimal('0.0011')
>>> [(r.sk, r.calls, r.cost) for r in budgets.ledger.usage_rows(
...     Scope.PROMPT, "greeting", date(2026, 12, 7), date(2026, 12, 7))]
[('DAY#2026-12-07#V1#champion', 1, Decimal('0.0011'))]
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field, field_validator, model_validator

from flywheel.clock import Clock, SystemClock
from flywheel.errors import BudgetExceededError, FlywheelError, ProviderError
from flywheel.llm.prices import PriceTable, default_prices
from flywheel.llm.prompts import Provider
from flywheel.llm.providers import Usage
from flywheel.models import Frozen
from flywheel.registry.models import validate_model_name

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from flywheel.llm.prompts import RenderedPrompt
    from flywheel.llm.providers import Completion, CompletionProvider, CompletionRequest

__all__ = [
    "BudgetCall",
    "BudgetLedger",
    "BudgetLimits",
    "BudgetLine",
    "BudgetPolicy",
    "BudgetedCompletion",
    "Budgets",
    "Period",
    "Reservation",
    "Scope",
    "UsageCount",
    "UsageLine",
    "UsageRow",
    "estimate_input_tokens",
]

#: Team tags: lowercase letters, digits, dashes and underscores (what AWS tag values hold).
TEAM_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: Tokens added to every estimate for the message framing a provider counts as input.
FRAMING_TOKENS = 16
#: At most this many teams per call, so a call's lines fit one transaction (100 items).
MAX_TEAMS = 8
#: Routing variants as counted: ``champion``, ``canary``, ``shadow``, ``a``, ``b`` ...
VARIANT = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_MAX_AMOUNT = Decimal("1e12")
#: Written for a version or variant the caller did not name.
_UNNAMED = "-"


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


class UsageLine(Frozen):
    """One usage counter: a prompt's calls in a UTC day by version and variant, or a
    team's calls in a UTC day by prompt.

    Examples
    --------
    >>> day = date(2026, 12, 7)
    >>> line = UsageLine.for_prompt("greeting", day, version=3, variant="canary")
    >>> line.pk, line.sk
    ('USAGE#prompt#greeting', 'DAY#2026-12-07#V3#canary')
    >>> team = UsageLine.for_team("support", day, prompt="greeting")
    >>> team.pk, team.sk
    ('USAGE#team#support', 'DAY#2026-12-07#greeting')
    >>> UsageLine.parse(line.pk, line.sk) == line, UsageLine.parse("BUDGET#x", "DAY#y")
    (True, None)
    """

    scope: Scope
    name: str
    day: date
    #: Prompt lines: the version and variant that answered (``None``: not named).
    version: int | None = Field(default=None, ge=1)
    variant: str | None = Field(default=None, pattern=VARIANT.pattern)
    #: Team lines: the prompt called.
    prompt: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> UsageLine:
        if self.scope is Scope.PROMPT:
            validate_model_name(self.name)
            if self.prompt is not None:
                raise ValueError("a prompt's usage line names no other prompt")
        else:
            if not TEAM_TAG.fullmatch(self.name):
                raise ValueError(f"team {self.name!r}: lowercase letters, digits, '-', '_'")
            if self.prompt is None or self.version is not None or self.variant is not None:
                raise ValueError("a team's usage line names the prompt, no version or variant")
            validate_model_name(self.prompt)
        return self

    @classmethod
    def for_prompt(
        cls, name: str, day: date, *, version: int | None, variant: str | None
    ) -> UsageLine:
        return cls(scope=Scope.PROMPT, name=name, day=day, version=version, variant=variant)

    @classmethod
    def for_team(cls, tag: str, day: date, *, prompt: str) -> UsageLine:
        return cls(scope=Scope.TEAM, name=tag, day=day, prompt=prompt)

    @property
    def pk(self) -> str:
        return f"USAGE#{self.scope}#{self.name}"

    @property
    def sk(self) -> str:
        day = f"DAY#{self.day.isoformat()}"
        if self.scope is Scope.TEAM:
            return f"{day}#{self.prompt}"
        version = _UNNAMED if self.version is None else str(self.version)
        return f"{day}#V{version}#{self.variant or _UNNAMED}"

    @classmethod
    def parse(cls, pk: str, sk: str) -> UsageLine | None:
        """The line stored under ``pk``/``sk``; ``None`` for any other item."""
        head, _, rest = pk.partition("#")
        scope, _, name = rest.partition("#")
        parts = sk.split("#")
        if head != "USAGE" or scope not in {"prompt", "team"} or parts[0] != "DAY":
            return None
        try:
            day = date.fromisoformat(parts[1])
            if scope == Scope.TEAM and len(parts) == 3:
                return cls.for_team(name, day, prompt=parts[2])
            if scope == Scope.PROMPT and len(parts) == 4 and parts[2].startswith("V"):
                number = parts[2][1:]
                version = None if number == _UNNAMED else int(number)
                variant = None if parts[3] == _UNNAMED else parts[3]
                return cls.for_prompt(name, day, version=version, variant=variant)
        except ValueError:
            return None
        return None


class UsageCount(Frozen):
    """What one settled call adds to each of its usage lines."""

    lines: tuple[UsageLine, ...] = Field(max_length=1 + MAX_TEAMS)
    calls: int = Field(default=1, ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost: Decimal = Field(ge=0)


class UsageRow(Frozen):
    """A usage line's counters as stored (what ``flywheel cost report`` adds up)."""

    line: UsageLine
    calls: int
    input_tokens: int
    output_tokens: int
    cost: Decimal

    @property
    def sk(self) -> str:
        return self.line.sk


class BudgetLedger(Protocol):
    """Where spend and usage are kept: each write method is one atomic write over all its
    lines."""

    def reserve(self, lines: Sequence[BudgetLine], amount: Decimal) -> int | None:
        """Add ``amount`` to every line if each stays within its limit, else to none.

        Returns ``None`` when charged, else the index of a line that refused.
        """
        ...

    def adjust(
        self, lines: Sequence[BudgetLine], delta: Decimal, usage: UsageCount | None = None
    ) -> None:
        """Add ``delta`` (negative: a refund) to every line that holds a reservation, and
        ``usage``'s counts to each of its lines, in the same write."""
        ...

    def spent(self, line: BudgetLine) -> Decimal:
        """What ``line`` has spent so far (0 when never charged)."""
        ...

    def usage_rows(
        self, scope: Scope, name: str | None, since: date, until: date
    ) -> list[UsageRow]:
        """The usage lines of ``scope`` (of ``name`` only, when given) counted in the UTC
        days ``since`` to ``until``, both included."""
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


_NO_USAGE = Usage(input_tokens=0, output_tokens=0)


@dataclass(frozen=True)
class BudgetedCompletion:
    """What :meth:`Budgets.complete` returns: the answer, its exact cost, the provider's
    latency (ms, its retries included) and whether the settlement was written."""

    completion: Completion
    cost: Decimal
    latency_ms: float
    settled: bool


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
        #: Settlements of :meth:`complete` that failed (their reservations stay charged).
        self.settle_failures = 0
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
        answered: the call is counted (calls, tokens, cost) for its prompt by version and
        variant, and for each of its teams by prompt, in the UTC day it was reserved in,
        in the same write as the budget adjustment (the usage counters behind
        ``flywheel cost report``). That write happens whether a budget applies or not.
        """
        call = reservation.call
        actual = self.prices.cost(usage, call.model_id, call.provider)
        delta = actual - reservation.amount
        day = reservation.reserved_at.astimezone(UTC).date()
        lines = [UsageLine.for_prompt(call.prompt, day, version=version, variant=variant)]
        lines += [UsageLine.for_team(t, day, prompt=call.prompt) for t in dict.fromkeys(call.teams)]
        counted = UsageCount(
            lines=tuple(lines),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=actual,
        )
        self.ledger.adjust(reservation.lines, delta, counted)
        return actual

    def complete(
        self,
        call: BudgetCall,
        provider: CompletionProvider,
        request: CompletionRequest,
        *,
        version: int | None,
        variant: str,
        timer: Callable[[], float] = time.perf_counter,
    ) -> BudgetedCompletion:
        """One provider call between its reservation and its settlement.

        The usage a failed call reports (``ProviderError.details["usage"]``) is settled
        before the error goes on. A settlement that fails leaves the reservation charged
        (spend is over-, never under-counted); the cost is then the price table's and
        ``settled`` is false (on an error, :attr:`settle_failures` counts it).
        """
        reservation = self.reserve(call)
        usage = _NO_USAGE
        began = timer()
        try:
            completion = provider.complete(request)
            usage = completion.usage
        except ProviderError as err:
            reported = err.details.get("usage")
            if isinstance(reported, Usage):
                usage = reported
            raise
        finally:
            latency_ms = (timer() - began) * 1000.0
            settled = True
            try:
                cost = self.settle(reservation, usage, version=version, variant=variant)
            except FlywheelError:
                settled = False
                self.settle_failures += 1
                cost = self.prices.cost(usage, call.model_id, call.provider)
        return BudgetedCompletion(
            completion=completion, cost=cost, latency_ms=latency_ms, settled=settled
        )

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
