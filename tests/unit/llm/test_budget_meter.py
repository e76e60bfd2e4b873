"""The budget meter: each budget's share spent in the current day and month, and one
``BudgetThresholdReached`` per budget and period at ``alert_percent``, never below it,
never twice (retried and concurrent runs included), and again when the bus failed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
from flywheel.adapters.memory_workflows import InMemoryEventPublisher
from flywheel.clock import FixedClock
from flywheel.errors import EventPublishError
from flywheel.llm.budgets import BudgetLine
from flywheel.llm.meter import ALERT_LEASE, THRESHOLD_REACHED, BudgetMeter
from flywheel.llm.policy import LlmPolicy

NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
POLICY: dict[str, Any] = {
    "teams": {"support": {"month": "100"}},
    "prompts": {"ticket-summary": {"teams": ["support"], "budget": {"day": "5", "month": "50"}}},
}


class Bus(InMemoryEventPublisher):
    """The project bus; ``refuse`` makes the next puts fail as EventBridge's would."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = 0

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str:
        if self.refuse:
            self.refuse -= 1
            raise EventPublishError(f"bus refused {detail_type}", field="event")
        return super().publish(detail_type, detail)


def _meter(ledger: InMemoryBudgetLedger, bus: Bus, clock: FixedClock, **policy: Any) -> BudgetMeter:
    return BudgetMeter(
        LlmPolicy.model_validate({**POLICY, **policy}), ledger, ledger, bus, clock=clock
    )


def _line(meter: BudgetMeter, budget: str) -> BudgetLine:
    (line,) = [x for x in meter.lines() if f"{x.budget}:{x.period}" == budget]
    return line


def _spend(ledger: InMemoryBudgetLedger, line: BudgetLine, amount: str) -> None:
    assert ledger.reserve([line], Decimal(amount)) is None


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def test_every_budget_of_the_policy_is_read_in_its_current_period(clock: FixedClock) -> None:
    ledger, bus = InMemoryBudgetLedger(), Bus()
    meter = _meter(ledger, bus, clock)
    _spend(ledger, _line(meter, "prompt:ticket-summary:day"), "1.25")

    readings = {r.budget: (r.line.period_key, r.spent, r.percent) for r in meter.run()}

    assert readings == {
        "prompt:ticket-summary:day": ("2026-12-07", Decimal("1.25"), 25.0),
        "prompt:ticket-summary:month": ("2026-12", Decimal(0), 0.0),
        "team:support:month": ("2026-12", Decimal(0), 0.0),
    }
    assert bus.events == []


def test_below_the_threshold_nothing_is_sent(clock: FixedClock) -> None:
    ledger, bus = InMemoryBudgetLedger(), Bus()
    meter = _meter(ledger, bus, clock)
    _spend(ledger, _line(meter, "prompt:ticket-summary:day"), "3.9995")  # 79.99 %

    (day,) = [r for r in meter.run() if r.budget == "prompt:ticket-summary:day"]

    assert (day.percent, day.alerted) == (79.99, False)
    assert bus.events == []
    assert ledger.alert_state(day.line) is None


def test_a_day_budget_alerts_once_at_the_threshold_and_again_the_next_day(
    clock: FixedClock,
) -> None:
    ledger, bus = InMemoryBudgetLedger(), Bus()
    meter = _meter(ledger, bus, clock)
    day = _line(meter, "prompt:ticket-summary:day")
    _spend(ledger, day, "4")  # exactly 80 %

    first = meter.run()
    _spend(ledger, day, "0.5")  # 90 %: still the same period
    clock.advance(timedelta(minutes=5))
    second = meter.run()

    assert [r.budget for r in first if r.alerted] == ["prompt:ticket-summary:day"]
    assert [r.alerted for r in second] == [False, False, False]
    assert len(bus.events) == 1
    detail_type, detail = bus.events[0]
    assert detail_type == THRESHOLD_REACHED
    assert detail == {
        "budget": "prompt:ticket-summary",
        "period": "day",
        "period_key": "2026-12-07",
        "period_start": "2026-12-07",
        "spent": "4",
        "limit": "5",
        "percent": 80.0,
        "alert_percent": 80.0,
        "currency": "USD",
        "at": "2026-12-07T18:00:00.000000Z",
    }
    assert ledger.alert_state(day) == "sent"

    # The next UTC day is a new period: quiet until its own spend reaches 80 %
    clock.advance(timedelta(hours=6))
    assert not any(r.alerted for r in meter.run())
    tomorrow = _line(meter, "prompt:ticket-summary:day")
    assert tomorrow.period_key == "2026-12-08"
    _spend(ledger, tomorrow, "4.5")
    assert [r.budget for r in meter.run() if r.alerted] == ["prompt:ticket-summary:day"]
    assert [d["period_key"] for _, d in bus.events] == ["2026-12-07", "2026-12-08"]


def test_a_month_budget_alerts_once_in_its_month_whatever_the_day(clock: FixedClock) -> None:
    ledger, bus = InMemoryBudgetLedger(), Bus()
    meter = _meter(ledger, bus, clock, alert_percent=50)
    _spend(ledger, _line(meter, "team:support:month"), "60")

    meter.run()
    clock.advance(timedelta(days=3))  # 10 December, same month
    meter.run()
    clock.advance(timedelta(days=30))  # January: a new month, nothing spent yet
    meter.run()

    assert [
        (d["budget"], d["period_key"], d["period_start"], d["percent"]) for _, d in bus.events
    ] == [("team:support", "2026-12", "2026-12-01", 60.0)]


def test_concurrent_runs_send_one_alert(clock: FixedClock) -> None:
    ledger, bus = InMemoryBudgetLedger(), Bus()
    meters = [_meter(ledger, bus, clock) for _ in range(8)]
    _spend(ledger, _line(meters[0], "prompt:ticket-summary:day"), "5")
    start = threading.Barrier(len(meters))

    def run(meter: BudgetMeter) -> None:
        start.wait()
        meter.run()

    threads = [threading.Thread(target=run, args=(m,)) for m in meters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(bus.events) == 1


def test_a_refused_alert_is_sent_by_the_next_run_and_the_others_are_not_held_back(
    clock: FixedClock,
) -> None:
    ledger, bus = InMemoryBudgetLedger(), Bus()
    meter = _meter(ledger, bus, clock)
    day = _line(meter, "prompt:ticket-summary:day")
    _spend(ledger, day, "5")
    _spend(ledger, _line(meter, "team:support:month"), "95")
    bus.refuse = 1  # the first put (the prompt's day) fails

    with pytest.raises(EventPublishError):
        meter.run()

    # the team's alert went out; the prompt's claim was dropped, not recorded as sent
    assert [d["budget"] for _, d in bus.events] == ["team:support"]
    assert ledger.alert_state(day) is None
    assert {r.budget for r in meter.last_readings} == {
        "prompt:ticket-summary:day", "prompt:ticket-summary:month", "team:support:month",
    }  # fmt: skip

    clock.advance(timedelta(minutes=5))
    meter.run()
    assert [d["budget"] for _, d in bus.events] == ["team:support", "prompt:ticket-summary"]


def test_a_claim_left_by_a_run_that_died_is_taken_over_after_the_lease(
    clock: FixedClock,
) -> None:
    ledger, bus = InMemoryBudgetLedger(), Bus()
    meter = _meter(ledger, bus, clock)
    day = _line(meter, "prompt:ticket-summary:day")
    _spend(ledger, day, "5")
    assert ledger.claim_alert(day, clock.now(), ALERT_LEASE)  # a run that never finished

    clock.advance(timedelta(minutes=5))
    meter.run()
    assert bus.events == []  # it may still be putting the event

    clock.advance(ALERT_LEASE)
    meter.run()
    assert [d["budget"] for _, d in bus.events] == ["prompt:ticket-summary"]
    assert ledger.alert_state(day) == "sent"


def test_no_budgets_no_readings(clock: FixedClock) -> None:
    bus = Bus()
    meter = BudgetMeter(LlmPolicy(), InMemoryBudgetLedger(), InMemoryBudgetLedger(), bus,
                        clock=clock)  # fmt: skip

    assert meter.run() == []
    assert bus.events == []
