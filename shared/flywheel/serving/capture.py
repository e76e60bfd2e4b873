"""Prediction capture: every scored row, batched into partitioned gzip JSON Lines objects.

The request path only appends one :class:`CaptureEntry` per request to an in-memory
buffer (constant time, never blocking, never raising).  A background thread
(:class:`CaptureWriter`) turns entries into rows and writes one object per partition
when the buffer holds ``max_rows`` rows or its oldest entry is ``max_age_seconds`` old
(ADR 20).  Each line is one request, its body as received next to the predictions (ADR 21);
:func:`decode_capture` expands it into one row per record.  Shadow predictions are rows
of the *shadow* version with ``variant: "shadow"`` and the same ``request_id``, so both
outputs join offline.  A write that fails is counted (:attr:`CaptureWriter.stats`, the
``CaptureFailures`` metric) and its rows are dropped; so are entries arriving when
``max_pending_rows`` rows already wait.  Capture never fails or delays a response.

Notes
-----
Objects are written under::

    capture/model=<m>/version=<v>/date=YYYY-MM-DD/hour=HH/<uuid>.jsonl.gz

A line holds the body exactly as the client sent it (it passed validation, so it is
what was scored) next to the predictions, like SageMaker's data capture::

    {"request_id": "...", "timestamp": "2025-01-31T12:00:00.123Z", "model": "churn",
     "version": 3, "variant": "champion", "latency_ms": 0.41, "entity_id": null,
     "rows": 2, "request": {"records": [{...}, {...}]},
     "predictions": ["yes", "no"], "probabilities": [[0.2, 0.8], [0.7, 0.3]],
     "classes": ["no", "yes"]}

:func:`decode_capture` expands it into rows::

    {"request_id": "...", "row": 0, "timestamp": "...", "model": "churn",
     "version": 3, "variant": "champion", "latency_ms": 0.41,
     "features": {...}, "prediction": "yes", "probabilities": {"no": 0.2, "yes": 0.8},
     "entity_id": null}

A ``NaN`` sent for a nullable feature reads back as ``null``.  Entries without the
body text (scored through the SDK rather than HTTP) are written as such rows directly.
The monitoring jobs read objects with :func:`decode_capture`.

Examples
--------
>>> from flywheel.adapters.memory_capture import InMemoryCaptureSink
>>> sink = InMemoryCaptureSink()
>>> writer = CaptureWriter(sink, background=False)
>>> writer.submit(CaptureEntry.example())
True
>>> writer.flush()
1
>>> [key.split("/")[1:3] for key in sink.objects]
[['model=churn', 'version=3']]
"""

from __future__ import annotations

import atexit
import functools
import gzip
import json
import math
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic_core import from_json

from flywheel.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from flywheel.serving.predictor import Prediction

__all__ = [
    "DEFAULT_CAPTURE_PREFIX",
    "Capturable",
    "CaptureEntry",
    "CaptureSink",
    "CaptureSource",
    "CaptureStats",
    "CaptureStore",
    "CaptureWriter",
    "capture_key",
    "decode_capture",
    "encode_lines",
    "encode_rows",
    "read_capture",
]

DEFAULT_CAPTURE_PREFIX = "capture/"


@runtime_checkable
class CaptureSink(Protocol):
    """Where capture objects go (the port): S3 in AWS, a dict in tests.

    Examples
    --------
    >>> from flywheel.adapters.memory_capture import InMemoryCaptureSink
    >>> sink: CaptureSink = InMemoryCaptureSink()
    >>> sink.put("capture/x.jsonl.gz", b"...")
    """

    def put(self, key: str, body: bytes) -> None:
        """Store ``body`` under ``key`` (keys are unique; never overwritten)."""
        ...


@runtime_checkable
class CaptureSource(Protocol):
    """Reading captured objects back (monitoring jobs, reports, tests)."""

    def keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, in lexicographic order."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes."""
        ...


@runtime_checkable
class CaptureStore(CaptureSink, CaptureSource, Protocol):
    """Capture objects written and read back through one store (S3 in AWS)."""


class Capturable(Protocol):
    """What :class:`CaptureWriter` batches: anything that knows its partition (``model``
    and ``version``), its time, how many rows it counts for and its JSON lines.

    :class:`CaptureEntry` is one (a scored request); the LLM gateway's calls are another.
    """

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def timestamp(self) -> float: ...

    @property
    def row_count(self) -> int:
        """Rows this entry counts for (the writer's limits are in rows)."""
        ...

    def lines(self) -> list[str]:
        """The entry as compact JSON lines (called on the writer's thread)."""
        ...


@dataclass(slots=True)
class CaptureEntry:
    """One scored request as the request path hands it over (rows are built later).

    Examples
    --------
    >>> CaptureEntry.example().rows()[0]["prediction"]
    'yes'
    """

    request_id: str
    model: str
    version: int
    variant: str
    timestamp: float
    latency_ms: float
    records: Sequence[Mapping[str, Any]]
    prediction: Prediction
    entity_id: str | None = None
    body: str | None = None
    """The request's JSON text as received; when given, one line holds the whole request."""

    @property
    def row_count(self) -> int:
        return len(self.records)

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per record (NaN features become ``null``)."""
        stamp = _iso(self.timestamp)
        outputs = self.prediction.to_records()
        rows = []
        for index, (record, output) in enumerate(zip(self.records, outputs, strict=True)):
            rows.append(
                {
                    "request_id": self.request_id,
                    "row": index,
                    "timestamp": stamp,
                    "model": self.model,
                    "version": self.version,
                    "variant": self.variant,
                    "latency_ms": round(self.latency_ms, 4),
                    "features": {k: _json_safe(v) for k, v in record.items()},
                    "prediction": output.get("label", output.get("value")),
                    "probabilities": output.get("probabilities"),
                    "entity_id": self.entity_id,
                }
            )
        return rows

    def lines(self) -> list[str]:
        """The rows of :meth:`rows` as compact JSON lines, built without the dicts.

        This runs for every captured row, so the per-entry parts are serialized
        once and each record is dumped in one C-encoder call; a record holding
        NaN (a nullable feature sent as ``NaN``) falls back to ``null``.

        Examples
        --------
        >>> entry = CaptureEntry.example()
        >>> [json.loads(line) for line in entry.lines()] == entry.rows()
        True
        """
        if self.body is not None:
            return [self._request_line(self.body)]
        dumps = _DUMPS
        common = (
            f'"timestamp":{dumps(_iso(self.timestamp))},"model":{dumps(self.model)},'
            f'"version":{int(self.version)},"variant":{dumps(self.variant)},'
            f'"latency_ms":{dumps(round(self.latency_ms, 4))}'
        )
        tail = f'"entity_id":{dumps(self.entity_id)}}}'
        head = f'{{"request_id":{dumps(self.request_id)},"row":'
        outputs = self.prediction.to_records()
        lines = []
        for index, (record, output) in enumerate(zip(self.records, outputs, strict=True)):
            try:
                features = dumps(record)
            except ValueError:
                features = dumps({k: _json_safe(v) for k, v in record.items()})
            prediction = dumps(output.get("label", output.get("value")))
            probabilities = dumps(output.get("probabilities"))
            lines.append(
                f'{head}{index},{common},"features":{features},"prediction":{prediction},'
                f'"probabilities":{probabilities},{tail}'
            )
        return lines

    def _request_line(self, body: str) -> str:
        # One line per request on the capture thread, which holds the GIL while it
        # runs: the constant parts (classes, timestamps within a second) are cached.
        dumps = _DUMPS
        prediction = self.prediction
        if "\n" in body or "\r" in body:  # JSON strings never hold raw line breaks
            body = body.replace("\r", " ").replace("\n", " ")
        if prediction.values is not None:
            predictions, probabilities, classes = dumps(prediction.values.tolist()), "null", "null"
        else:
            predictions = dumps(list(prediction.labels))
            classes = _json_list(prediction.classes)
            probabilities = (
                "null"
                if prediction.probabilities is None
                else dumps(prediction.probabilities.tolist())
            )
        latency = round(self.latency_ms, 4)
        latency_text = repr(latency) if math.isfinite(latency) else "null"
        return (
            f'{{"request_id":{dumps(self.request_id)},"timestamp":"{_iso(self.timestamp)}",'
            f'"model":{dumps(self.model)},"version":{int(self.version)},'
            f'"variant":{dumps(self.variant)},'
            f'"latency_ms":{latency_text},'
            f'"entity_id":{dumps(self.entity_id)},"rows":{len(self.records)},'
            f'"request":{body},"predictions":{predictions},"probabilities":{probabilities},'
            f'"classes":{classes}}}'
        )

    @classmethod
    def example(cls) -> CaptureEntry:
        """A small entry for documentation and tests."""
        import numpy as np

        from flywheel.registry.models import Task
        from flywheel.serving.predictor import Prediction

        return cls(
            request_id="req-1",
            model="churn",
            version=3,
            variant="champion",
            timestamp=1_700_000_000.0,
            latency_ms=0.5,
            records=[{"age": 42}],
            prediction=Prediction(
                task=Task.CLASSIFICATION,
                labels=("yes",),
                probabilities=np.array([[0.2, 0.8]]),
                classes=("no", "yes"),
            ),
        )


@dataclass
class CaptureStats:
    """Counters since start-up.

    Examples
    --------
    >>> CaptureStats().written_rows
    0
    """

    written_rows: int = 0
    written_objects: int = 0
    failed_rows: int = 0
    failed_objects: int = 0
    dropped_rows: int = 0
    encode_errors: int = 0


def capture_key(
    model: str, version: int, timestamp: float, *, prefix: str = DEFAULT_CAPTURE_PREFIX
) -> str:
    """The object key for rows of ``model``/``version`` captured at ``timestamp`` (UTC).

    Examples
    --------
    >>> capture_key("churn", 3, 1_700_000_000.0).rsplit("/", 1)[0]
    'capture/model=churn/version=3/date=2023-11-14/hour=22'
    """
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return (
        f"{prefix}model={model}/version={version}/date={when:%Y-%m-%d}/hour={when:%H}/"
        f"{uuid.uuid4().hex}.jsonl.gz"
    )


def encode_rows(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Gzip JSON Lines (compact, no NaN), byte-identical for identical rows.

    Examples
    --------
    >>> decode_capture(encode_rows([{"a": 1}, {"a": 2}]))
    [{'a': 1}, {'a': 2}]
    """
    text = "\n".join(json.dumps(row, separators=(",", ":"), allow_nan=False) for row in rows)
    return gzip.compress(text.encode("utf-8") + b"\n", compresslevel=6, mtime=0)


def encode_lines(lines: Iterable[str]) -> bytes:
    """Gzip JSON Lines from lines already serialized (:meth:`CaptureEntry.lines`).

    Compression level 1: on the serving path's background thread it costs half of
    level 6 for objects about a quarter larger.

    Examples
    --------
    >>> decode_capture(encode_lines(['{"a":1}']))
    [{'a': 1}]
    """
    return gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=1, mtime=0)


def decode_capture(body: bytes) -> list[dict[str, Any]]:
    """Rows of one capture object (request lines expanded to one row per record).

    Raises
    ------
    InvalidInputError
        The bytes are not gzip JSON Lines.

    Examples
    --------
    >>> decode_capture(encode_rows([{"x": None}]))
    [{'x': None}]
    >>> entry = CaptureEntry.example()
    >>> entry.body = '{"records": [{"age": 42}]}'
    >>> decode_capture(encode_lines(entry.lines())) == CaptureEntry.example().rows()
    True
    """
    try:
        text = gzip.decompress(body).decode("utf-8")
        # pydantic-core's parser: about 4x json.loads per line, same values (NaN too).
        lines = [from_json(line) for line in text.splitlines() if line]
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as err:
        raise InvalidInputError("not a capture object (gzip JSON Lines)", field="body") from err
    rows: list[dict[str, Any]] = []
    for line in lines:
        if isinstance(line, dict) and "request" in line and "predictions" in line:
            try:
                rows.extend(_expand(line))
            except (KeyError, TypeError, IndexError, AttributeError) as err:
                raise InvalidInputError(
                    "a capture line does not follow the request format", field="body"
                ) from err
        else:
            rows.append(line)
    return rows


def _expand(line: Mapping[str, Any]) -> list[dict[str, Any]]:
    request = line["request"]
    records = request["records"] if request.get("records") is not None else [request["record"]]
    predictions = line["predictions"]
    probabilities = line.get("probabilities")
    classes = line.get("classes")
    shared = {
        key: line.get(key) for key in ("timestamp", "model", "version", "variant", "latency_ms")
    }
    rows = []
    for index, record in enumerate(records):
        probs = None
        if probabilities is not None and classes is not None:
            probs = dict(zip(classes, probabilities[index], strict=True))
        rows.append(
            {
                "request_id": line["request_id"],
                "row": index,
                **shared,
                "features": {k: _json_safe(v) for k, v in record.items()},
                "prediction": predictions[index],
                "probabilities": probs,
                "entity_id": line.get("entity_id"),
            }
        )
    return rows


def read_capture(
    source: CaptureSource, prefix: str = DEFAULT_CAPTURE_PREFIX
) -> list[dict[str, Any]]:
    """Every captured row under ``prefix``.

    Examples
    --------
    >>> from flywheel.adapters.memory_capture import InMemoryCaptureSink
    >>> sink = InMemoryCaptureSink()
    >>> writer = CaptureWriter(sink, background=False)
    >>> _ = writer.submit(CaptureEntry.example()); _ = writer.flush()
    >>> [row["request_id"] for row in read_capture(sink)]
    ['req-1']
    """
    return [row for key in source.keys(prefix) for row in decode_capture(source.get(key))]


@dataclass
class _Pending:
    entries: list[Capturable] = field(default_factory=list)
    rows: int = 0
    oldest: float | None = None


class CaptureWriter:
    """Buffer capture entries and write them in batches, off the request path.

    Parameters
    ----------
    sink
        Where objects go.
    prefix
        Key prefix (``capture/``).
    max_rows
        Write as soon as this many rows wait.
    max_age_seconds
        Write rows at the latest this long after they arrived (while the
        execution environment runs; Lambda pauses threads between invocations).
    max_pending_rows
        Beyond this many waiting rows new entries are dropped and counted.
    background
        Write from a daemon thread (default).  ``False``: only :meth:`flush`
        writes, which tests and batch jobs call themselves.
    clock
        Epoch seconds (injectable for tests).
    key
        The object key of a batch: ``key(model, version, timestamp, prefix=prefix)``
        (default :func:`capture_key`).

    Examples
    --------
    >>> from flywheel.adapters.memory_capture import InMemoryCaptureSink
    >>> writer = CaptureWriter(InMemoryCaptureSink(), background=False, max_pending_rows=1)
    >>> writer.submit(CaptureEntry.example()), writer.submit(CaptureEntry.example())
    (True, False)
    >>> writer.stats.dropped_rows
    1
    """

    def __init__(
        self,
        sink: CaptureSink,
        *,
        prefix: str = DEFAULT_CAPTURE_PREFIX,
        max_rows: int = 500,
        max_age_seconds: float = 30.0,
        max_pending_rows: int = 20_000,
        background: bool = True,
        clock: Callable[[], float] = time.time,
        key: Callable[..., str] = capture_key,
    ) -> None:
        if max_rows < 1 or max_pending_rows < 1 or max_age_seconds <= 0:
            raise InvalidInputError(
                "capture limits must be positive", field="max_rows/max_age_seconds"
            )
        self.sink = sink
        self.prefix = prefix
        self.max_rows = max_rows
        self.max_age_seconds = max_age_seconds
        self.max_pending_rows = max_pending_rows
        self.stats = CaptureStats()
        self._clock = clock
        self._key = key
        self._background = background
        self._pending = _Pending()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported_failures = 0
        self._closed = False

    def submit(self, entry: Capturable) -> bool:
        """Queue one request's rows; ``False`` (and counted) when the buffer is full.

        Never raises and never waits for I/O.
        """
        rows = entry.row_count
        with self._lock:
            pending = self._pending
            if self._closed or pending.rows + rows > self.max_pending_rows:
                self.stats.dropped_rows += rows
                return False
            pending.entries.append(entry)
            pending.rows += rows
            if pending.oldest is None:
                pending.oldest = entry.timestamp
            full = pending.rows >= self.max_rows
        if self._background:
            if self._thread is None:
                self._start()
            if full:
                self._wake.set()
        return True

    def flush(self) -> int:
        """Write everything pending now; return the number of objects written.

        Failures are counted, never raised.
        """
        with self._lock:
            pending, self._pending = self._pending, _Pending()
        if not pending.entries:
            return 0
        with self._write_lock:
            return self._write(pending.entries)

    def take_failures(self) -> int:
        """Rows that failed or were dropped since the last call (for a metric)."""
        with self._lock:
            total = self.stats.failed_rows + self.stats.dropped_rows + self.stats.encode_errors
            delta = total - self._reported_failures
            self._reported_failures = total
        return delta

    def close(self) -> None:
        """Write what is pending and stop accepting entries."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self.flush()

    # -- internals ---------------------------------------------------------------------------
    def _due(self) -> bool:
        with self._lock:
            pending = self._pending
            if not pending.entries:
                return False
            oldest = pending.oldest if pending.oldest is not None else self._clock()
            return (
                pending.rows >= self.max_rows
                or self._clock() - oldest >= self.max_age_seconds
                or self._closed
            )

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=_run_writer,
                args=(weakref.ref(self), self._wake, self.max_age_seconds),
                name="flywheel-capture",
                daemon=True,
            )
            self._thread = thread
        atexit.register(_close_quietly, weakref.ref(self))
        thread.start()

    def _write(self, entries: list[Capturable]) -> int:
        groups: dict[tuple[str, int, str], list[str]] = {}
        stamps: dict[tuple[str, int, str], float] = {}
        for entry in entries:
            try:
                rows = entry.lines()
            except Exception:
                self.stats.encode_errors += entry.row_count
                continue
            hour = _hour(math.floor(entry.timestamp / 3600))
            group = (entry.model, entry.version, hour)
            groups.setdefault(group, []).extend(rows)
            stamps.setdefault(group, entry.timestamp)
        written = 0
        for group, rows in groups.items():
            model, version, _ = group
            key = self._key(model, version, stamps[group], prefix=self.prefix)
            try:
                self.sink.put(key, encode_lines(rows))
            except Exception:
                self.stats.failed_rows += len(rows)
                self.stats.failed_objects += 1
                continue
            self.stats.written_rows += len(rows)
            self.stats.written_objects += 1
            written += 1
        return written


def _run_writer(ref: weakref.ref[CaptureWriter], wake: threading.Event, period: float) -> None:
    while True:
        wake.wait(timeout=period)
        wake.clear()
        writer = ref()
        if writer is None:
            return
        if writer._due():
            writer.flush()
        if writer._closed:
            return
        del writer


def _close_quietly(ref: weakref.ref[CaptureWriter]) -> None:
    writer = ref()
    if writer is not None:
        writer.close()


_DUMPS = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _iso(timestamp: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``, as ``datetime.fromtimestamp(...).isoformat`` with
    milliseconds (microseconds rounded half-even, then truncated), the date part
    formatted once per second.

    Examples
    --------
    >>> _iso(1_700_000_000.9996), _iso(1_700_000_000.0)
    ('2023-11-14T22:13:20.999Z', '2023-11-14T22:13:20.000Z')
    """
    fraction, whole = math.modf(timestamp)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:  # before 1970
        whole, micros = whole - 1, micros + 1_000_000
    return f"{_second(int(whole))}.{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=8)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


@functools.lru_cache(maxsize=64)
def _json_list(values: tuple[str, ...]) -> str:
    """A model's class list as JSON (the same tuple on every line of a model)."""
    return _DUMPS(list(values))


@functools.lru_cache(maxsize=8)
def _hour(hours: int) -> str:
    return datetime.fromtimestamp(hours * 3600, tz=UTC).strftime("%Y%m%d%H")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
