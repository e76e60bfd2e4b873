"""Budget benchmark: what reserving and settling a call costs, one run.

Run: ``.venv/bin/python bench/budgets.py [--quick]``

For a call charged to four budgets (its prompt and one team, day and month), p50 and
p99 (ms, warm calls, one caller) of ``reserve`` + ``settle``:

- ``in memory``: the domain's own work (lines, worst-case price, settling) on the
  in-memory ledger: the part of a gateway call's overhead that is not I/O;
- ``moto``: the DynamoDB ledger against moto in process (two ``TransactWriteItems``);
  moto's speed says nothing of DynamoDB's round trips, only that the requests are made.

It also prints the ledger writes per call (the design says exactly two).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

from _timing import p50_p99_ms as _p50_p99_ms  # noqa: E402


def _rows(repeats: int) -> list[tuple[str, float, float, float]]:
    import boto3
    from moto import mock_aws

    from flywheel.adapters.dynamodb_budgets import DynamoDbBudgetLedger
    from flywheel.adapters.memory_budgets import InMemoryBudgetLedger
    from flywheel.clock import FixedClock
    from flywheel.llm.budgets import BudgetCall, BudgetLimits, BudgetPolicy, Budgets
    from flywheel.llm.providers import Usage
    from flywheel.local.provision import default_names, provision
    from flywheel.resources import REGISTRY_TABLE

    big = BudgetLimits(day=Decimal(10**6), month=Decimal(10**7))
    policy = BudgetPolicy(prompts={"ticket-summary": big}, teams={"support": big})
    clock = FixedClock(datetime(2026, 12, 7, 12, tzinfo=UTC))
    call = BudgetCall(prompt="ticket-summary", teams=("support",), provider="local",
                      model_id="local.stand-in", input_tokens=2000, max_tokens=300)  # fmt: skip
    usage = Usage(input_tokens=1500, output_tokens=180)

    def once(budgets: Budgets) -> None:
        budgets.settle(budgets.reserve(call), usage)

    rows: list[tuple[str, float, float, float]] = []
    memory = InMemoryBudgetLedger()
    p50, p99 = _p50_p99_ms(lambda: once(Budgets(policy, memory, clock=clock)), repeats)
    rows.append(("in memory", p50, p99, memory.writes / repeats))

    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        client = session.client("dynamodb")
        names = default_names("bench")
        provision(client, session.client("s3"), names, tables=(REGISTRY_TABLE,), buckets=())
        writes: list[str] = []
        client.meta.events.register(
            "before-call.dynamodb.TransactWriteItems", lambda **_: writes.append("w")
        )
        ledger = DynamoDbBudgetLedger(names[REGISTRY_TABLE.env_var], client=client)
        budgets = Budgets(policy, ledger, clock=clock)
        p50, p99 = _p50_p99_ms(lambda: once(budgets), repeats // 10)
        rows.append(("moto (in process)", p50, p99, len(writes) / (repeats // 10)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    repeats = 200 if parser.parse_args().quick else 2000
    print(f"{'ledger':20} {'p50 ms':>8} {'p99 ms':>8} {'writes/call':>12}")
    for label, p50, p99, writes in _rows(repeats):
        print(f"{label:20} {p50:8.3f} {p99:8.3f} {writes:12.1f}")


if __name__ == "__main__":
    main()
