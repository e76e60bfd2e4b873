"""Budget spend in a DynamoDB table with ``pk``/``sk`` keys: one transaction per reserve
and per settle (ADR 79)."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import FlywheelError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from flywheel.llm.budgets import BudgetLine

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
    ``DAY#<yyyy-mm-dd>`` or ``MONTH#<yyyy-mm>`` with ``spent`` and ``calls`` (numbers).

    A reservation is one ``TransactWriteItems`` of one ``Update`` per line (``ADD spent
    :amount`` if ``spent`` is absent or at most ``limit - amount``); settling is one of
    ``ADD spent :delta``. Only a cancellation for a transaction conflict or throttling
    (nothing written) is tried again, at most 5 times with jitter.

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

    def adjust(self, lines: Sequence[BudgetLine], delta: Decimal) -> None:
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
        refused = self._transact(items, "settled")
        if refused is not None:
            raise BudgetStoreError(f"budget {lines[refused].budget} has no reservation to settle")

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
