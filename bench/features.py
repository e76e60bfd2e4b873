"""Feature store benchmark: online reads and point-in-time retrieval, baselines in the same run.

Run: ``.venv/bin/python bench/features.py [--events 1000000] [--repeat 5] [--reads 200]``

Online read (100 entities x 50 float features, and 1 x 50), against DynamoDB
emulated by moto *in process*: the figures are client-side costs, not network
round trips; the number of DynamoDB calls per request is what carries over to AWS.
"client" times replay moto's recorded HTTP responses (boto3 serialization,
signing, parsing and our decoding only); "with moto" lets moto answer in process.

``batch_get_item``
    :meth:`FeatureStore.online_features`: ``BatchGetItem`` with ≤ 100 keys a call
    and a projection of the features, decoded into typed values, missing reported.
``get_item loop``
    The baseline: one ``GetItem`` (same projection) per entity.

Point-in-time retrieval (``--events`` entity events against as many feature rows
of ``events / 10`` entities, 10 float features, TTL 7 days, all rows on time so
that ``merge_asof`` is an exact reference):

``flywheel``
    :func:`flywheel.features.offline.join_point_in_time` (what a training set runs
    after reading the partitions): numpy sort + ``searchsorted``, Arrow ``take``.
``flywheel, 20% late``
    The same with a fifth of the rows created after their event (``merge_asof`` has
    no way to honour created timestamps, so it has no counterpart here).
``pandas merge_asof``
    ``sort_values`` + ``merge_asof(by=entity, tolerance=ttl)``, the usual recipe.

Each retrieval runs in its own process on inputs loaded before timing; peak extra
memory is the rise of the peak RSS (``VmHWM``) over the RSS before the first run.
Times are medians of ``--repeat`` runs. "equal" says whether the feature values
match ``merge_asof``'s exactly, row for row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT), str(ROOT / "shared")]
os.environ.setdefault("OMP_NUM_THREADS", "1")

from drift import _measure as measure  # noqa: E402  (peak RSS and median, as bench/drift.py)
from serving import _percentiles  # noqa: E402

FEATURES = 50
PIT_FEATURES = 10
TTL_DAYS = 7
AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# -- online reads -------------------------------------------------------------------------------
class Replay:
    """Records moto's HTTP responses, then serves them to a client with no server behind it.

    Timing a replaying client measures only client-side work: boto3 serialization and
    signing, response parsing, our batching and decoding. moto's own request handling
    (its projection evaluation dominates) is left out.
    """

    def __init__(self) -> None:
        self.responses: dict[bytes, tuple[int, dict[str, str], bytes]] = {}
        self._pending: bytes = b""

    def record(self, client: Any) -> None:
        def request(request: Any, **_: Any) -> None:
            self._pending = bytes(request.body or b"")

        def response(response_dict: Any, **_: Any) -> None:
            if response_dict is not None:
                self.responses[self._pending] = (
                    response_dict["status_code"],
                    dict(response_dict["headers"]),
                    response_dict["body"],
                )

        client.meta.events.register("before-send.dynamodb.*", request)
        client.meta.events.register("response-received.dynamodb.*", response)

    def client(self) -> Any:
        import boto3
        from botocore.awsrequest import AWSResponse

        class Raw:
            def __init__(self, body: bytes) -> None:
                self.body = body

            def stream(self, **_: Any) -> Any:
                yield self.body

        def send(request: Any, **_: Any) -> AWSResponse:
            status, headers, body = self.responses[bytes(request.body or b"")]
            # AWSResponse wraps any mapping in a HeadersDict (botocore passes urllib3's
            # headers here); the stub narrows the argument to HTTPHeaders.
            return AWSResponse(request.url, status, headers, Raw(body))  # type: ignore[arg-type]

        client = boto3.client("dynamodb", endpoint_url="http://replay.invalid")
        # botocore sends the first response a before-send handler returns; the stub types
        # every handler as returning None.
        client.meta.events.register("before-send.dynamodb.*", send)  # type: ignore[arg-type]
        return client


def online(reads: int) -> list[dict[str, Any]]:
    os.environ.update(AWS)
    import boto3
    from moto import mock_aws

    from flywheel.adapters.dynamodb_features import DynamoDbOnlineStore
    from flywheel.features.models import OnlineRow, values_digest
    from flywheel.local.provision import default_names, provision

    replay = Replay()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    with mock_aws():
        names = default_names("bench")
        client = boto3.client("dynamodb")
        provision(client, boto3.client("s3"), names, kms=boto3.client("kms"))
        table = names["FLYWHEEL_ONLINE_FEATURES_TABLE"]
        readers, view = _readers(client, table)
        seeder = DynamoDbOnlineStore(table, client=client)
        for e in range(100):
            values: dict[str, Any] = {f"f{i:02d}": e + i / 7 for i in range(FEATURES)}
            seeder.write(view, [OnlineRow(f"e{e}", 1, 1, values, values_digest(values))])
        replay.record(client)
        for key, read, ids in readers:
            assert len(read(ids)) == len(ids)  # warm, recorded, and every entity found
            rows[key] = {"moto_p50_ms": _time(read, ids, max(reads // 10, 3))[0]}
    replaying = replay.client()
    calls: list[str] = []
    replaying.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    replayed, _ = _readers(replaying, table)
    for key, read, ids in replayed:
        calls.clear()
        p50, p99 = _time(read, ids, reads)
        rows[key].update(calls=len(calls) / reads, p50_ms=p50, p99_ms=p99)
    return [{"case": case, "method": method, **row} for (case, method), row in rows.items()]


def _time(read: Any, ids: list[str], reads: int) -> tuple[float, float]:
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        read(ids)
        samples.append(time.perf_counter() - started)
    p50, p99 = _percentiles(samples)
    return p50 * 1e3, p99 * 1e3


class _GetItemLoop:
    """The baseline: one GetItem (same projection) per entity."""

    def __init__(self, client: Any, table: str, view: Any) -> None:
        self.client, self.table, self.view = client, table, view
        self.projection = ", ".join(f"#f{i}" for i in range(FEATURES))
        self.names = {f"#f{i}": f"f:f{i:02d}" for i in range(FEATURES)}

    def read(self, ids: list[str]) -> dict[str, Any]:
        found = {}
        for entity in ids:
            item = self.client.get_item(
                TableName=self.table,
                Key={"pk": {"S": f"{self.view.name}#{entity}"}, "sk": {"S": "v1"}},
                ProjectionExpression=self.projection,
                ExpressionAttributeNames=self.names,
            ).get("Item")
            if item:
                found[entity] = [float(item[a]["N"]) for a in self.names.values()]
        return found


class _BatchReader:
    def __init__(self, store: Any, client: Any) -> None:
        self.store, self.client = store, client

    def read(self, ids: list[str]) -> dict[str, Any]:
        records: dict[str, Any] = self.store.online_features("bench-view", ids).as_records()
        return records


def _readers(client: Any, table: str) -> tuple[list[tuple[tuple[str, str], Any, list[str]]], Any]:
    store, view = _online_store(client, table)
    batch, loop = _BatchReader(store, client), _GetItemLoop(client, table, view)
    readers = []
    for entities in (100, 1):
        ids = [f"e{i}" for i in range(entities)]
        case = f"{entities} x {FEATURES}"
        readers += [((case, "batch_get_item"), batch.read, ids)]
        readers += [((case, "get_item loop"), loop.read, ids)]
    return readers, view


def _online_store(client: Any, table: str) -> tuple[Any, Any]:
    """A FeatureStore whose registry lookups are cached, as in a warm inference function."""
    from datetime import UTC, datetime

    from flywheel.adapters.dynamodb_features import DynamoDbOnlineStore
    from flywheel.clock import FixedClock
    from flywheel.features import Column, Entity, Feature, FeatureStore, FeatureView, Source
    from flywheel.features.models import ViewKey
    from flywheel.features.transformations import IDENTITY

    columns = tuple(Column(name=f"f{i:02d}") for i in range(FEATURES))
    view = FeatureView(
        name="bench-view",
        entity=Entity(name="entity", join_key="entity_id"),
        source=Source(name="bench", columns=columns),
        features=tuple(Feature(name=c.name) for c in columns),
        transformation=IDENTITY.ref,
    )
    from flywheel.composition import InMemoryPlatform

    memory_store = InMemoryPlatform().feature_store()
    memory_store.register(view, actor="bench")
    store = FeatureStore(
        registry=memory_store.registry,
        online=DynamoDbOnlineStore(table, client=client),
        records=memory_store.records,
        clock=FixedClock(datetime(2026, 1, 1, tzinfo=UTC)),
    )
    store.view(view.name)  # cache the definition, as the first request of a container does
    return store, ViewKey(view.name, 1)


# -- point-in-time retrieval ---------------------------------------------------------------------
def make_inputs(directory: Path, events: int, *, late_share: float) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(42)
    entities = max(events // 10, 1)
    start = 1_767_225_600_000_000  # 2026-01-01 in µs
    span = 90 * 86_400 * 1_000_000
    event = start + rng.integers(0, span, events)
    delay = np.where(rng.random(events) < late_share, rng.integers(1, 3 * 86_400, events), 0)
    features: dict[str, Any] = {
        "entity_id": rng.integers(0, entities, events),
        "event_timestamp": pa.array(event, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "created_timestamp": pa.array(event + delay * 1_000_000, pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
    }
    for i in range(PIT_FEATURES):
        features[f"f{i}"] = rng.normal(size=events)
    pq.write_table(pa.table(features), directory / f"features-{late_share}.parquet")
    query = {
        "entity_id": rng.integers(0, entities, events),
        "event_timestamp": pa.array(start + rng.integers(0, span, events), pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
    }
    pq.write_table(pa.table(query), directory / "entities.parquet")


def _view() -> Any:
    from datetime import timedelta

    from flywheel.features import Entity, Feature, FeatureView, Source
    from flywheel.features.transformations import IDENTITY

    return FeatureView(
        name="bench-view",
        entity=Entity(name="entity", join_key="entity_id", dtype="int"),
        source=Source(name="bench"),
        features=tuple(Feature(name=f"f{i}") for i in range(PIT_FEATURES)),
        transformation=IDENTITY.ref,
        ttl=timedelta(days=TTL_DAYS),
    )


def worker(kind: str, directory: Path, repeat: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    late = 0.2 if kind == "flywheel-late" else 0.0
    rows = pq.read_table(directory / f"features-{late}.parquet")
    entities = pq.read_table(directory / "entities.parquet")
    names = [f"f{i}" for i in range(PIT_FEATURES)]
    if kind == "pandas":
        import pandas as pd

        left = entities.to_pandas()
        right = rows.drop_columns(["created_timestamp"]).to_pandas()

        def run() -> Any:
            merged = pd.merge_asof(
                left.reset_index().sort_values("event_timestamp"),
                right.sort_values("event_timestamp").rename(
                    columns={"event_timestamp": "feature_timestamp"}
                ),
                left_on="event_timestamp",
                right_on="feature_timestamp",
                by="entity_id",
                tolerance=pd.Timedelta(days=TTL_DAYS),
            )
            return merged.sort_values("index")[names].to_numpy()
    else:
        from flywheel.features.offline import join_point_in_time

        view = _view()
        key = entities["entity_id"].combine_chunks()
        times = entities["event_timestamp"].cast(pa.int64()).to_numpy()

        def run() -> Any:
            out = join_point_in_time(view, rows, entities, key, times, names)
            return np.column_stack(
                [out[n].to_numpy(zero_copy_only=False).astype(float) for n in names]
            )

    measured = measure(run, repeat)
    result = measured.pop("result")
    np.save(directory / f"result-{kind}.npy", result)
    return {**measured, "filled": float(np.mean(~np.isnan(result[:, 0])))}


def retrieval(events: int, repeat: int) -> list[dict[str, Any]]:
    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        make_inputs(directory, events, late_share=0.0)
        make_inputs(directory, events, late_share=0.2)
        for kind in ("flywheel", "flywheel-late", "pandas"):
            print(f"... point-in-time: {kind}", file=sys.stderr, flush=True)
            output = subprocess.run(
                [sys.executable, __file__, "--worker", kind, "--dir", tmp, "--repeat", str(repeat)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows.append({"method": kind, **json.loads(output.strip().splitlines()[-1])})
        reference = np.load(directory / "result-pandas.npy")
        ours = np.load(directory / "result-flywheel.npy")
        equal = bool(np.array_equal(reference, ours, equal_nan=True))
    for row in rows:
        row["equal"] = {"flywheel": "yes" if equal else "NO", "pandas": "reference"}.get(
            row["method"], "n/a"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.dir), args.repeat)))
        return

    print("... online reads", file=sys.stderr, flush=True)
    reads = online(args.reads)
    lines = [
        "| online read | method | DynamoDB calls / request | client p50 ms | client p99 ms "
        "| with moto p50 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['case']} | {r['method']} | {r['calls']:g} | {r['p50_ms']:.2f} "
        f"| {r['p99_ms']:.2f} | {r['moto_p50_ms']:.1f} |"
        for r in reads
    ]
    print("\n".join(lines))
    print(
        f"\nOnline: client = boto3 + Flywheel work on replayed moto responses ({args.reads} "
        "reads per row); with moto = moto in process answering (its projection handling "
        "dominates). Neither includes the network: on AWS add one round trip per call.\n"
    )
    pit = retrieval(args.events, args.repeat)
    lines = [
        f"| point-in-time, {args.events:,} events | seconds (median) | peak extra MB "
        "| rows with a value | equal to merge_asof |",
        "|---|---:|---:|---:|---|",
    ]
    labels = {
        "flywheel": "flywheel",
        "flywheel-late": "flywheel, 20% late rows",
        "pandas": "pandas merge_asof",
    }
    lines += [
        f"| {labels[r['method']]} | {r['seconds']:.2f} | {r['peak_extra_mb']:.0f} "
        f"| {r['filled']:.1%} | {r['equal']} |"
        for r in pit
    ]
    print("\n".join(lines))
    print(
        f"\n{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}; median of {args.repeat} runs."
    )


if __name__ == "__main__":
    main()
