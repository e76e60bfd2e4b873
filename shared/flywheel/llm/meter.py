"""The budget meter: how much of each budget the current UTC day and month have spent,
and one ``BudgetThresholdReached`` per budget and period at ``alert_percent``.

The scheduled function ``llm_budgets`` runs :meth:`BudgetMeter.run` every five minutes.
For each budget of the stage's :class:`~flywheel.llm.policy.LlmPolicy` (prompt and team
budgets, each day and month limit) it reads the period's spend line, reports the share
used (``BudgetUsedPercent``, dimension ``Budget`` = ``<scope>:<name>:<period>``), and
when spend reaches ``alert_percent`` of the limit puts ``BudgetThresholdReached``
(source ``flywheel.llm``) on the project bus.

Notes
-----
Spend includes the reservations of calls in flight (their worst case until they settle),
so a burst may alert a little early, never late.

Exactly once per budget and period: before putting the event, the run claims the
period's alert record in the usage table with a conditional write (``pending``); after
the bus took it, the record says ``sent``. A concurrent or retried run finds the record
and stays quiet. When the bus refuses, the claim is dropped and the next run tries
again; a run that dies between the bus and the record leaves a pending claim, which a
run takes over after :data:`ALERT_LEASE` (then, and only then, people may get the
alert twice).

Examples
--------
>>> from decimal import Decimal
>>> from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
>>> from flywheel.adapters.memory_workflows import InMemoryEventPublisher
>>> from flywheel.clock import FixedClock
>>> from flywheel.llm.policy import LlmPolicy
>>> policy = LlmPolicy.model_validate({"teams": {"support": {"month": "10"}}})
>>> clock = FixedClock(datetime(2026, 12, 7, 18, tzinfo=UTC))
>>> ledger, bus = InMemoryBudgetLedger(), InMemoryEventPublisher()
>>> meter = BudgetMeter(policy, ledger, ledger, bus, clock=clock)
>>> line = meter.lines()[0]
>>> _ = ledger.reserve([line], Decimal("8.5"))
>>> [(r.budget, r.percent, r.alerted) for r in meter.run()]
[('team:support:month', 85.0, True)]
>>> [(r.percent, r.alerted) for r in meter.run()]  # once per period
[(85.0, False)]
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from flywheel.clock import Clock, SystemClock, isoformat
from flywheel.llm.budgets import BudgetLedger, BudgetLine, Period, Scope
from flywheel.models import Frozen

if TYPE_CHECKING:
    from flywheel.llm.budgets import BudgetLimits
    from flywheel.llm.policy import LlmPolicy

__all__ = [
    "ALERT_LEASE",
    "LLM_SOURCE",
    "THRESHOLD_REACHED",
    "AlertLog",
    "BudgetMeter",
    "BudgetReading",
    "Publisher",
    "SpendReader",
    "UsageStore",
]

#: ``source`` of the events the LLM side of Flywheel puts on the project bus.
LLM_SOURCE = "flywheel.llm"
#: The event a budget's alert is.
THRESHOLD_REACHED = "BudgetThresholdReached"
#: A pending alert older than this is taken over by the next run (its run died).
ALERT_LEASE = timedelta(minutes=10)


class SpendReader(Protocol):
    """What a budget line has spent (the budget ledger)."""

    def spent(self, line: BudgetLine) -> Decimal: ...


class AlertLog(Protocol):
    """Budget alerts already sent, per budget line (the usage table)."""

    def claim_alert(self, line: BudgetLine, now: datetime, lease: timedelta) -> bool:
        """Record a pending alert for ``line``'s period, unless one was sent or another
        run claimed it less than ``lease`` ago; whether this run holds the claim."""
        ...

    def alert_sent(self, line: BudgetLine, event_id: str, now: datetime) -> None:
        """Mark the claimed alert sent (the bus took event ``event_id``)."""
        ...

    def release_alert(self, line: BudgetLine, now: datetime) -> None:
        """Drop the claim made at ``now`` (the event could not be put)."""
        ...


class UsageStore(BudgetLedger, AlertLog, Protocol):
    """The gateway's usage table: budget spend, usage counters and budget alerts."""


class Publisher(Protocol):
    """Puts an event on the project bus; returns its id."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str: ...


class BudgetReading(Frozen):
    """One budget in its current period: spend against limit, and whether this run alerted."""

    line: BudgetLine
    spent: Decimal
    percent: float
    alerted: bool

    @property
    def budget(self) -> str:
        """The ``Budget`` dimension: ``<scope>:<name>:<period>``."""
        return f"{self.line.budget}:{self.line.period}"


def _percent(spent: Decimal, limit: Decimal) -> float:
    """Share of ``limit`` spent, rounded to 0.01 (never negative).

    Examples
    --------
    >>> _percent(Decimal("4"), Decimal("5")), _percent(Decimal("-1"), Decimal("5"))
    (80.0, 0.0)
    """
    return max(0.0, round(float(spent * 100 / limit), 2))


def _plain(amount: Decimal) -> str:
    """An amount as a decimal string without trailing zeros or exponent.

    Examples
    --------
    >>> _plain(Decimal("0.0090")), _plain(Decimal("300"))
    ('0.009', '300')
    """
    return format(amount.normalize(), "f")


class BudgetMeter:
    """Read each budget's current spend, report it, alert once at ``alert_percent``."""

    def __init__(
        self,
        policy: LlmPolicy,
        spend: SpendReader,
        alerts: AlertLog,
        events: Publisher,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.policy = policy
        self.spend = spend
        self.alerts = alerts
        self.events = events
        self.clock = clock or SystemClock()
        #: What the latest run read, also when it failed part way.
        self.last_readings: list[BudgetReading] = []

    def lines(self, now: datetime | None = None) -> list[BudgetLine]:
        """Every budget line of the policy in the periods that hold ``now`` (UTC)."""
        moment = (now or self.clock.now()).astimezone(UTC)
        keys = {Period.DAY: moment.strftime("%Y-%m-%d"), Period.MONTH: moment.strftime("%Y-%m")}
        budgets = self.policy.budget_policy()
        owners: list[tuple[Scope, str, BudgetLimits]] = [
            *((Scope.PROMPT, name, limits) for name, limits in sorted(budgets.prompts.items())),
            *((Scope.TEAM, tag, limits) for tag, limits in sorted(budgets.teams.items())),
        ]
        found = []
        for scope, name, limits in owners:
            for period, limit in ((Period.DAY, limits.day), (Period.MONTH, limits.month)):
                if limit is not None:
                    found.append(BudgetLine(scope=scope, name=name, period=period,
                                            period_key=keys[period], limit=limit))  # fmt: skip
        return found

    def run(self) -> list[BudgetReading]:
        """Read every budget line; alert the ones at or over the threshold, once each.

        Raises
        ------
        EventPublishError
            The bus refused an alert (its claim is dropped: the next run tries again);
            the other budgets were read and alerted first.
        """
        now = self.clock.now().astimezone(UTC)
        readings: list[BudgetReading] = []
        self.last_readings = readings
        failed: Exception | None = None
        for line in self.lines(now):
            spent = self.spend.spent(line)
            percent = _percent(spent, line.limit)
            alerted = False
            if percent >= self.policy.alert_percent:
                try:
                    alerted = self._alert(line, spent, percent, now)
                except Exception as err:  # the others still get their alert
                    failed = failed or err
            readings.append(BudgetReading(line=line, spent=spent, percent=percent,
                                          alerted=alerted))  # fmt: skip
        if failed is not None:
            raise failed
        return readings

    def _alert(self, line: BudgetLine, spent: Decimal, percent: float, now: datetime) -> bool:
        if not self.alerts.claim_alert(line, now, ALERT_LEASE):
            return False
        try:
            event_id = self.events.publish(
                THRESHOLD_REACHED, self.detail(line, spent, percent, now)
            )
        except Exception:
            self.alerts.release_alert(line, now)
            raise
        self.alerts.alert_sent(line, event_id, now)
        return True

    def detail(
        self, line: BudgetLine, spent: Decimal, percent: float, now: datetime
    ) -> dict[str, Any]:
        """``BudgetThresholdReached``'s detail (amounts as decimal strings;
        ``period_start``: the period's first UTC day, for ``flywheel cost report --since``)."""
        start = line.period_key if line.period is Period.DAY else f"{line.period_key}-01"
        return {
            "budget": line.budget,
            "period": str(line.period),
            "period_key": line.period_key,
            "period_start": start,
            "spent": _plain(spent),
            "limit": _plain(line.limit),
            "percent": percent,
            "alert_percent": self.policy.alert_percent,
            "currency": self.policy.currency,
            "at": isoformat(now),
        }
