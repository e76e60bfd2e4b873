"""The online feature store in DynamoDB (:data:`~flywheel.resources.ONLINE_FEATURES_TABLE`).

One item per (view version, entity): ``pk = "<view>#<entity id>"``, ``sk = "v<version>"``,
``ev``/``cr`` (event and created time, µs), ``h`` (digest of the values) and one
attribute ``f:<feature>`` per feature. Reads use ``BatchGetItem`` (at most 100 keys
a call, a projection of the features asked for, unprocessed keys retried with
backoff); writes are conditional ``PutItem`` calls, so an older value never
replaces a newer one and re-writing a value changes nothing.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.adapters.dynamodb import StorageError
from flywheel.features.models import FeatureType, OnlineRow, WriteCounts

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mypy_boto3_dynamodb.client import DynamoDBClient

    from flywheel.features.models import FeatureValue, ViewKey

#: BatchGetItem takes at most 100 keys per call.
MAX_BATCH_KEYS = 100

_GUARD = (
    "attribute_not_exists(#pk) OR #ev < :ev OR (#ev = :ev AND #cr < :cr)"
    " OR (#ev = :ev AND #cr = :cr AND #h <> :h)"
)


def _encode(value: FeatureValue) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}  # the shortest text that reads back as the same float
    return {"S": str(value)}


def _decode(attribute: dict[str, Any], dtype: FeatureType) -> FeatureValue:
    if "NULL" in attribute:
        return None
    if "BOOL" in attribute:
        return bool(attribute["BOOL"])
    if "S" in attribute:
        return str(attribute["S"])
    text = str(attribute["N"])
    return int(text) if dtype is FeatureType.INT else float(text)


class DynamoDbOnlineStore:
    """Online feature rows in DynamoDB.

    Parameters
    ----------
    table_name
        The online features table.
    client
        A DynamoDB client (default: ``boto3.client("dynamodb")``).
    consistent_read
        Strongly consistent reads (twice the read cost); eventually consistent by default.
    max_attempts
        Calls per batch before unprocessed keys fail the read.
    max_workers
        Concurrent conditional writes during materialization.

    Examples
    --------
    >>> store = DynamoDbOnlineStore("online-features", client=dynamodb)  # doctest: +SKIP
    >>> store.read(ViewKey("customer-stats", 1), ["c1"], {"spend": "float"})  # doctest: +SKIP
    {'c1': OnlineRow(entity_id='c1', ...)}
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        consistent_read: bool = False,
        max_attempts: int = 8,
        max_workers: int = 1,
        base_delay: float = 0.025,
    ) -> None:
        self.table_name = table_name
        self.client: DynamoDBClient = client or boto3.client("dynamodb")
        self.consistent_read = consistent_read
        self.max_attempts = max_attempts
        self.max_workers = max_workers
        self.base_delay = base_delay

    @staticmethod
    def _key(view: ViewKey, entity_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{view.name}#{entity_id}"}, "sk": {"S": f"v{view.version}"}}

    # -- writes -----------------------------------------------------------------------------------
    def write(self, view: ViewKey, rows: Sequence[OnlineRow]) -> WriteCounts:
        counts = WriteCounts()
        if self.max_workers > 1 and len(rows) > 1:
            with ThreadPoolExecutor(self.max_workers) as pool:
                for outcome in pool.map(lambda row: self._put(view, row), rows):
                    counts += outcome
            return counts
        for row in rows:
            counts += self._put(view, row)
        return counts

    def _put(self, view: ViewKey, row: OnlineRow) -> WriteCounts:
        item: dict[str, Any] = {
            **self._key(view, row.entity_id),
            "ev": {"N": str(row.event_us)},
            "cr": {"N": str(row.created_us)},
            "h": {"S": row.digest},
        }
        item.update({f"f:{name}": _encode(value) for name, value in row.values.items()})
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=_GUARD,
                ExpressionAttributeNames={"#pk": "pk", "#ev": "ev", "#cr": "cr", "#h": "h"},
                ExpressionAttributeValues={
                    ":ev": item["ev"],
                    ":cr": item["cr"],
                    ":h": item["h"],
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise StorageError(f"could not write online features of {view}") from err
            old: dict[str, Any] = dict(err.response).get("Item") or {}  # type: ignore[assignment]
            newer = (int(old.get("ev", {}).get("N", 0)), int(old.get("cr", {}).get("N", 0))) > (
                row.event_us,
                row.created_us,
            )
            return WriteCounts(stale=1) if newer else WriteCounts(unchanged=1)
        except BotoCoreError as err:
            raise StorageError(f"could not write online features of {view}") from err
        return WriteCounts(written=1)

    # -- reads ------------------------------------------------------------------------------------
    def read(
        self,
        view: ViewKey,
        entity_ids: Sequence[str],
        features: Mapping[str, FeatureType],
    ) -> dict[str, OnlineRow]:
        names = {"#pk": "pk", "#ev": "ev", "#cr": "cr", "#h": "h"}
        aliases: dict[str, str] = {}
        for i, feature in enumerate(features):
            names[f"#f{i}"] = f"f:{feature}"
            aliases[f"f:{feature}"] = feature
        projection = ", ".join(names)
        prefix = len(view.name) + 1
        found: dict[str, OnlineRow] = {}
        unique = list(dict.fromkeys(entity_ids))
        for start in range(0, len(unique), MAX_BATCH_KEYS):
            keys = [self._key(view, e) for e in unique[start : start + MAX_BATCH_KEYS]]
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": keys,
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": names,
                    "ConsistentRead": self.consistent_read,
                }
            }
            for item in self._batch_get(request):
                entity = str(item["pk"]["S"])[prefix:]
                values = {
                    aliases[a]: _decode(item[a], features[aliases[a]]) if a in item else None
                    for a in aliases
                }
                found[entity] = OnlineRow(
                    entity, int(item["ev"]["N"]), int(item["cr"]["N"]), values, item["h"]["S"]
                )
        return found

    def _batch_get(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for attempt in range(self.max_attempts):
            response: Any
            try:
                response = self.client.batch_get_item(RequestItems=request)
            except ClientError as err:
                code = err.response["Error"]["Code"]
                if code not in {"ProvisionedThroughputExceededException", "ThrottlingException"}:
                    raise StorageError("could not read online features") from err
                response = {"Responses": {}, "UnprocessedKeys": request}
            except BotoCoreError as err:
                raise StorageError("could not read online features") from err
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed.get(self.table_name, {}).get("Keys"):
                return items
            request = dict(unprocessed)
            time.sleep(random.uniform(0, self.base_delay * 2**attempt))
        raise StorageError(
            f"online feature read still had unprocessed keys after {self.max_attempts} calls"
        )
