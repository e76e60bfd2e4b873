"""Who the process acts as: the STS caller identity."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import UnauthenticatedError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_sts import STSClient

__all__ = ["StsIdentityVerifier", "caller_arn", "identity_proof"]


def caller_arn(client: STSClient) -> str | None:
    """The ARN of the credentials' principal, or ``None`` when STS cannot say.

    Examples
    --------
    >>> caller_arn(sts_client)  # doctest: +SKIP
    'arn:aws:sts::123456789012:assumed-role/ml-engineer/ana'
    """
    try:
        return str(client.get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError):
        return None


def identity_proof(client: STSClient, *, expires_in: int = 60) -> str:
    """A presigned ``GetCallerIdentity`` request: whoever holds it can learn who signed it,
    and nothing more (it grants no access; AWS answers it for any valid signature)."""
    url: str = client.generate_presigned_url(
        "get_caller_identity", Params={}, ExpiresIn=expires_in, HttpMethod="GET"
    )
    return url


class StsIdentityVerifier:
    """Learns a person's principal by sending their presigned ``GetCallerIdentity`` to STS.

    Only STS endpoints are contacted (``sts.amazonaws.com``, ``sts.<region>.amazonaws.com``,
    and the endpoints given, e.g. the local runtime's); anything else is refused, so a
    forged "STS" cannot vouch for anyone.

    Examples
    --------
    >>> verifier = StsIdentityVerifier()
    >>> verifier.principal("https://evil.example.com/?Action=GetCallerIdentity")
    Traceback (most recent call last):
    ...
    flywheel.errors.UnauthenticatedError: the identity proof is not an STS request
    """

    def __init__(self, *, endpoints: Sequence[str] = (), timeout_seconds: float = 5.0) -> None:
        self._endpoints = {urllib.parse.urlsplit(e).netloc for e in endpoints}
        self._timeout = timeout_seconds

    def principal(self, proof: str) -> str:
        parts = urllib.parse.urlsplit(proof)
        query = urllib.parse.parse_qs(parts.query)
        trusted = parts.netloc in self._endpoints or (
            parts.scheme == "https" and _STS_HOST.fullmatch(parts.netloc) is not None
        )
        if (
            not trusted
            or parts.path not in {"", "/"}
            or query.get("Action") != ["GetCallerIdentity"]
        ):
            raise UnauthenticatedError("the identity proof is not an STS request", field="identity")
        request = urllib.request.Request(proof, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                body = answer.read()
        except (urllib.error.URLError, OSError) as err:
            raise UnauthenticatedError(
                "STS did not accept the identity proof (expired or forged)", field="identity"
            ) from err
        match = _ARN.search(body.decode("utf-8", "replace"))
        if match is None:
            raise UnauthenticatedError("STS did not name a principal", field="identity")
        return match.group(1)


_STS_HOST = re.compile(r"^sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
_ARN = re.compile(r"<Arn>(arn:[^<]+)</Arn>")
