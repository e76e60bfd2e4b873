"""The scheduled budget meter on moto, as its schedule runs it: ``BudgetUsedPercent`` per
budget line, and ``BudgetThresholdReached`` on the project bus once per budget and period,
however often it runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest

from flywheel.adapters.dynamodb_budgets import DynamoDbBudgetLedger
from flywheel.llm.budgets import BudgetLine
from functions.llm_budgets import handler as meter_handler
from tests.asl_walker import FakeContext

BUS = "flywheel-test-bus"
NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
POLICY = {
    "teams": {"support": {"month": "300"}},
    "prompts": {"ticket-summary": {"teams": ["support"], "budget": {"day": "5"}}},
}


@pytest.fixture
def queue(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The project bus with a rule copying ``flywheel.llm`` events to a queue; the meter's
    environment as ``infra/constructs/llm_budget_meter.py`` sets it."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    url = sqs.create_queue(QueueName="llm-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    events.put_rule(Name="llm", EventBusName=BUS,
                    EventPattern=json.dumps({"source": ["flywheel.llm"]}))  # fmt: skip
    events.put_targets(
        Rule="llm", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}]
    )
    environment = {
        **local_names,
        "FLYWHEEL_BACKEND": "aws",
        "FLYWHEEL_EVENT_BUS": BUS,
        "FLYWHEEL_EVENT_SOURCE": "flywheel.llm",
        "FLYWHEEL_LLM_POLICY": json.dumps(POLICY),
        "FLYWHEEL_NOW": NOW.isoformat(),
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(meter_handler.metrics, "namespace", "FlywheelTests")
    meter_handler._meter.cache_clear()
    yield url
    meter_handler._meter.cache_clear()


def _received(url: str) -> list[dict[str, Any]]:
    found = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in found.get("Messages", [])]


def _emf(output: str) -> dict[str, float]:
    docs = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    return {
        d["Budget"]: d["BudgetUsedPercent"]
        for d in docs
        if d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Budget"]]
    }


def test_each_run_reports_every_budget_and_alerts_once_per_period(
    queue: str, local_names: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the prompt's day budget 90 % spent (its calls reserved and settled as the
    # gateway does), the team's month 10 %
    ledger = DynamoDbBudgetLedger(local_names["FLYWHEEL_LLM_USAGE_TABLE"])
    day = BudgetLine(scope="prompt", name="ticket-summary", period="day",
                     period_key="2026-12-07", limit=Decimal(5))  # fmt: skip
    month = BudgetLine(scope="team", name="support", period="month", period_key="2026-12",
                       limit=Decimal(300))  # fmt: skip
    assert ledger.reserve([day], Decimal("4.5")) is None
    assert ledger.reserve([month], Decimal(30)) is None

    # When the schedule runs the meter, and runs it again five minutes later
    first = meter_handler.handler({"trigger": "schedule"}, FakeContext("llm-budgets"))
    gauges = _emf(capsys.readouterr().out)
    second = meter_handler.handler({"trigger": "schedule"}, FakeContext("llm-budgets"))

    # Then each budget line's share spent is a metric, dimension Budget
    assert gauges == {"prompt:ticket-summary:day": 90.0, "team:support:month": 10.0}
    assert [(b["budget"], b["alerted"]) for b in first["budgets"]] == [
        ("prompt:ticket-summary:day", True), ("team:support:month", False),
    ]  # fmt: skip
    assert [b["alerted"] for b in second["budgets"]] == [False, False]
    # and the bus got one BudgetThresholdReached, from flywheel.llm
    (event,) = _received(queue)
    assert (event["source"], event["detail-type"]) == ("flywheel.llm", "BudgetThresholdReached")
    keys = ("budget", "period", "period_key", "spent", "limit", "percent", "currency")
    assert {k: event["detail"][k] for k in keys} == {
        "budget": "prompt:ticket-summary",
        "period": "day",
        "period_key": "2026-12-07",
        "spent": "4.5",
        "limit": "5",
        "percent": 90.0,
        "currency": "USD",
    }
    # and the period's alert is recorded next to its spend line
    item = boto3.client("dynamodb").get_item(
        TableName=local_names["FLYWHEEL_LLM_USAGE_TABLE"],
        Key={"pk": {"S": day.pk}, "sk": {"S": f"ALERT#{day.sk}"}},
    )["Item"]
    assert item["state"]["S"] == "sent"
    assert ledger.spent(day) == Decimal("4.5")


def test_an_invalid_policy_fails_naming_the_variable(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.errors import ConfigError

    monkeypatch.setenv("FLYWHEEL_LLM_POLICY", json.dumps({"teams": {"Support": {"day": 1}}}))
    meter_handler._meter.cache_clear()

    with pytest.raises(ConfigError, match="FLYWHEEL_LLM_POLICY: teams"):
        meter_handler.handler({"trigger": "schedule"}, FakeContext("llm-budgets"))
    assert _received(queue) == []
