"""Budget spend and usage counters in a DynamoDB table with ``pk``/``sk`` keys: one write
per reserve and per settle (ADR 79); the keys are listed in :mod:`flywheel.llm.budgets`."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.clock import isoformat
from flywheel.errors import FlywheelError
from flywheel.llm.budgets import UsageLine, UsageRow

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import date, datetime, timedelta

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef, UpdateTypeDef

    from flywheel.llm.budgets import BudgetLine, Scope, UsageCount

__all__ = ["BudgetStoreError", "DynamoDbBudgetLedger"]

#: Cancellations that mean "not written, try again" (another transaction held an item).
_RETRYABLE = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
_ATTEMPTS = 5


class BudgetStoreError(FlywheelError):
    """The budget table could not be read or written (a 5xx: retry the request)."""

    code = "budget_store_error"


def _number(value: Decimal) -> dict[str, str]:
    """A DynamoDB number, written without an exponent (``1E-7`` becomes ``0.0000001``)."""
    return {"N": format(value, "f")}


class DynamoDbBudgetLedger:
    """``BudgetLedger`` on a ``pk``/``sk`` table: item ``BUDGET#<scope>#<name>`` /
    ``DAY#<yyyy-mm-dd>`` or ``MONTH#<yyyy-mm>`` with ``spent`` and ``calls`` (numbers);
    usage counters ``USAGE#...`` with ``calls``, ``input_tokens``, ``output_tokens`` and
    ``cost``; alert records ``BUDGET#...`` / ``ALERT#...``.

    A reservation is one ``TransactWriteItems`` of one ``Update`` per line (``ADD spent
    :amount`` if ``spent`` is absent or at most ``limit - amount``); settling is one of
    ``ADD spent :delta`` per budget line plus ``ADD calls, input_tokens, output_tokens,
    cost`` per usage line. A write of a single item is an ``UpdateItem`` instead (the same
    expressions, half the write units, no transaction conflicts). Only a cancellation for
    a transaction conflict or throttling (nothing written) is tried again, at most 5
    times with jitter.

    Examples
    --------
    >>> ledger = DynamoDbBudgetLedger("flywheel-registry", client=dynamodb)  # doctest: +SKIP
    >>> ledger.reserve(lines, Decimal("0.004"))  # doctest: +SKIP
    """

    def __init__(self, table: str, *, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self._client: DynamoDBClient = client or boto3.client("dynamodb")

    def _key(self, line: BudgetLine) -> dict[str, Any]:
        return {"pk": {"S": line.pk}, "sk": {"S": line.sk}}

    def reserve(self, lines: Sequence[BudgetLine], amount: Decimal) -> int | None:
        items: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(line),
                    "UpdateExpression": "ADD #spent :amount, #calls :one SET #limit = :limit",
                    "ConditionExpression": "attribute_not_exists(#spent) OR #spent <= :room",
                    "ExpressionAttributeNames": {
                        "#spent": "spent",
                        "#calls": "calls",
                        "#limit": "limit",
                    },
                    "ExpressionAttributeValues": {
                        ":amount": _number(amount),
                        ":one": {"N": "1"},
                        ":limit": _number(line.limit),
                        ":room": _number(line.limit - amount),
                    },
                }
            }
            for line in lines
        ]
        return self._transact(items, "reserved")

    def adjust(
        self, lines: Sequence[BudgetLine], delta: Decimal, usage: UsageCount | None = None
    ) -> None:
        items: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(line),
                    "UpdateExpression": "ADD #spent :delta",
                    "ConditionExpression": "attribute_exists(#spent)",
                    "ExpressionAttributeNames": {"#spent": "spent"},
                    "ExpressionAttributeValues": {":delta": _number(delta)},
                }
            }
            for line in lines
        ]
        if usage is not None:
            items += [{"Update": self._count(counter, usage)} for counter in usage.lines]
        if not items:
            return
        refused = self._transact(items, "settled")
        if refused is not None:
            raise BudgetStoreError(f"budget {lines[refused].budget} has no reservation to settle")

    def _count(self, line: UsageLine, usage: UsageCount) -> UpdateTypeDef:
        return {
            "TableName": self.table,
            "Key": {"pk": {"S": line.pk}, "sk": {"S": line.sk}},
            "UpdateExpression": "ADD #calls :calls, #in :in, #out :out, #cost :cost",
            "ExpressionAttributeNames": {
                "#calls": "calls",
                "#in": "input_tokens",
                "#out": "output_tokens",
                "#cost": "cost",
            },
            "ExpressionAttributeValues": {
                ":calls": {"N": str(usage.calls)},
                ":in": {"N": str(usage.input_tokens)},
                ":out": {"N": str(usage.output_tokens)},
                ":cost": _number(usage.cost),
            },
        }

    def usage_rows(
        self, scope: Scope, name: str | None, since: date, until: date
    ) -> list[UsageRow]:
        """A ``Query`` of ``USAGE#<scope>#<name>`` when ``name`` is given; else a ``Scan``
        of the usage lines of ``scope`` (the table holds one item per prompt, version,
        variant and day: a report reads it whole rather than keep an index item that
        every call would contend for)."""
        bounds = {
            ":from": {"S": f"DAY#{since.isoformat()}"},
            ":to": {"S": f"DAY#{until.isoformat()}~"},  # '~' sorts after '#'
        }
        names = {"#pk": "pk", "#sk": "sk"}
        rows = []
        for item in self._pages(scope, name, names, bounds):
            line = UsageLine.parse(item["pk"]["S"], item["sk"]["S"])
            if line is None:
                continue
            rows.append(
                UsageRow(
                    line=line,
                    calls=int(item.get("calls", {}).get("N", "0")),
                    input_tokens=int(item.get("input_tokens", {}).get("N", "0")),
                    output_tokens=int(item.get("output_tokens", {}).get("N", "0")),
                    cost=Decimal(item.get("cost", {}).get("N", "0")),
                )
            )
        return sorted(rows, key=lambda r: (r.line.pk, r.line.sk))

    def _pages(
        self,
        scope: Scope,
        name: str | None,
        names: dict[str, str],
        bounds: dict[str, Any],
    ) -> Iterator[dict[str, Any]]:
        try:
            if name is not None:
                paginator: Any = self._client.get_paginator("query")
                pages = paginator.paginate(
                    TableName=self.table,
                    KeyConditionExpression="#pk = :pk AND #sk BETWEEN :from AND :to",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={**bounds, ":pk": {"S": f"USAGE#{scope}#{name}"}},
                )
            else:
                paginator = self._client.get_paginator("scan")
                pages = paginator.paginate(
                    TableName=self.table,
                    FilterExpression="begins_with(#pk, :prefix) AND #sk BETWEEN :from AND :to",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={**bounds, ":prefix": {"S": f"USAGE#{scope}#"}},
                )
            for page in pages:
                yield from page.get("Items", [])
        except (ClientError, BotoCoreError) as err:
            raise BudgetStoreError("usage counters could not be read; try again") from err

    # -- budget alerts (flywheel.llm.meter.AlertLog) -------------------------------------------
    def _alert_key(self, line: BudgetLine) -> dict[str, Any]:
        return {"pk": {"S": line.pk}, "sk": {"S": f"ALERT#{line.sk}"}}

    def claim_alert(self, line: BudgetLine, now: datetime, lease: timedelta) -> bool:
        """Record a pending alert for ``line``'s period unless one was sent, or another
        run claimed it less than ``lease`` ago (one conditional ``UpdateItem``)."""
        try:
            self._client.update_item(
                TableName=self.table,
                Key=self._alert_key(line),
                UpdateExpression="SET #state = :pending, #at = :now, #limit = :limit",
                ConditionExpression=(
                    "attribute_not_exists(#state) OR (#state = :pending AND #at < :stale)"
                ),
                ExpressionAttributeNames={
                    "#state": "state",
                    "#at": "claimed_at",
                    "#limit": "limit",
                },
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":now": {"S": isoformat(now)},
                    ":stale": {"S": isoformat(now - lease)},
                    ":limit": _number(line.limit),
                },
            )
        except ClientError as err:
            if _error_code(err) == "ConditionalCheckFailedException":
                return False
            raise BudgetStoreError("the budget alert could not be recorded; try again") from err
        except BotoCoreError as err:
            raise BudgetStoreError("the budget alert could not be recorded; try again") from err
        return True

    def alert_sent(self, line: BudgetLine, event_id: str, now: datetime) -> None:
        try:
            self._client.update_item(
                TableName=self.table,
                Key=self._alert_key(line),
                UpdateExpression="SET #state = :sent, #event = :event, #sent_at = :now",
                ExpressionAttributeNames={
                    "#state": "state",
                    "#event": "event_id",
                    "#sent_at": "sent_at",
                },
                ExpressionAttributeValues={
                    ":sent": {"S": "sent"},
                    ":event": {"S": event_id},
                    ":now": {"S": isoformat(now)},
                },
            )
        except (ClientError, BotoCoreError) as err:
            raise BudgetStoreError("the budget alert could not be recorded; try again") from err

    def release_alert(self, line: BudgetLine, now: datetime) -> None:
        """Drop this run's pending claim (its event could not be put), so the next run
        tries again; a claim another run took meanwhile stays."""
        try:
            self._client.delete_item(
                TableName=self.table,
                Key=self._alert_key(line),
                ConditionExpression="#state = :pending AND #at = :now",
                ExpressionAttributeNames={"#state": "state", "#at": "claimed_at"},
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":now": {"S": isoformat(now)},
                },
            )
        except ClientError as err:
            if _error_code(err) != "ConditionalCheckFailedException":
                raise BudgetStoreError("the budget alert could not be released") from err
        except BotoCoreError as err:
            raise BudgetStoreError("the budget alert could not be released") from err

    def spent(self, line: BudgetLine) -> Decimal:
        try:
            item = self._client.get_item(
                TableName=self.table, Key=self._key(line), ConsistentRead=True
            ).get("Item", {})
        except (ClientError, BotoCoreError) as err:
            raise BudgetStoreError("budget spend could not be read; try again") from err
        value = item.get("spent", {}).get("N")
        return Decimal(value) if value is not None else Decimal(0)

    def _transact(self, items: list[TransactWriteItemTypeDef], verb: str) -> int | None:
        """Write ``items`` at once; the index of an item whose condition failed, or None."""
        if len(items) == 1:
            return self._update(items[0]["Update"], verb)
        for attempt in range(_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=items)
                return None
            except ClientError as err:
                response: dict[str, Any] = dict(err.response)
                if response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise BudgetStoreError(f"the budget could not be {verb}; try again") from err
                codes = [r.get("Code", "None") for r in response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in codes:
                    return codes.index("ConditionalCheckFailed")
                if not _RETRYABLE.intersection(codes) or attempt == _ATTEMPTS - 1:
                    raise BudgetStoreError(f"the budget could not be {verb}; try again") from err
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
            except BotoCoreError as err:
                raise BudgetStoreError(f"the budget could not be {verb}; try again") from err
        raise BudgetStoreError(f"the budget could not be {verb}; try again")

    def _update(self, update: UpdateTypeDef, verb: str) -> int | None:
        """One item's update as an ``UpdateItem`` (the client retries throttling)."""
        try:
            self._client.update_item(**update)
        except ClientError as err:
            if _error_code(err) == "ConditionalCheckFailedException":
                return 0
            raise BudgetStoreError(f"the budget could not be {verb}; try again") from err
        except BotoCoreError as err:
            raise BudgetStoreError(f"the budget could not be {verb}; try again") from err
        return None


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
