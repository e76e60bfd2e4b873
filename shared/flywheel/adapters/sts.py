"""Who the process acts as: the STS caller identity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

__all__ = ["caller_arn"]


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
