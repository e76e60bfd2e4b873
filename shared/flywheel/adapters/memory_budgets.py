"""In-memory budget ledger: the ``BudgetLedger`` contract of the DynamoDB one, for tests."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flywheel.llm.budgets import BudgetLine

__all__ = ["InMemoryBudgetLedger"]


class InMemoryBudgetLedger:
    """Spend per ``(pk, sk)`` in a dict, each write under one lock; thread-safe.

    ``writes`` counts the writes made (reservations and adjustments), as a client would.

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

    def adjust(self, lines: Sequence[BudgetLine], delta: Decimal) -> None:
        with self._lock:
            self.writes += 1
            for line in lines:
                key = (line.pk, line.sk)
                self.amounts[key] = self.amounts.get(key, Decimal(0)) + delta

    def spent(self, line: BudgetLine) -> Decimal:
        with self._lock:
            return self.amounts.get((line.pk, line.sk), Decimal(0))
