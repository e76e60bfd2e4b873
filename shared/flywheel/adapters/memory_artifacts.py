"""In-memory artifact store: the same semantics as S3, for tests and local runs."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

from flywheel.artifacts.ports import (
    BaseArtifactStore,
    artifact_format,
    sha256_hex,
    validate_key,
)
from flywheel.errors import ArtifactNotFoundError, InvalidInputError
from flywheel.registry.models import ArtifactRef

__all__ = ["MEMORY_SCHEME", "InMemoryArtifactStore"]

MEMORY_SCHEME = "memory://"


@dataclass
class _Version:
    version_id: str
    data: bytes
    content_type: str


class InMemoryArtifactStore(BaseArtifactStore):
    """A versioned store held in a dict; every ``put`` adds a version.

    URIs are ``memory://<key>``; version ids are opaque random strings, as in
    S3.  :meth:`tamper` rewrites a stored version in place so tests can prove
    that corrupted bytes are refused.  Thread-safe.

    Examples
    --------
    >>> store = InMemoryArtifactStore()
    >>> first = store.put("models/m.onnx", b"v1")
    >>> second = store.put("models/m.onnx", b"v2")
    >>> store.get(first), store.get(second)
    (b'v1', b'v2')
    """

    def __init__(self) -> None:
        self._objects: dict[str, list[_Version]] = {}
        self._lock = threading.Lock()

    def exists(self, ref: ArtifactRef) -> bool:
        """Whether the pinned version is stored.

        Examples
        --------
        >>> store = InMemoryArtifactStore()
        >>> store.exists(store.put("k", b"x"))
        True
        """
        key = _key_of(ref)
        with self._lock:
            return self._find(key, ref.version_id) is not None

    def locate(self, key: str) -> ArtifactRef | None:
        """The latest version of ``key`` (see :meth:`BaseArtifactStore.locate`)."""
        with self._lock:
            version = self._find(validate_key(key), None)
            if version is None:
                return None
            data = version.data
            version_id = version.version_id
        return ArtifactRef(
            uri=MEMORY_SCHEME + key,
            version_id=version_id,
            sha256=sha256_hex(data),
            size_bytes=len(data),
            format=artifact_format(key),
        )

    def tamper(self, ref: ArtifactRef, data: bytes) -> None:
        """Test hook: replace the bytes of the version ``ref`` pins, in place.

        Simulates storage that returns different bytes for a pinned version
        (bit rot, a compromised bucket, a bug); :meth:`get` must then refuse it.

        Examples
        --------
        >>> from flywheel.errors import ArtifactIntegrityError
        >>> store = InMemoryArtifactStore()
        >>> ref = store.put("k", b"good")
        >>> store.tamper(ref, b"evil")
        >>> try:
        ...     store.get(ref)
        ... except ArtifactIntegrityError:
        ...     print("refused")
        refused
        """
        key = _key_of(ref)
        with self._lock:
            version = self._find(key, ref.version_id)
            if version is None:
                raise _not_found(ref)
            version.data = bytes(data)

    def _write(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        sha256: str,  # noqa: ARG002 - no storage-side checksum here; get() re-hashes
    ) -> tuple[str, str | None]:
        version_id = uuid.uuid4().hex
        with self._lock:
            self._objects.setdefault(key, []).append(_Version(version_id, data, content_type))
        return MEMORY_SCHEME + key, version_id

    def _read(self, ref: ArtifactRef) -> bytes:
        key = _key_of(ref)
        with self._lock:
            version = self._find(key, ref.version_id)
            if version is None:
                raise _not_found(ref)
            return version.data

    def _find(self, key: str, version_id: str | None) -> _Version | None:
        versions = self._objects.get(key)
        if not versions:
            return None
        if version_id is None:
            return versions[-1]
        return next((v for v in versions if v.version_id == version_id), None)


def _key_of(ref: ArtifactRef) -> str:
    if not ref.uri.startswith(MEMORY_SCHEME):
        raise InvalidInputError(
            f"artifact {ref.uri} is not in the in-memory store (expected {MEMORY_SCHEME}...)",
            field="uri",
        )
    return validate_key(ref.uri.removeprefix(MEMORY_SCHEME))


def _not_found(ref: ArtifactRef) -> ArtifactNotFoundError:
    return ArtifactNotFoundError(
        f"artifact {ref.uri} (version {ref.version_id}) does not exist",
        field="uri",
        details={"uri": ref.uri, "version_id": ref.version_id},
    )
