"""boto3 clients for composition roots, configured from :class:`~flywheel.settings.Settings`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from flywheel.settings import Settings

__all__ = ["AwsClients", "aws_clients"]

#: Short timeouts and adaptive retries: a request path must not hang on one slow call.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})


@dataclass(frozen=True)
class AwsClients:
    dynamodb: DynamoDBClient
    s3: S3Client


def aws_clients(settings: Settings) -> AwsClients:
    """DynamoDB and S3 clients for ``settings`` (the local moto server when ``backend="local"``).

    Examples
    --------
    >>> clients = aws_clients(Settings(backend="aws"))  # doctest: +SKIP
    >>> clients.s3.meta.region_name  # doctest: +SKIP
    'us-east-1'
    """
    session_kwargs: dict[str, Any] = {"region_name": settings.region}
    client_kwargs: dict[str, Any] = {"config": _CONFIG}
    if settings.backend == "local":
        from flywheel.local import server

        client_kwargs["endpoint_url"] = settings.endpoint_url or server.ensure_running(
            settings.local_port, settings.local_home
        )
        session_kwargs.update(
            aws_access_key_id=server.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=server.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=server.LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
    elif settings.endpoint_url:
        client_kwargs["endpoint_url"] = settings.endpoint_url
    session = boto3.Session(**session_kwargs)
    return AwsClients(
        dynamodb=session.client("dynamodb", **client_kwargs),
        s3=session.client("s3", **client_kwargs),
    )
