"""The artifact store port and the rules every store shares.

A store keeps immutable, versioned blobs (ONNX models, reference profiles,
reports) and hands back an :class:`~flywheel.registry.models.ArtifactRef` that
pins the exact bytes: URI, storage version id, SHA-256 and size.  Reading a ref
always re-hashes what came back and refuses anything that differs, so a model
that was validated at registration is the only model that can ever be served.

Adapters inherit :class:`BaseArtifactStore`, which owns key validation,
hashing, the integrity check and JSON encoding; they only move bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from flywheel.errors import ArtifactIntegrityError, InvalidArtifactError, InvalidInputError
from flywheel.registry.models import ArtifactRef

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "MAX_KEY_BYTES",
    "ArtifactStore",
    "BaseArtifactStore",
    "decode_json",
    "encode_json",
    "sha256_hex",
    "validate_key",
    "verify_integrity",
]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
JSON_CONTENT_TYPE = "application/json"
MAX_KEY_BYTES = 1024


@runtime_checkable
class ArtifactStore(Protocol):
    """Versioned, integrity-checked blob storage (the port).

    Examples
    --------
    >>> from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
    >>> store: ArtifactStore = InMemoryArtifactStore()
    >>> ref = store.put("models/churn/1/model.onnx", b"onnx-bytes")
    >>> store.get(ref)
    b'onnx-bytes'
    """

    def put(
        self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> ArtifactRef:
        """Store ``data`` under ``key`` as a new version and return a ref that pins it."""
        ...

    def get(self, ref: ArtifactRef) -> bytes:
        """Return exactly the bytes ``ref`` pins, or raise :class:`ArtifactIntegrityError`."""
        ...

    def put_json(self, key: str, obj: Any) -> ArtifactRef:
        """Store ``obj`` as canonical JSON (sorted keys, no whitespace)."""
        ...

    def get_json(self, ref: ArtifactRef) -> Any:
        """Read a JSON artifact, verified like :meth:`get`."""
        ...

    def exists(self, ref: ArtifactRef) -> bool:
        """Whether the pinned version is present (content is checked only by :meth:`get`)."""
        ...

    def locate(self, key: str) -> ArtifactRef | None:
        """A ref pinning the latest version of ``key`` (its SHA-256 as the store recorded it
        at put), or ``None``: for artifacts another process wrote whose ref nobody holds."""
        ...


def validate_key(key: str) -> str:
    """Check an artifact key and return it unchanged.

    A key is a relative, ``/``-separated path of at most 1024 UTF-8 bytes, with
    no leading or trailing ``/``, no empty or ``.`` segments, no ``..`` anywhere,
    no backslashes and no control characters.

    Raises
    ------
    InvalidInputError
        With ``field="key"`` and the reason.

    Examples
    --------
    >>> validate_key("models/churn/3/model.onnx")
    'models/churn/3/model.onnx'
    >>> validate_key("../etc/passwd")
    Traceback (most recent call last):
    ...
    flywheel.errors.InvalidInputError: invalid artifact key '../etc/passwd': '..' is not allowed
    """
    reason = _key_problem(key)
    if reason is not None:
        raise InvalidInputError(f"invalid artifact key {key!r}: {reason}", field="key")
    return key


def _key_problem(key: str) -> str | None:
    if not isinstance(key, str) or not key:
        return "a key is a non-empty string"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"longer than {MAX_KEY_BYTES} bytes"
    if ".." in key:
        return "'..' is not allowed"
    if key.startswith("/"):
        return "must not start with '/'"
    if key.endswith("/"):
        return "must not end with '/'"
    if "\\" in key:
        return "backslashes are not allowed"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        return "control characters are not allowed"
    if any(segment in ("", ".") for segment in key.split("/")):
        return "empty or '.' path segments are not allowed"
    return None


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    Examples
    --------
    >>> sha256_hex(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data).hexdigest()


def verify_integrity(data: bytes, ref: ArtifactRef) -> None:
    """Raise unless ``data`` has exactly the size and SHA-256 that ``ref`` records.

    Raises
    ------
    ArtifactIntegrityError
        When the size or the digest differs.

    Examples
    --------
    >>> ref = ArtifactRef(uri="memory://k", sha256=sha256_hex(b"abc"), size_bytes=3)
    >>> verify_integrity(b"abc", ref)
    >>> verify_integrity(b"abd", ref)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    flywheel.errors.ArtifactIntegrityError: artifact memory://k ... SHA-256 differs ...
    """
    where = f"artifact {ref.uri} (version {ref.version_id})"
    if len(data) != ref.size_bytes:
        raise ArtifactIntegrityError(
            f"{where} failed its integrity check: size is {len(data)} bytes, "
            f"registered {ref.size_bytes}",
            field="size_bytes",
            details={"uri": ref.uri, "version_id": ref.version_id},
        )
    if not hmac.compare_digest(sha256_hex(data), ref.sha256):
        raise ArtifactIntegrityError(
            f"{where} failed its integrity check: SHA-256 differs from the registered digest",
            field="sha256",
            details={"uri": ref.uri, "version_id": ref.version_id},
        )


def encode_json(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, compact, UTF-8, no NaN/Infinity.

    The same value always gives the same bytes, hence the same SHA-256.
    Pydantic models are dumped in JSON mode first.

    Raises
    ------
    InvalidInputError
        When ``obj`` is not JSON-serializable (``field="obj"``).

    Examples
    --------
    >>> encode_json({"b": 1, "a": [1.5, None]})
    b'{"a":[1.5,null],"b":1}'
    """
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as err:
        raise InvalidInputError(
            "object is not JSON-serializable (only dicts with string keys, lists, strings, "
            "finite numbers, booleans and null)",
            field="obj",
        ) from err
    return text.encode("utf-8")


def decode_json(data: bytes, *, uri: str = "artifact") -> Any:
    """Parse JSON bytes written by :func:`encode_json`.

    Raises
    ------
    InvalidArtifactError
        When the bytes are not UTF-8 JSON.

    Examples
    --------
    >>> decode_json(b'{"a":1}')
    {'a': 1}
    """
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as err:
        raise InvalidArtifactError(f"{uri} is not a JSON document", field="artifact") from err


def _refuse_constant(name: str) -> float:
    # Python's json accepts NaN/Infinity; canonical JSON does not.
    raise ValueError(name)


class BaseArtifactStore(ABC):
    """Shared semantics of every store; adapters implement only byte transport.

    Subclasses implement :meth:`_write`, :meth:`_read` and :meth:`exists`.
    :meth:`get` always verifies size and SHA-256 after :meth:`_read`, so no
    adapter can return unverified bytes.
    """

    def put(
        self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> ArtifactRef:
        """Store ``data`` as a new version of ``key``.

        Parameters
        ----------
        key
            Relative path, checked by :func:`validate_key`.
        data
            The bytes, at least one.
        content_type
            MIME type recorded with the object.

        Returns
        -------
        ArtifactRef
            URI, version id, SHA-256 and size of the stored bytes.

        Raises
        ------
        InvalidInputError
            Invalid key or empty data; nothing is written.

        Examples
        --------
        >>> from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
        >>> ref = InMemoryArtifactStore().put("a/b.bin", b"xyz")
        >>> (ref.uri, ref.size_bytes)
        ('memory://a/b.bin', 3)
        """
        validate_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError("artifact data must be bytes", field="data")
        payload = bytes(data)
        if not payload:
            raise InvalidInputError("artifact data is empty", field="data")
        digest = sha256_hex(payload)
        uri, version_id = self._write(key, payload, content_type=content_type, sha256=digest)
        return ArtifactRef(
            uri=uri,
            version_id=version_id,
            sha256=digest,
            size_bytes=len(payload),
            format=_format_for(key),
        )

    def get(self, ref: ArtifactRef) -> bytes:
        """Return the bytes ``ref`` pins, verified against its size and SHA-256.

        Raises
        ------
        ArtifactNotFoundError
            The key or the pinned version does not exist.
        ArtifactIntegrityError
            The stored bytes differ from the ref; nothing is returned.
        InvalidInputError
            The ref points at another store.

        Examples
        --------
        >>> from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
        >>> store = InMemoryArtifactStore()
        >>> store.get(store.put("k", b"v1"))
        b'v1'
        """
        data = self._read(ref)
        verify_integrity(data, ref)
        return data

    def put_json(self, key: str, obj: Any) -> ArtifactRef:
        """Store ``obj`` as canonical JSON (see :func:`encode_json`).

        Examples
        --------
        >>> from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
        >>> store = InMemoryArtifactStore()
        >>> store.get_json(store.put_json("profiles/p.json", {"mean": 1.5}))
        {'mean': 1.5}
        """
        return self.put(key, encode_json(obj), content_type=JSON_CONTENT_TYPE)

    def get_json(self, ref: ArtifactRef) -> Any:
        """Read and parse a JSON artifact, verified like :meth:`get`.

        Raises
        ------
        InvalidArtifactError
            The (verified) bytes are not JSON.

        Examples
        --------
        >>> from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
        >>> store = InMemoryArtifactStore()
        >>> store.get_json(store.put_json("r.json", [1, 2]))
        [1, 2]
        """
        return decode_json(self.get(ref), uri=ref.uri)

    @abstractmethod
    def exists(self, ref: ArtifactRef) -> bool:
        """Whether the pinned version (or, without a version id, the key) is present."""

    @abstractmethod
    def locate(self, key: str) -> ArtifactRef | None:
        """A ref to the latest version of ``key`` with the SHA-256 recorded at put (not
        re-hashed here: :meth:`get` verifies the bytes), or ``None`` when there is none.

        Examples
        --------
        >>> from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
        >>> store = InMemoryArtifactStore()
        >>> store.locate("jobs/result.json") is None
        True
        >>> ref = store.put_json("jobs/result.json", {"ok": True})
        >>> store.locate("jobs/result.json") == ref
        True
        """

    @abstractmethod
    def _write(
        self, key: str, data: bytes, *, content_type: str, sha256: str
    ) -> tuple[str, str | None]:
        """Store bytes; return ``(uri, version_id)``."""

    @abstractmethod
    def _read(self, ref: ArtifactRef) -> bytes:
        """Fetch the pinned version's bytes (unverified) or raise ArtifactNotFoundError."""


def artifact_format(key: str) -> Literal["onnx", "json", "bytes"]:
    """What a ref records as the ``format`` of an artifact stored under ``key``.

    Examples
    --------
    >>> artifact_format("models/m/run/model.onnx"), artifact_format("reports/r.json")
    ('onnx', 'json')
    """
    return _format_for(key)


def _format_for(key: str) -> Literal["onnx", "json", "bytes"]:
    if key.endswith(".onnx"):
        return "onnx"
    if key.endswith(".json"):
        return "json"
    return "bytes"
