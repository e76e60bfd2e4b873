"""Opaque page tokens: the caller can hand them back, never forge a different listing."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flywheel.errors import InvalidPageTokenError

MAX_PAGE_SIZE = 100


def encode_token(scope: str, position: dict[str, Any]) -> str:
    """Encode where a listing stopped, bound to the listing's scope.

    Examples
    --------
    >>> decode_token("versions:m", encode_token("versions:m", {"k": 1}))
    {'k': 1}
    """
    raw = json.dumps({"s": scope, "p": position}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(scope: str, token: str) -> dict[str, Any]:
    """Decode a token from :func:`encode_token`; anything else is an ``InvalidPageTokenError``."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidPageTokenError("page token is not valid", field="page_token") from exc
    if not isinstance(data, dict) or data.get("s") != scope or not isinstance(data.get("p"), dict):
        raise InvalidPageTokenError(
            "page token does not belong to this listing", field="page_token"
        )
    position: dict[str, Any] = data["p"]
    return position


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        from flywheel.errors import InvalidInputError

        raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE_SIZE}", field="limit")
    return limit
