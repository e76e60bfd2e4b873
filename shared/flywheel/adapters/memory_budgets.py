"""In-memory budget ledger: the ``BudgetLedger`` contract of the DynamoDB one, for tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from flywheel.llm.budgets import UsageLine, UsageRow

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date, datetime, timedelta

    from flywheel.llm.budgets import BudgetLine, Scope, UsageCount

__all__ = ["InMemoryBudgetLedger"]


@dataclass
class _Alert:
    state: str
    claimed_at: datetime
    event_id: str | None = None


class InMemoryBudgetLedger:
    """Spend and usage per ``(pk, sk)`` in dicts, each write under one lock; thread-safe.

    ``writes`` counts the writes made (reservations, settlements and alert records), as a
    client would.

    Examples
    --------
    >>> from flywheel.llm.budgets import BudgetLine
    >>> line = BudgetLine(scope="prompt", name="greeting", period="day",
    ...                   period_key="2026-12-07", limit=Decimal(1))
    >>> ledger = InMemoryBudgetLedger()
    >>> ledger.reserve([line], Decimal("0.75")), ledger.reserve([line], Decimal("0.5"))
    (None, 0)
    >>> ledger.spent(line)
    Decimal('0.75')
    """

    def __init__(self) -> None:
        self.amounts: dict[tuple[str, str], Decimal] = {}
        #: Usage counters by (pk, sk): calls, input tokens, output tokens, cost.
        self.usage: dict[tuple[str, str], tuple[int, int, int, Decimal]] = {}
        self.alerts: dict[tuple[str, str], _Alert] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def reserve(self, lines: Sequence[BudgetLine], amount: Decimal) -> int | None:
        with self._lock:
            self.writes += 1
            for i, line in enumerate(lines):
                if self.amounts.get((line.pk, line.sk), Decimal(0)) + amount > line.limit:
                    return i
            for line in lines:
                key = (line.pk, line.sk)
                self.amounts[key] = self.amounts.get(key, Decimal(0)) + amount
            return None

    def adjust(
        self, lines: Sequence[BudgetLine], delta: Decimal, usage: UsageCount | None = None
    ) -> None:
        with self._lock:
            self.writes += 1
            for line in lines:
                key = (line.pk, line.sk)
                self.amounts[key] = self.amounts.get(key, Decimal(0)) + delta
            if usage is None:
                return
            for counter in usage.lines:
                key = (counter.pk, counter.sk)
                calls, tokens_in, tokens_out, cost = self.usage.get(key, (0, 0, 0, Decimal(0)))
                self.usage[key] = (
                    calls + usage.calls,
                    tokens_in + usage.input_tokens,
                    tokens_out + usage.output_tokens,
                    cost + usage.cost,
                )

    def spent(self, line: BudgetLine) -> Decimal:
        with self._lock:
            return self.amounts.get((line.pk, line.sk), Decimal(0))

    def usage_rows(
        self, scope: Scope, name: str | None, since: date, until: date
    ) -> list[UsageRow]:
        with self._lock:
            items = sorted(self.usage.items())
        rows = []
        for (pk, sk), (calls, tokens_in, tokens_out, cost) in items:
            line = UsageLine.parse(pk, sk)
            if line is None or line.scope != scope or not since <= line.day <= until:
                continue
            if name is not None and line.name != name:
                continue
            rows.append(
                UsageRow(
                    line=line,
                    calls=calls,
                    input_tokens=tokens_in,
                    output_tokens=tokens_out,
                    cost=cost,
                )
            )
        return rows

    # -- budget alerts (flywheel.llm.meter.AlertLog) -------------------------------------------
    def claim_alert(self, line: BudgetLine, now: datetime, lease: timedelta) -> bool:
        with self._lock:
            key = (line.pk, f"ALERT#{line.sk}")
            found = self.alerts.get(key)
            if found is not None and (found.state == "sent" or found.claimed_at > now - lease):
                return False
            self.writes += 1
            self.alerts[key] = _Alert("pending", now)
            return True

    def alert_sent(self, line: BudgetLine, event_id: str, now: datetime) -> None:  # noqa: ARG002
        with self._lock:
            self.writes += 1
            alert = self.alerts[(line.pk, f"ALERT#{line.sk}")]
            alert.state, alert.event_id = "sent", event_id

    def release_alert(self, line: BudgetLine, now: datetime) -> None:
        with self._lock:
            key = (line.pk, f"ALERT#{line.sk}")
            found = self.alerts.get(key)
            if found is not None and found.state == "pending" and found.claimed_at == now:
                self.writes += 1
                del self.alerts[key]

    def alert_state(self, line: BudgetLine) -> str | None:
        """``pending``, ``sent`` or ``None`` (for tests)."""
        with self._lock:
            found = self.alerts.get((line.pk, f"ALERT#{line.sk}"))
            return found.state if found is not None else None
