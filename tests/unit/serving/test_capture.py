"""Capture: batched, partitioned gzip JSON Lines; a failing sink never raises, it counts."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.registry.models import Task
from flywheel.serving.capture import (
    CaptureEntry,
    CaptureWriter,
    _iso,
    capture_key,
    decode_capture,
    read_capture,
)
from flywheel.serving.predictor import Prediction

KEY = re.compile(
    r"^capture/model=(?P<m>[a-z0-9-]+)/version=(?P<v>\d+)/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/"
    r"[0-9a-f]{32}\.jsonl\.gz$"
)
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def entry(*, version=3, rows=1, at=T0, request_id="r", variant="champion") -> CaptureEntry:
    return CaptureEntry(
        request_id=request_id,
        model="churn",
        version=version,
        variant=variant,
        timestamp=at,
        latency_ms=0.25,
        records=[{"x": float(i), "maybe": None if i % 2 else float("nan")} for i in range(rows)],
        prediction=Prediction(task=Task.REGRESSION, values=np.arange(rows, dtype=float)),
    )


def test_rows_are_grouped_into_one_object_per_model_version_and_hour():
    sink = InMemoryCaptureSink()
    writer = CaptureWriter(sink, background=False)
    writer.submit(entry(version=3, rows=2, request_id="a"))
    writer.submit(entry(version=3, rows=1, request_id="b"))
    writer.submit(entry(version=4, rows=1, request_id="c"))
    writer.submit(entry(version=3, rows=1, at=T0 + 3600, request_id="d"))  # next hour

    assert writer.flush() == 3
    keys = sorted(sink.objects)
    assert all(KEY.match(k) for k in keys), keys
    assert sorted(k.split("/")[4] for k in keys) == ["hour=22", "hour=22", "hour=23"]
    rows = read_capture(sink, "capture/model=churn/version=3/date=2023-11-14/hour=22/")
    assert [(r["request_id"], r["row"], r["prediction"]) for r in rows] == [
        ("a", 0, 0.0),
        ("a", 1, 1.0),
        ("b", 0, 0.0),
    ]
    assert rows[0]["timestamp"] == "2023-11-14T22:13:20.000Z"
    assert rows[0]["features"] == {"x": 0.0, "maybe": None}  # NaN is written as null
    assert writer.stats.written_rows == 5


def test_a_full_batch_is_written_in_the_background_without_a_flush():
    sink = InMemoryCaptureSink()
    writer = CaptureWriter(sink, max_rows=10, max_age_seconds=60)
    for i in range(10):
        assert writer.submit(entry(request_id=str(i)))
    deadline = time.monotonic() + 5
    while not sink.objects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(decode_capture(next(iter(sink.objects.values())))) == 10


def test_old_rows_are_written_after_max_age_even_when_the_batch_is_small():
    sink = InMemoryCaptureSink()
    writer = CaptureWriter(sink, max_rows=1000, max_age_seconds=0.05)
    writer.submit(entry(at=time.time()))
    deadline = time.monotonic() + 5
    while not sink.objects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.stats.written_rows == 1


def test_a_failing_sink_is_counted_and_never_raises():
    sink = InMemoryCaptureSink()
    sink.fail_with = ConnectionError("bucket unreachable")
    writer = CaptureWriter(sink, background=False)
    writer.submit(entry(rows=3))
    assert writer.flush() == 0
    assert writer.stats.failed_rows == 3
    assert writer.take_failures() == 3
    assert writer.take_failures() == 0


def test_submit_never_waits_for_a_slow_sink_and_drops_when_the_buffer_is_full():
    sink = InMemoryCaptureSink()
    sink.delay_seconds = 0.5
    writer = CaptureWriter(sink, max_rows=1, max_pending_rows=3)
    started = time.perf_counter()
    accepted = [writer.submit(entry()) for _ in range(50)]
    assert time.perf_counter() - started < 0.2
    assert not all(accepted)
    assert writer.stats.dropped_rows == accepted.count(False)


def test_submissions_from_many_threads_are_all_written_once():
    sink = InMemoryCaptureSink()
    writer = CaptureWriter(sink, background=False, max_pending_rows=100_000)

    def work(t: int) -> None:
        for i in range(200):
            writer.submit(entry(request_id=f"{t}-{i}"))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    ids = [r["request_id"] for r in read_capture(sink)]
    assert len(ids) == len(set(ids)) == 800


def test_capture_key_is_partitioned_by_model_version_date_and_hour():
    key = capture_key("churn", 7, T0, prefix="capture/")
    assert KEY.match(key)
    assert key.startswith("capture/model=churn/version=7/date=2023-11-14/hour=22/")


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=-1e9, max_value=4e9, allow_nan=False),
        # just below, at and above millisecond and second boundaries
        st.tuples(
            st.integers(0, 4_000_000_000),
            st.sampled_from([0.0, 0.0005, 0.0004999, 0.9994999, 0.9995, 0.9999995, 0.99999949]),
        ).map(sum),
    )
)
def test_capture_timestamps_read_as_datetime_formats_them(timestamp: float) -> None:
    expected = datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="milliseconds")
    assert _iso(timestamp) == expected[:-6] + "Z"
