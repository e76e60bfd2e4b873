"""In-memory capture sink: the same contract as S3, for tests and local experiments."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from flywheel.errors import ArtifactNotFoundError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["InMemoryCaptureSink"]


class InMemoryCaptureSink:
    """Capture objects in a dict; thread-safe; implements ``CaptureSink`` and ``CaptureSource``.

    Set :attr:`fail_with` to make every ``put`` raise it (to prove a failing sink
    never fails a request), and :attr:`delay_seconds` to make writes slow.

    Examples
    --------
    >>> sink = InMemoryCaptureSink()
    >>> sink.put("capture/a.jsonl.gz", b"x")
    >>> list(sink.keys("capture/")), sink.get("capture/a.jsonl.gz")
    (['capture/a.jsonl.gz'], b'x')
    """

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail_with: Exception | None = None
        self.delay_seconds = 0.0
        self._lock = threading.Lock()

    def put(self, key: str, body: bytes) -> None:
        if self.delay_seconds:
            threading.Event().wait(self.delay_seconds)
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            if key in self.objects:
                raise InvalidInputError(f"capture object {key} already exists", field="key")
            self.objects[key] = bytes(body)

    def keys(self, prefix: str) -> Iterator[str]:
        with self._lock:
            found = sorted(k for k in self.objects if k.startswith(prefix))
        yield from found

    def get(self, key: str) -> bytes:
        with self._lock:
            body = self.objects.get(key)
        if body is None:
            raise ArtifactNotFoundError(f"no capture object {key}", field="key")
        return body
