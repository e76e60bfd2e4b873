"""Label claims in the idempotency table: one conditional put per labelled prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import FlywheelError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from mypy_boto3_dynamodb.client import DynamoDBClient

__all__ = ["DynamoDbLabelClaims", "LabelStoreError"]

#: BatchGetItem reads at most 100 keys per call.
_BATCH = 100


class LabelStoreError(FlywheelError):
    """The idempotency table could not be read or written (a 5xx: retry the request)."""

    code = "label_store_error"


class DynamoDbLabelClaims:
    """``LabelClaims`` on the idempotency table (``id`` key, ``expiration`` TTL in epoch s).

    Each item is ``{"id": claim key, "label": canonical JSON, "expiration": epoch}``;
    a claim is ``PutItem`` with ``attribute_not_exists(id)``, so two concurrent requests
    cannot both label one prediction. Library errors become :class:`LabelStoreError`
    without their text.

    Examples
    --------
    >>> claims = DynamoDbLabelClaims("flywheel-idempotency", client=dynamodb)  # doctest: +SKIP
    >>> claims.claim("feedback#churn#r-1#0", '"yes"', expires_at=later)  # doctest: +SKIP
    """

    def __init__(self, table: str, *, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self._client: DynamoDBClient = client or boto3.client("dynamodb")

    def find(self, keys: Sequence[str]) -> dict[str, str]:
        unique = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        for start in range(0, len(unique), _BATCH):
            pending = {
                self.table: {
                    "Keys": [{"id": {"S": k}} for k in unique[start : start + _BATCH]],
                    "ConsistentRead": True,
                    "ProjectionExpression": "#id, #label",
                    "ExpressionAttributeNames": {"#id": "id", "#label": "label"},
                }
            }
            for _ in range(8):
                try:
                    response = self._client.batch_get_item(RequestItems=pending)  # type: ignore[arg-type]
                except (ClientError, BotoCoreError) as err:
                    raise LabelStoreError("labels could not be checked; try again") from err
                for item in response.get("Responses", {}).get(self.table, []):
                    found[item["id"]["S"]] = item["label"]["S"]
                pending = response.get("UnprocessedKeys") or {}  # type: ignore[assignment]
                if not pending:
                    break
            else:
                raise LabelStoreError("labels could not be checked (throttled); try again")
        return found

    def claim(self, key: str, label: str, *, expires_at: datetime) -> str | None:
        try:
            self._client.put_item(
                TableName=self.table,
                Item={
                    "id": {"S": key},
                    "label": {"S": label},
                    "expiration": {"N": str(int(expires_at.timestamp()))},
                },
                ConditionExpression="attribute_not_exists(#id)",
                ExpressionAttributeNames={"#id": "id"},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                response: dict[str, Any] = dict(err.response)
                item: dict[str, Any] = response.get("Item") or {}
                holder = item.get("label", {}).get("S")
                return holder if holder is not None else self.find([key]).get(key, label)
            raise LabelStoreError("the label could not be stored; try again") from err
        except BotoCoreError as err:
            raise LabelStoreError("the label could not be stored; try again") from err
        return None

    def release(self, key: str, label: str) -> None:
        try:
            self._client.delete_item(
                TableName=self.table,
                Key={"id": {"S": key}},
                ConditionExpression="#label = :label",
                ExpressionAttributeNames={"#label": "label"},
                ExpressionAttributeValues={":label": {"S": label}},
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise LabelStoreError("a label claim could not be released") from err
        except BotoCoreError as err:
            raise LabelStoreError("a label claim could not be released") from err
