"""What the LLM gateway's calls cost over a period: per prompt (and per version and
variant) and per team, from the usage counters :meth:`~flywheel.llm.budgets.Budgets.settle`
keeps (``flywheel cost report``).

Examples
--------
>>> from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
>>> from flywheel.llm.budgets import UsageCount, UsageLine
>>> ledger = InMemoryBudgetLedger()
>>> day = date(2026, 12, 7)
>>> line = UsageLine.for_prompt("greeting", day, version=2, variant="champion")
>>> for _ in range(4):
...     ledger.adjust([], Decimal(0), UsageCount(lines=(line,), input_tokens=100,
...                                              output_tokens=20, cost=Decimal("0.0005")))
>>> report = llm_cost_report(ledger, since=day, until=day, currency="USD")
>>> total = report.prompts[0].total
>>> total.calls, total.cost, total.cost_per_1k_calls
(4, Decimal('0.0020'), Decimal('0.5000'))
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from pydantic import Field, model_validator

from flywheel.errors import InvalidInputError
from flywheel.llm.budgets import TEAM_TAG, Scope, UsageRow
from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "MAX_REPORT_DAYS",
    "LlmCostReport",
    "PromptCost",
    "ReportPeriod",
    "TeamCost",
    "UsageReader",
    "UsageTotal",
    "VariantTotal",
    "llm_cost_report",
    "parse_day",
]

#: The longest period a report covers (CloudWatch keeps hourly data 455 days).
MAX_REPORT_DAYS = 455
_THOUSAND = Decimal(1000)


class UsageReader(Protocol):
    """The usage counters (the budget ledger's usage table)."""

    def usage_rows(
        self, scope: Scope, name: str | None, since: date, until: date
    ) -> list[UsageRow]: ...


def parse_day(value: str, field: str) -> date:
    """A ``YYYY-MM-DD`` day; an :class:`InvalidInputError` naming ``field`` otherwise.

    Examples
    --------
    >>> parse_day("2026-12-07", "since")
    datetime.date(2026, 12, 7)
    >>> parse_day("07/12/2026", "since")
    Traceback (most recent call last):
    ...
    flywheel.errors.InvalidInputError: since: '07/12/2026' is not a day (YYYY-MM-DD)
    """
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{field}: {value!r} is not a day (YYYY-MM-DD)",
                                field=field) from None  # fmt: skip


class ReportPeriod(Frozen):
    """UTC days ``since`` to ``until``, both included.

    Examples
    --------
    >>> ReportPeriod.of(None, None, today=date(2026, 12, 7))
    ReportPeriod(since=datetime.date(2026, 12, 1), until=datetime.date(2026, 12, 7))
    >>> ReportPeriod.of("2026-12-08", "2026-12-07", today=date(2026, 12, 7))
    Traceback (most recent call last):
    ...
    flywheel.errors.InvalidInputError: since: 2026-12-08 is after until 2026-12-07
    """

    since: date
    until: date

    @model_validator(mode="after")
    def _ordered(self) -> ReportPeriod:
        if self.since > self.until:
            raise ValueError(f"since {self.since} is after until {self.until}")
        return self

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    @classmethod
    def of(cls, since: str | None, until: str | None, *, today: date) -> ReportPeriod:
        """From the options as typed: ``since`` defaults to the first day of ``today``'s
        month, ``until`` to ``today``."""
        end = parse_day(until, "until") if until is not None else today
        start = parse_day(since, "since") if since is not None else end.replace(day=1)
        if start > end:
            raise InvalidInputError(f"since: {start} is after until {end}", field="since")
        if (end - start).days + 1 > MAX_REPORT_DAYS:
            raise InvalidInputError(
                f"since: a report covers at most {MAX_REPORT_DAYS} days "
                f"({start} to {end} is {(end - start).days + 1})",
                field="since",
            )
        if start > today:
            raise InvalidInputError(f"since: {start} is in the future", field="since")
        return cls(since=start, until=end)

    def dates(self) -> list[date]:
        return [self.since + timedelta(days=i) for i in range(self.days)]


class UsageTotal(Frozen):
    """Calls, tokens and cost of one prompt, version/variant or team over the period."""

    #: What the figures are of: ``v3 canary`` (a prompt's version and variant), a prompt
    #: name (a team's prompts), or ``total``.
    label: str = "total"
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)

    @property
    def cost_per_1k_calls(self) -> Decimal | None:
        """Average cost of 1,000 calls (``None`` without calls)."""
        return self.cost * _THOUSAND / self.calls if self.calls else None

    def plus(self, row: UsageRow) -> UsageTotal:
        return self.model_copy(
            update={
                "calls": self.calls + row.calls,
                "input_tokens": self.input_tokens + row.input_tokens,
                "output_tokens": self.output_tokens + row.output_tokens,
                "cost": self.cost + row.cost,
            }
        )


class VariantTotal(UsageTotal):
    """A prompt's usage by one version answering as one variant."""

    version: int | None = None
    variant: str | None = None


class PromptCost(Frozen):
    """A prompt's usage over the period, in total and by version and variant."""

    prompt: str
    total: UsageTotal
    variants: tuple[VariantTotal, ...]


class TeamCost(Frozen):
    """A team's usage over the period, in total and by prompt."""

    team: str
    total: UsageTotal
    prompts: tuple[UsageTotal, ...]


class LlmCostReport(Frozen):
    """The gateway's usage over a period, in the price table's currency."""

    since: date
    until: date
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    prompts: tuple[PromptCost, ...]
    teams: tuple[TeamCost, ...]

    @property
    def total(self) -> UsageTotal:
        """Every prompt's calls together (team figures count the same calls again)."""
        total = UsageTotal()
        for prompt in self.prompts:
            t = prompt.total
            total = total.model_copy(
                update={
                    "calls": total.calls + t.calls,
                    "input_tokens": total.input_tokens + t.input_tokens,
                    "output_tokens": total.output_tokens + t.output_tokens,
                    "cost": total.cost + t.cost,
                }
            )
        return total


def _variant_label(row: UsageRow) -> str:
    version = "v-" if row.line.version is None else f"v{row.line.version}"
    return f"{version} {row.line.variant or '-'}"


def _variant_order(label: str) -> tuple[int, str]:
    number, _, variant = label.partition(" ")
    return (int(number[1:]) if number[1:].isdigit() else 0, variant)


def _group(
    rows: Iterable[UsageRow], by: str
) -> dict[str, tuple[UsageTotal, dict[str, UsageTotal]]]:
    found: dict[str, tuple[UsageTotal, dict[str, UsageTotal]]] = {}
    parts: dict[str, dict[str, UsageTotal]] = defaultdict(dict)
    totals: dict[str, UsageTotal] = {}
    for row in rows:
        name = row.line.name
        part: UsageTotal
        if by == "variant":
            key = _variant_label(row)
            part = VariantTotal(label=key, version=row.line.version, variant=row.line.variant)
        else:
            key = str(row.line.prompt)
            part = UsageTotal(label=key)
        totals[name] = totals.get(name, UsageTotal()).plus(row)
        parts[name][key] = parts[name].get(key, part).plus(row)
    for name in sorted(totals):
        found[name] = (totals[name], parts[name])
    return found


def llm_cost_report(
    reader: UsageReader,
    *,
    since: date,
    until: date,
    currency: str,
    prompt: str | None = None,
    team: str | None = None,
    scopes: tuple[Scope, ...] = (Scope.PROMPT, Scope.TEAM),
) -> LlmCostReport:
    """Add up the usage counters of the UTC days ``since`` to ``until`` (both included).

    ``prompt`` / ``team``: that one only; ``scopes``: which sections to read.

    Raises
    ------
    InvalidInputError
        ``team`` is not a team tag.
    """
    if team is not None and not TEAM_TAG.fullmatch(team):
        raise InvalidInputError(
            f"team: {team!r} is not a team tag (lowercase letters, digits, '-', '_')",
            field="team",
        )
    prompts: list[PromptCost] = []
    teams: list[TeamCost] = []
    if Scope.PROMPT in scopes:
        rows = reader.usage_rows(Scope.PROMPT, prompt, since, until)
        for name, (total, parts) in _group(rows, "variant").items():
            ordered = tuple(
                v
                for k in sorted(parts, key=_variant_order)
                if isinstance(v := parts[k], VariantTotal)
            )
            prompts.append(PromptCost(prompt=name, total=total, variants=ordered))
    if Scope.TEAM in scopes:
        rows = reader.usage_rows(Scope.TEAM, team, since, until)
        for name, (total, parts) in _group(rows, "prompt").items():
            teams.append(
                TeamCost(team=name, total=total, prompts=tuple(parts[k] for k in sorted(parts)))
            )
    return LlmCostReport(
        since=since, until=until, currency=currency, prompts=tuple(prompts), teams=tuple(teams)
    )
