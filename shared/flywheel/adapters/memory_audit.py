"""In-memory stand-ins for the audit writer's key and the anchor bucket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from typing import TYPE_CHECKING

from flywheel.errors import ConflictError

if TYPE_CHECKING:
    from flywheel.audit.models import Anchor

__all__ = ["HmacHeadSigner", "InMemoryAnchorStore"]


class HmacHeadSigner:
    """HMAC-SHA256 with a key held in this process (tests, notebooks).

    Examples
    --------
    >>> signer = HmacHeadSigner()
    >>> signer.verify(b"head", signer.sign(b"head")), signer.verify(b"other", signer.sign(b"head"))
    (True, False)
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def sign(self, message: bytes) -> str:
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")

    def verify(self, message: bytes, mac: str) -> bool:
        return hmac.compare_digest(self.sign(message), mac)


class InMemoryAnchorStore:
    """Anchors in a dict; like Object Lock, an anchor once written cannot be replaced.

    Examples
    --------
    >>> from flywheel.audit.models import Anchor, ChainHead
    >>> store = InMemoryAnchorStore()
    >>> _ = store.put(Anchor(head=ChainHead(model="m", seq=1, hash="a" * 64), anchored_at="t"))
    >>> [a.head.seq for a in store.anchors("m")]
    [1]
    """

    def __init__(self) -> None:
        self.objects: dict[str, Anchor] = {}
        self._lock = threading.Lock()

    def put(self, anchor: Anchor) -> str:
        with self._lock:
            if anchor.key in self.objects:
                raise ConflictError(f"anchor {anchor.key} exists and is locked", field="anchor")
            self.objects[anchor.key] = anchor
        return f"memory://anchors/{anchor.key}"

    def anchors(self, model: str) -> list[Anchor]:
        with self._lock:
            found = [a for k, a in self.objects.items() if k.startswith(f"anchors/{model}/")]
        return sorted(found, key=lambda a: a.head.seq)
