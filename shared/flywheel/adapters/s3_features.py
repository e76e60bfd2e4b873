"""The offline feature store's files in S3 (the features bucket)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.adapters.dynamodb import StorageError
from flywheel.errors import NotFoundError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


class S3BlobStore:
    """Immutable objects under a prefix of one bucket (SSE as the bucket's default).

    Examples
    --------
    >>> blobs = S3BlobStore("features-bucket", client=s3)  # doctest: +SKIP
    >>> blobs.put("offline/v/v1/date=2026-01-01/part-1.parquet", data)  # doctest: +SKIP
    's3://features-bucket/offline/v/v1/date=2026-01-01/part-1.parquet'
    """

    def __init__(self, bucket: str, *, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.client: S3Client = client or boto3.client("s3")

    def put(self, key: str, body: bytes) -> str:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/vnd.apache.parquet",
                ChecksumAlgorithm="SHA256",
            )
        except (ClientError, BotoCoreError) as err:
            raise StorageError(f"could not write s3://{self.bucket}/{key}") from err
        return f"s3://{self.bucket}/{key}"

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                raise NotFoundError(f"no offline file at s3://{self.bucket}/{key}") from err
            raise StorageError(f"could not read s3://{self.bucket}/{key}") from err
        except BotoCoreError as err:
            raise StorageError(f"could not read s3://{self.bucket}/{key}") from err
        return body

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as err:
            raise StorageError(f"could not list s3://{self.bucket}/{prefix}") from err
        return sorted(keys)
