"""The audit writer's key in AWS KMS: an HMAC key that authenticates chain heads."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import FlywheelError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

__all__ = ["KmsHeadSigner", "SigningError"]

MAC_ALGORITHM: Final = "HMAC_SHA_256"


class SigningError(FlywheelError):
    code = "signing_failed"


class KmsHeadSigner:
    """``GenerateMac`` / ``VerifyMac`` with one KMS HMAC key (alias or ARN).

    The key policy lets only the audit writer's role generate; verifiers need
    ``kms:VerifyMac`` only.

    Examples
    --------
    >>> signer = KmsHeadSigner("alias/flywheel-prod-audit", client=kms_client)  # doctest: +SKIP
    >>> signer.verify(b"message", signer.sign(b"message"))  # doctest: +SKIP
    True
    """

    def __init__(self, key_id: str, *, client: KMSClient | None = None) -> None:
        self.key_id = key_id
        self._client: KMSClient = client if client is not None else boto3.client("kms")

    def sign(self, message: bytes) -> str:
        try:
            response = self._client.generate_mac(
                KeyId=self.key_id, Message=message, MacAlgorithm=MAC_ALGORITHM
            )
        except (ClientError, BotoCoreError) as err:
            raise SigningError("the audit writer's key could not sign the head") from err
        return base64.b64encode(response["Mac"]).decode("ascii")

    def verify(self, message: bytes, mac: str) -> bool:
        try:
            response = self._client.verify_mac(
                KeyId=self.key_id,
                Message=message,
                MacAlgorithm=MAC_ALGORITHM,
                Mac=base64.b64decode(mac),
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "KMSInvalidMacException":
                return False
            raise SigningError("the audit writer's key could not be used to verify") from err
        except (BotoCoreError, ValueError) as err:
            raise SigningError("the audit writer's key could not be used to verify") from err
        return bool(response.get("MacValid"))
