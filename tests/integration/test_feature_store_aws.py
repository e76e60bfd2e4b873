"""The feature store on S3 + DynamoDB (moto): zero skew, batched reads, guarded writes, resume.

The skew test runs on both backends (in memory and AWS adapters): the same entity at
the same time gets the same feature vector from a point-in-time training set and
from the online store after materialization.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pytest

from flywheel.adapters.dynamodb import StorageError
from flywheel.adapters.dynamodb_features import DynamoDbOnlineStore
from flywheel.clock import FixedClock
from flywheel.composition import AwsPlatform, InMemoryPlatform
from flywheel.features import FeatureStore
from flywheel.features.models import FeatureType, OnlineRow, ViewKey, values_digest
from flywheel.settings import Settings
from tests.feature_support import T0, TRANSFORMS, customer_view, random_history

#: After every row was created (histories span 30 days; late rows arrive ≤ 5 days late).
NOW = T0 + timedelta(days=36)
VIEW = "customer-orders"


def _aws_store(names: dict[str, str], clock: FixedClock, **kwargs: Any) -> FeatureStore:
    settings = Settings.of_deployment(names, backend="aws")
    store = AwsPlatform(settings, clock=clock).feature_store(write_workers=1, **kwargs)
    store.transformations = TRANSFORMS
    store.chunk_rows = 250
    return store


@pytest.fixture(params=["memory", "aws"])
def any_store(request: pytest.FixtureRequest) -> FeatureStore:
    clock = FixedClock(NOW)
    if request.param == "memory":
        store = InMemoryPlatform(clock=clock).feature_store(
            transformations=TRANSFORMS, chunk_rows=250
        )
    else:
        store = _aws_store(request.getfixturevalue("local_names"), clock)
    store.register(customer_view(ttl=timedelta(days=10)), actor="ana@example.com")
    return store


@pytest.fixture
def aws_store(local_names: dict[str, str]) -> FeatureStore:
    store = _aws_store(local_names, FixedClock(NOW))
    store.register(customer_view(ttl=None), actor="ana@example.com")
    return store


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b and type(a) is type(b)


def test_training_and_serving_see_identical_feature_vectors(any_store: FeatureStore) -> None:
    # Given 30 days of orders (20% created late) ingested once, through the one transformation
    rng = np.random.default_rng(3)
    history = random_history(rng, entities=60, rows=900, days=30, late_share=0.2)
    report = any_store.ingest(VIEW, history)
    assert report.rows_rejected == 0
    # When it is materialized and both sides are asked about every entity at the same time
    any_store.materialize(VIEW)
    ids = [f"c{i}" for i in range(65)]  # five never seen
    entities = pa.table(
        {
            "customer_id": ids,
            "event_timestamp": pa.array([NOW] * len(ids), pa.timestamp("us", tz="UTC")),
        }
    )
    offline = any_store.training_set(VIEW, entities).to_pylist()
    online = any_store.online_features(VIEW, ids)
    # Then every served vector equals its training row, value for value and type for type
    names = list(online.features)
    compared = 0
    for row in offline:
        entity = row["customer_id"]
        if entity in online.rows:
            served = online.vector(entity)
            expected = [row[n] for n in names]
            assert all(_same(s, e) for s, e in zip(served, expected, strict=True)), entity
            compared += 1
        else:  # missing online <=> no value offline (never seen, or expired by the TTL)
            assert all(row[n] is None for n in names), entity
    assert compared > 40
    assert set(online.missing) >= {"c60", "c61", "c62", "c63", "c64"}
    assert len(online.expired) + len(online.missing) + compared == len(ids)


class CallCounter:
    """Counts DynamoDB API calls and keeps their parameters (a botocore event hook)."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.params: list[dict[str, Any]] = []
        client.meta.events.register("provide-client-params.dynamodb.*", self._count)

    def _count(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        self.params.append(params)


def _seed(store: DynamoDbOnlineStore, view: ViewKey, n: int) -> None:
    for i in range(n):
        values = {"spend": float(i) + 0.1, "orders": i, "segment": None}
        store.write(view, [OnlineRow(f"e{i}", 10, 10, values, values_digest(values))])


def test_batch_reads_use_at_most_100_keys_a_call_and_a_projection(
    local_names: dict[str, str],
) -> None:
    client = boto3.client("dynamodb")
    store = DynamoDbOnlineStore(local_names["FLYWHEEL_ONLINE_FEATURES_TABLE"], client=client)
    view = ViewKey("v", 1)
    _seed(store, view, 230)
    counter = CallCounter(client)
    ids = [f"e{i}" for i in range(240)] + ["e3"]  # ten unknown, one repeated
    rows = store.read(view, ids, {"orders": FeatureType.INT, "segment": FeatureType.STRING})
    # Then 3 calls of ≤100 distinct keys, each projecting the two features asked for
    assert counter.calls == Counter({"BatchGetItem": 3})
    sizes = [len(p["RequestItems"][store.table_name]["Keys"]) for p in counter.params]
    assert sizes == [100, 100, 40]
    assert len(rows) == 230
    assert "e235" not in rows
    assert rows["e7"].values == {"orders": 7, "segment": None}  # no spend: projected out
    request = counter.params[0]["RequestItems"][store.table_name]
    assert sorted(request["ExpressionAttributeNames"].values()) == sorted(
        ["pk", "ev", "cr", "h", "f:orders", "f:segment"]
    )


class ThrottlingClient:
    """A client whose BatchGetItem leaves some keys unprocessed, as DynamoDB does under load."""

    def __init__(self, client: Any, *, stingy_calls: int) -> None:
        self._client = client
        self.stingy_calls = stingy_calls
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls += 1
        if self.calls > self.stingy_calls:
            return dict(self._client.batch_get_item(RequestItems=RequestItems))
        [(table, request)] = RequestItems.items()
        served = {**request, "Keys": request["Keys"][:7]}
        response = dict(self._client.batch_get_item(RequestItems={table: served}))
        response["UnprocessedKeys"] = {table: {**request, "Keys": request["Keys"][7:]}}
        return response


def test_unprocessed_keys_are_retried_until_all_are_read(local_names: dict[str, str]) -> None:
    table = local_names["FLYWHEEL_ONLINE_FEATURES_TABLE"]
    view = ViewKey("v", 1)
    _seed(DynamoDbOnlineStore(table, client=boto3.client("dynamodb")), view, 50)
    flaky = ThrottlingClient(boto3.client("dynamodb"), stingy_calls=3)
    store = DynamoDbOnlineStore(table, client=flaky, base_delay=0.001)  # type: ignore[arg-type]
    rows = store.read(view, [f"e{i}" for i in range(50)], {"spend": FeatureType.FLOAT})
    assert len(rows) == 50
    assert rows["e42"].values == {"spend": 42.1}
    assert flaky.calls == 4
    # And a table that never catches up fails loudly instead of returning a partial answer
    hopeless = ThrottlingClient(boto3.client("dynamodb"), stingy_calls=100)
    store = DynamoDbOnlineStore(table, client=hopeless, max_attempts=3, base_delay=0.001)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="unprocessed keys"):
        store.read(view, [f"e{i}" for i in range(50)], {"spend": FeatureType.FLOAT})


def test_guarded_writes_never_regress_and_skip_no_ops(local_names: dict[str, str]) -> None:
    store = DynamoDbOnlineStore(
        local_names["FLYWHEEL_ONLINE_FEATURES_TABLE"], client=boto3.client("dynamodb")
    )
    view = ViewKey("v", 1)

    def row(event: int, created: int, spend: float) -> OnlineRow:
        values = {"spend": spend}
        return OnlineRow("e1", event, created, values, values_digest(values))

    assert store.write(view, [row(20, 20, 2.0)]).written == 1
    assert store.write(view, [row(20, 20, 2.0)]).unchanged == 1  # a re-run: nothing new
    assert store.write(view, [row(10, 30, 1.0)]).stale == 1  # older event, even if created later
    assert store.write(view, [row(20, 25, 2.5)]).written == 1  # a correction of the same event
    assert store.read(view, ["e1"], {"spend": FeatureType.FLOAT})["e1"].values == {"spend": 2.5}


def test_materialization_on_dynamodb_resumes_after_a_crash(
    aws_store: FeatureStore, local_names: dict[str, str]
) -> None:
    history = random_history(np.random.default_rng(9), entities=60, rows=1_000, late_share=0.3)
    aws_store.ingest(VIEW, history)
    # Given a connection that dies after 100 conditional writes
    client = aws_store.online.client  # type: ignore[attr-defined]
    puts = Counter[str]()

    def fail_after_100(**_: Any) -> None:
        puts["attempts"] += 1
        if puts["attempts"] == 101:
            raise ConnectionError("connection reset")

    client.meta.events.register("before-call.dynamodb.PutItem", fail_after_100)
    with pytest.raises(ConnectionError):
        aws_store.materialize(VIEW)
    stopped = aws_store.watermark(VIEW)
    client.meta.events.unregister("before-call.dynamodb.PutItem", fail_after_100)
    # When it runs again, it resumes where the last completed chunk ended
    resumed = aws_store.materialize(VIEW)
    assert resumed.started_from == stopped
    assert stopped.rows > 0
    assert stopped.rows + resumed.rows_read == 1_000
    # Then every entity holds exactly its latest row, as a point-in-time read at the end says
    ids = [f"c{i}" for i in range(60)]
    entities = pa.table(
        {"customer_id": ids, "event_timestamp": pa.array([NOW] * 60, pa.timestamp("us", tz="UTC"))}
    )
    expected = aws_store.training_set(VIEW, entities, features=["spend"])["spend"].to_pylist()
    online = aws_store.online_features(VIEW, ids, features=["spend"])
    assert [online.rows[e].values["spend"] if e in online.rows else None for e in ids] == expected
    # And a third run writes nothing
    assert aws_store.materialize(VIEW).written == 0


def test_offline_files_are_hive_partitioned_parquet_in_the_features_bucket(
    aws_store: FeatureStore, local_names: dict[str, str]
) -> None:
    report = aws_store.ingest(
        VIEW, random_history(np.random.default_rng(2), entities=5, rows=40, days=3)
    )
    bucket = local_names["FLYWHEEL_FEATURES_BUCKET"]
    keys = [
        o["Key"]
        for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="offline/")["Contents"]
    ]
    assert {k.split("/")[3] for k in keys} == {
        "date=2026-01-01",
        "date=2026-01-02",
        "date=2026-01-03",
    }
    assert all(k.startswith(f"offline/{VIEW}/v1/") and k.endswith(".parquet") for k in keys)
    assert sorted(report.files) == sorted(f"s3://{bucket}/{k}" for k in keys)
