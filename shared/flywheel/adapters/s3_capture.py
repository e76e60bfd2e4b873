"""S3 capture sink: gzip JSON Lines objects under the features bucket's ``capture/`` prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import ArtifactError, ArtifactNotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_s3 import S3Client

__all__ = ["S3CaptureSink"]


class S3CaptureSink:
    """Write (and read back) capture objects in one bucket.

    Objects are gzip JSON Lines (``Content-Type: application/gzip``), written
    with ``If-None-Match: *`` so a key is never overwritten.  Encryption is the
    bucket's default (SSE-KMS in the deployed stacks).  Errors become
    :class:`~flywheel.errors.ArtifactError` without the library's text; the
    capture writer counts them.

    Parameters
    ----------
    bucket
        Bucket name (``FLYWHEEL_FEATURES_BUCKET``).
    client
        An S3 client; a default ``boto3.client("s3")`` is created when omitted.

    Examples
    --------
    >>> sink = S3CaptureSink("flywheel-features", client=s3_client)  # doctest: +SKIP
    >>> key = "capture/model=churn/version=3/date=2025-01-31/hour=12/x.jsonl.gz"
    >>> sink.put(key, body)  # doctest: +SKIP
    """

    def __init__(self, bucket: str, *, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client: S3Client = client or boto3.client("s3")

    def put(self, key: str, body: bytes) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/gzip",
                IfNoneMatch="*",
            )
        except (ClientError, BotoCoreError) as err:
            raise ArtifactError(
                f"capture object s3://{self.bucket}/{key} could not be written",
                details={"reason": "capture_write_failed"},
            ) from err

    def keys(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except (ClientError, BotoCoreError) as err:
            raise ArtifactError(
                f"capture objects under s3://{self.bucket}/{prefix} could not be listed",
                details={"reason": "capture_list_failed"},
            ) from err

    def get(self, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                raise ArtifactNotFoundError(
                    f"no capture object s3://{self.bucket}/{key}", field="key"
                ) from err
            raise ArtifactError(
                f"capture object s3://{self.bucket}/{key} could not be read",
                details={"reason": "capture_read_failed"},
            ) from err
        except BotoCoreError as err:
            raise ArtifactError(
                f"capture object s3://{self.bucket}/{key} could not be read",
                details={"reason": "capture_read_failed"},
            ) from err
