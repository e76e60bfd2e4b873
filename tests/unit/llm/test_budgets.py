"""Budgets: the policy refuses bad limits and names, a call is charged to the budgets that
apply in UTC days and months, and a refusal says which budget and when to retry."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
from flywheel.clock import FixedClock
from flywheel.errors import BudgetExceededError, ConfigError, http_status_for
from flywheel.llm.budgets import (
    BudgetCall,
    BudgetLimits,
    BudgetPolicy,
    Budgets,
    UsageLine,
    estimate_input_tokens,
)
from flywheel.llm.prices import default_prices
from flywheel.llm.prompts import RenderedPrompt
from flywheel.llm.providers import Usage

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _call(**kw: Any) -> BudgetCall:
    values: dict[str, Any] = {
        "prompt": "summary", "provider": "local", "model_id": "local.stand-in",
        "input_tokens": 1000, "max_tokens": 1000, **kw,
    }  # fmt: skip
    return BudgetCall.model_validate(values)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"teams": {"Support": {"day": 1}}}, "team 'Support'"),
        ({"prompts": {"Not A Name": {"day": 1}}}, "prompts"),
        ({"prompts": {"summary": {}}}, "a day, a month or both"),
        ({"prompts": {"summary": {"day": 0}}}, "greater than 0"),
        ({"prompts": {"summary": {"day": 5, "month": 1}}}, "day limit 5 is above month limit 1"),
        ({"currency": "usd"}, "currency"),
    ],
)
def test_a_bad_policy_is_refused_naming_what_is_wrong(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BudgetPolicy.model_validate(policy)


def test_budgets_refuse_a_policy_in_another_currency_than_the_prices() -> None:
    with pytest.raises(ValueError, match="budgets are in EUR, prices in USD"):
        Budgets(BudgetPolicy(currency="EUR"), InMemoryBudgetLedger())


def test_a_call_is_charged_to_its_prompt_and_each_budgeted_team_once() -> None:
    policy = BudgetPolicy(
        prompts={"summary": BudgetLimits(day=Decimal(1))},
        teams={"support": BudgetLimits(day=Decimal(2), month=Decimal(9))},
    )
    budgets = Budgets(policy, InMemoryBudgetLedger())
    now = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)

    lines = budgets.lines(_call(teams=("support", "unbudgeted", "support")), now)

    assert [(line.pk, line.sk, line.limit) for line in lines] == [
        ("BUDGET#prompt#summary", "DAY#2026-02-28", Decimal(1)),
        ("BUDGET#team#support", "DAY#2026-02-28", Decimal(2)),
        ("BUDGET#team#support", "MONTH#2026-02", Decimal(9)),
    ]


def test_a_call_without_budgets_writes_only_its_usage_once_after() -> None:
    ledger = InMemoryBudgetLedger()
    budgets = Budgets(BudgetPolicy(), ledger, clock=FixedClock(datetime(2026, 12, 7, tzinfo=UTC)))

    reservation = budgets.reserve(_call())
    assert (reservation.lines, ledger.writes) == ((), 0)
    budgets.settle(reservation, Usage(input_tokens=10, output_tokens=10), version=2,
                   variant="canary")  # fmt: skip

    assert ledger.writes == 1
    assert ledger.amounts == {}
    assert ledger.usage == {
        ("USAGE#prompt#summary", "DAY#2026-12-07#V2#canary"): (1, 10, 10, Decimal("0.00003"))
    }


def test_usage_lines_name_the_prompt_version_variant_and_each_team_once() -> None:
    ledger = InMemoryBudgetLedger()
    budgets = Budgets(BudgetPolicy(), ledger, clock=FixedClock(datetime(2026, 12, 7, tzinfo=UTC)))

    reservation = budgets.reserve(_call(teams=("support", "billing", "support")))
    budgets.settle(reservation, Usage(input_tokens=0, output_tokens=0))

    assert sorted(ledger.usage) == [
        ("USAGE#prompt#summary", "DAY#2026-12-07#V-#-"),
        ("USAGE#team#billing", "DAY#2026-12-07#summary"),
        ("USAGE#team#support", "DAY#2026-12-07#summary"),
    ]
    assert set(ledger.usage.values()) == {(1, 0, 0, Decimal(0))}  # a failed call is a call


@pytest.mark.parametrize(
    ("pk", "sk"),
    [
        ("USAGE#prompt#summary", "DAY#2026-12-07#V3"),
        ("USAGE#prompt#summary", "DAY#2026-13-07#V3#canary"),
        ("USAGE#prompt#summary", "DAY#2026-12-07#Vx#canary"),
        ("USAGE#team#support", "DAY#2026-12-07"),
        ("USAGE#model#summary", "DAY#2026-12-07#V3#canary"),
        ("BUDGET#prompt#summary", "DAY#2026-12-07"),
        ("BUDGET#prompt#summary", "ALERT#DAY#2026-12-07"),
    ],
)
def test_other_items_are_not_usage_lines(pk: str, sk: str) -> None:
    assert UsageLine.parse(pk, sk) is None


def test_a_bad_variant_or_version_is_refused_before_anything_is_written() -> None:
    ledger = InMemoryBudgetLedger()
    budgets = Budgets(BudgetPolicy(), ledger)
    reservation = budgets.reserve(_call())

    with pytest.raises(ValidationError, match="variant"):
        budgets.settle(reservation, Usage(input_tokens=1, output_tokens=1), variant="A#B")
    with pytest.raises(ValidationError, match="version"):
        budgets.settle(reservation, Usage(input_tokens=1, output_tokens=1), version=0)
    assert ledger.writes == 0


def test_the_worst_case_is_priced_from_the_price_table() -> None:
    policy = BudgetPolicy(prompts={"summary": BudgetLimits(month=Decimal(1))})
    budgets = Budgets(policy, InMemoryBudgetLedger())

    reservation = budgets.reserve(_call(provider="bedrock", model_id=HAIKU, max_tokens=400))

    expected = default_prices().cost(Usage(input_tokens=1000, output_tokens=400), HAIKU)
    assert reservation.amount == expected == Decimal("0.00075")


def test_a_call_that_could_never_fit_is_refused_without_a_write() -> None:
    ledger = InMemoryBudgetLedger()
    clock = FixedClock(datetime(2026, 12, 31, 12, tzinfo=UTC))
    policy = BudgetPolicy(prompts={"summary": BudgetLimits(month=Decimal("0.001"))})

    with pytest.raises(BudgetExceededError) as refused:
        Budgets(policy, ledger, clock=clock).reserve(_call())

    assert ledger.writes == 0
    assert refused.value.retry_after == 12 * 3600  # the month ends at midnight, new year
    assert refused.value.field == "budget"
    assert http_status_for(refused.value) == 429
    assert refused.value.to_dict()["details"]["budget"] == "prompt:summary"


def test_an_unpriced_model_is_refused_before_anything_is_reserved() -> None:
    ledger = InMemoryBudgetLedger()
    policy = BudgetPolicy(prompts={"summary": BudgetLimits(day=Decimal(1))})

    with pytest.raises(ConfigError, match="has no price"):
        Budgets(policy, ledger).reserve(_call(model_id="no.such-model"))

    assert ledger.writes == 0


@pytest.mark.parametrize(
    ("system", "user", "tokens"),
    [
        ("", "", 16),
        ("You summarise.", "x" * 3000, 16 + 1000 + 5),
        ("", "日本語" * 100, 16 + 300),  # 3 bytes a character: one token each at most
    ],
)
def test_the_input_estimate_is_conservative(system: str, user: str, tokens: int) -> None:
    rendered = RenderedPrompt(system=system, user=user, sha256="0" * 64)
    assert estimate_input_tokens(rendered) == tokens


def test_a_call_names_at_most_eight_teams() -> None:
    with pytest.raises(ValidationError, match="teams"):
        _call(teams=tuple(f"t{i}" for i in range(9)))
