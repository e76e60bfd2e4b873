"""Budget ledgers behave the same in memory and on DynamoDB (moto): a call is charged to
all its budgets or none, settles to its actual cost and is counted in the usage counters
in the same write, many threads never overspend and their usage adds up exactly, and a
budget alert is claimed once per period."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
from flywheel.clock import FixedClock
from flywheel.errors import BudgetExceededError
from flywheel.llm.budgets import (
    BudgetCall,
    BudgetLimits,
    BudgetPolicy,
    Budgets,
    Reservation,
    Scope,
    UsageRow,
)
from flywheel.llm.providers import Usage
from flywheel.resources import LLM_USAGE_TABLE
from tests.contract.conftest import boto3_session

NOW = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
TODAY = NOW.date()


@dataclass
class Ledger:
    kind: str
    ledger: Any
    calls: list[str]

    @property
    def writes(self) -> list[str]:
        """The write calls made (reads, such as ``spent``, are left out)."""
        writes = {"TransactWriteItems", "UpdateItem", "reserve", "adjust"}
        return [c for c in self.calls if c in writes]


@pytest.fixture(params=["memory", "dynamodb"])
def ledger(request: pytest.FixtureRequest) -> Ledger:
    if request.param == "memory":
        memory = InMemoryBudgetLedger()
        calls: list[str] = []
        for name in ("reserve", "adjust"):
            method = getattr(memory, name)

            def counted(*args: Any, _method: Any = method, _name: str = name) -> Any:
                calls.append(_name)
                return _method(*args)

            setattr(memory, name, counted)
        return Ledger("memory", memory, calls)
    request.getfixturevalue("moto_aws")
    request.getfixturevalue("atomic_writes")
    from flywheel.adapters.dynamodb_budgets import DynamoDbBudgetLedger
    from flywheel.local.provision import default_names, provision

    names = default_names("test")
    client = boto3_session().client("dynamodb")
    provision(client, boto3_session().client("s3"), names, tables=(LLM_USAGE_TABLE,), buckets=())
    calls: list[str] = []
    client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    return Ledger(
        "dynamodb", DynamoDbBudgetLedger(names[LLM_USAGE_TABLE.env_var], client=client), calls
    )


def _call(prompt: str = "summary", teams: tuple[str, ...] = ("support",), **kw: Any) -> BudgetCall:
    values: dict[str, Any] = {
        "prompt": prompt, "teams": teams, "provider": "local", "model_id": "local.stand-in",
        "input_tokens": 1000, "max_tokens": 1000, **kw,
    }  # fmt: skip
    return BudgetCall.model_validate(values)


def _budgets(ledger: Ledger, clock: FixedClock | None = None, **limits: BudgetLimits) -> Budgets:
    policy = BudgetPolicy(
        prompts={"summary": limits.get("prompt", BudgetLimits(day=Decimal(1), month=Decimal(10)))},
        teams={"support": limits.get("team", BudgetLimits(month=Decimal(10)))},
    )
    return Budgets(policy, ledger.ledger, clock=clock or FixedClock(NOW))


def test_a_call_costs_one_write_before_and_one_after(ledger: Ledger) -> None:
    budgets = _budgets(ledger)
    reservation = budgets.reserve(_call())
    assert ledger.writes == ["TransactWriteItems" if ledger.kind == "dynamodb" else "reserve"]
    # worst case on the stand-in: 1000 in at 0.001/1k + 1000 out at 0.002/1k
    assert reservation.amount == Decimal("0.003")
    assert [line.budget for line in reservation.lines] == [
        "prompt:summary", "prompt:summary", "team:support",
    ]  # fmt: skip
    assert all(ledger.ledger.spent(line) == Decimal("0.003") for line in reservation.lines)

    actual = budgets.settle(
        reservation, Usage(input_tokens=800, output_tokens=120), version=3, variant="canary"
    )

    assert actual == Decimal("0.00104")
    assert len(ledger.writes) == 2
    assert ledger.writes[-1] == ("TransactWriteItems" if ledger.kind == "dynamodb" else "adjust")
    assert all(ledger.ledger.spent(line) == actual for line in reservation.lines)
    # the same write counted the call for the prompt (version, variant) and the team
    assert _counts(ledger, Scope.PROMPT) == [
        ("summary", "DAY#2026-12-07#V3#canary", 1, 800, 120, actual)
    ]
    assert _counts(ledger, Scope.TEAM) == [
        ("support", "DAY#2026-12-07#summary", 1, 800, 120, actual)
    ]


def _counts(
    ledger: Ledger,
    scope: Scope,
    name: str | None = None,
    since: date = TODAY,
    until: date = TODAY,
) -> list[tuple[str, str, int, int, int, Decimal]]:
    rows: list[UsageRow] = ledger.ledger.usage_rows(scope, name, since, until)
    return [(r.line.name, r.sk, r.calls, r.input_tokens, r.output_tokens, r.cost) for r in rows]


def test_a_call_without_a_budget_writes_its_usage_once_after(ledger: Ledger) -> None:
    budgets = Budgets(BudgetPolicy(), ledger.ledger, clock=FixedClock(NOW))
    alone = budgets.reserve(_call(teams=()))
    assert ledger.writes == []

    budgets.settle(alone, Usage(input_tokens=1000, output_tokens=0), version=1, variant="a")
    # one item: a plain conditional-free update on DynamoDB, no transaction
    assert ledger.writes == ["UpdateItem" if ledger.kind == "dynamodb" else "adjust"]

    with_teams = budgets.reserve(_call(teams=("support", "billing")))
    budgets.settle(with_teams, Usage(input_tokens=0, output_tokens=500), version=1, variant="a")
    assert ledger.writes[1:] == ["TransactWriteItems" if ledger.kind == "dynamodb" else "adjust"]
    assert _counts(ledger, Scope.PROMPT) == [
        ("summary", "DAY#2026-12-07#V1#a", 2, 1000, 500, Decimal("0.002"))
    ]
    assert _counts(ledger, Scope.TEAM) == [
        ("billing", "DAY#2026-12-07#summary", 1, 0, 500, Decimal("0.001")),
        ("support", "DAY#2026-12-07#summary", 1, 0, 500, Decimal("0.001")),
    ]


def test_usage_is_read_by_name_and_by_day_in_the_period(ledger: Ledger) -> None:
    # calls of summary on 30 November, 1 and 2 December; of triage on 30 November, 1 December
    for prompt, days in (("summary", 3), ("triage", 2)):
        clock = FixedClock(datetime(2026, 11, 30, 23, tzinfo=UTC))
        budgets = Budgets(BudgetPolicy(), ledger.ledger, clock=clock)
        for _ in range(days):
            done = budgets.reserve(_call(prompt=prompt, teams=("support",)))
            budgets.settle(done, Usage(input_tokens=1000, output_tokens=0), version=1,
                           variant="champion")  # fmt: skip
            clock.advance(timedelta(days=1))

    december = {"since": date(2026, 12, 1), "until": date(2026, 12, 31)}
    assert [(n, sk) for n, sk, *_ in _counts(ledger, Scope.PROMPT, **december)] == [
        ("summary", "DAY#2026-12-01#V1#champion"),
        ("summary", "DAY#2026-12-02#V1#champion"),
        ("triage", "DAY#2026-12-01#V1#champion"),
    ]
    assert [sk for _, sk, *_ in _counts(ledger, Scope.PROMPT, "triage", **december)] == [
        "DAY#2026-12-01#V1#champion"
    ]
    one_day = {"since": date(2026, 12, 2), "until": date(2026, 12, 2)}
    assert [(n, sk) for n, sk, *_ in _counts(ledger, Scope.TEAM, "support", **one_day)] == [
        ("support", "DAY#2026-12-02#summary")
    ]
    assert _counts(ledger, Scope.PROMPT, "nothing", **december) == []
    # the budget items and alerts in the same table are never usage
    assert all(n in {"summary", "triage"} for n, *_ in _counts(ledger, Scope.PROMPT, **december))


def test_a_refusal_names_the_budget_and_charges_nothing(ledger: Ledger) -> None:
    # The team's month has room for one call; the prompt's budgets have room for many.
    budgets = _budgets(ledger, team=BudgetLimits(month=Decimal("0.005")))
    first = budgets.reserve(_call())

    with pytest.raises(BudgetExceededError) as refused:
        budgets.reserve(_call())

    err = refused.value
    assert err.details["budget"] == "team:support"
    assert err.details["period_key"] == "2026-12"
    # 22:00 on 7 December to midnight on 1 January
    assert err.retry_after == int(timedelta(days=24, hours=2).total_seconds())
    assert all(ledger.ledger.spent(line) == first.amount for line in first.lines)


def test_a_failed_call_settles_to_nothing_in_the_periods_it_reserved(ledger: Ledger) -> None:
    clock = FixedClock(datetime(2026, 12, 7, 23, 59, 59, tzinfo=UTC))
    budgets = _budgets(ledger, clock)
    reservation = budgets.reserve(_call())
    clock.advance(timedelta(seconds=2))  # the call ends on the next day

    assert budgets.settle(reservation, Usage(input_tokens=0, output_tokens=0)) == 0

    assert all(ledger.ledger.spent(line) == 0 for line in reservation.lines)
    assert {line.period_key for line in reservation.lines} == {"2026-12-07", "2026-12"}
    tomorrow = budgets.lines(_call(), clock.now())
    assert [ledger.ledger.spent(line) for line in tomorrow if line.period == "day"] == [0]


def test_threads_never_overspend_and_settle_to_the_actual_costs(ledger: Ledger) -> None:
    limit = Decimal("0.1")  # room for 33 worst cases of 0.003
    budgets = _budgets(ledger, prompt=BudgetLimits(day=limit))
    admitted: list[Decimal] = []
    refused: list[int] = []
    lock = threading.Lock()

    def caller(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(20):
            try:
                reservation: Reservation = budgets.reserve(_call())
            except BudgetExceededError as err:
                with lock:
                    refused.append(err.retry_after)
                continue
            usage = Usage(input_tokens=rng.randint(0, 1000), output_tokens=rng.randint(0, 1000))
            actual = budgets.settle(reservation, usage)
            with lock:
                admitted.append(actual)

    threads = [threading.Thread(target=caller, args=(seed,)) for seed in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(admitted) + len(refused) == 32 * 20
    assert admitted
    assert refused
    day = budgets.lines(_call(), NOW)[0]
    spent = ledger.ledger.spent(day)
    assert spent == sum(admitted, Decimal(0))
    assert spent <= limit + Decimal("0.003")
    assert set(refused) == {7200}  # seconds from 22:00 to midnight
    # one write for each reservation tried, one for each settled
    assert len(ledger.writes) == 32 * 20 + len(admitted)
    # and every settled call was counted, to the exact cost
    assert [(calls, cost) for *_, calls, _, _, cost in _counts(ledger, Scope.PROMPT)] == [
        (len(admitted), sum(admitted, Decimal(0)))
    ]


def test_a_budget_alert_is_claimed_once_per_period(ledger: Ledger) -> None:
    from flywheel.llm.meter import ALERT_LEASE

    budgets = _budgets(ledger)
    day, month, team = budgets.lines(_call(), NOW)
    store = ledger.ledger

    assert store.claim_alert(day, NOW, ALERT_LEASE)
    assert not store.claim_alert(day, NOW + timedelta(minutes=5), ALERT_LEASE)  # pending
    assert store.claim_alert(month, NOW, ALERT_LEASE)  # another period, another alert
    store.alert_sent(day, "event-1", NOW)
    assert not store.claim_alert(day, NOW + ALERT_LEASE * 10, ALERT_LEASE)  # sent: never again

    # a run that could not put its event drops only its own claim
    assert store.claim_alert(team, NOW, ALERT_LEASE)
    store.release_alert(team, NOW - timedelta(seconds=1))
    assert not store.claim_alert(team, NOW + timedelta(minutes=1), ALERT_LEASE)
    store.release_alert(team, NOW)
    assert store.claim_alert(team, NOW + timedelta(minutes=1), ALERT_LEASE)
    # a claim whose run died is taken over after the lease
    assert store.claim_alert(month, NOW + ALERT_LEASE + timedelta(seconds=1), ALERT_LEASE)
    # the spend lines are untouched by alerts
    assert [store.spent(line) for line in (day, month, team)] == [0, 0, 0]


def test_threads_claim_an_alert_once(ledger: Ledger) -> None:
    from flywheel.llm.meter import ALERT_LEASE

    (day, *_) = _budgets(ledger).lines(_call(), NOW)
    won: list[bool] = []
    start = threading.Barrier(16)

    def claim() -> None:
        start.wait()
        won.append(ledger.ledger.claim_alert(day, NOW, ALERT_LEASE))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(won) == [False] * 15 + [True]


def _stubbed() -> tuple[Any, Any]:
    from botocore.stub import Stubber

    from flywheel.adapters.dynamodb_budgets import DynamoDbBudgetLedger

    client = boto3_session().client("dynamodb")
    return DynamoDbBudgetLedger("budgets", client=client), Stubber(client)


def _cancelled(stubber: Any, *codes: str) -> None:
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        modeled_fields={"CancellationReasons": [{"Code": code} for code in codes]},
    )


def test_dynamodb_tries_a_conflicting_reservation_again_and_reports_a_refusal() -> None:
    ledger, stubber = _stubbed()
    lines = _budgets(Ledger("dynamodb", ledger, [])).lines(_call(), NOW)
    _cancelled(stubber, "None", "TransactionConflict", "None")
    stubber.add_response("transact_write_items", {})
    _cancelled(stubber, "None", "None", "ConditionalCheckFailed")

    with stubber:
        assert ledger.reserve(lines, Decimal("0.003")) is None
        assert ledger.reserve(lines, Decimal("0.003")) == 2

    stubber.assert_no_pending_responses()


def test_dynamodb_failures_are_a_store_error_without_the_library_text() -> None:
    from flywheel.adapters.dynamodb_budgets import BudgetStoreError

    ledger, stubber = _stubbed()
    lines = _budgets(Ledger("dynamodb", ledger, [])).lines(_call(), NOW)
    stubber.add_client_error("transact_write_items", "InternalServerError", "secret detail")
    for _ in range(5):
        _cancelled(stubber, "TransactionConflict", "None", "None")

    with stubber:
        with pytest.raises(BudgetStoreError, match="could not be reserved") as failed:
            ledger.reserve(lines, Decimal("0.003"))
        assert "secret" not in str(failed.value)
        with pytest.raises(BudgetStoreError, match="could not be settled"):
            ledger.adjust(lines, Decimal("-0.001"))


def test_dynamodb_refuses_a_single_budget_reservation_with_one_update() -> None:
    ledger, stubber = _stubbed()
    policy = BudgetPolicy(prompts={"summary": BudgetLimits(day=Decimal(1))})
    (line,) = Budgets(policy, ledger, clock=FixedClock(NOW)).lines(_call(teams=()), NOW)
    stubber.add_client_error("update_item", "ConditionalCheckFailedException")
    stubber.add_client_error("update_item", "InternalServerError", "secret detail")

    with stubber:
        assert ledger.reserve([line], Decimal("0.003")) == 0
        with pytest.raises(Exception, match="could not be reserved") as failed:
            ledger.reserve([line], Decimal("0.003"))
    assert "secret" not in str(failed.value)
    stubber.assert_no_pending_responses()
