"""Read one object by its ``s3://bucket/key`` URI (dataset sources)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import DatasetError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["read_object"]

_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})


def read_object(client: S3Client, uri: str) -> bytes:
    """The bytes at ``uri``; :class:`~flywheel.errors.DatasetError` when there are none.

    Examples
    --------
    >>> read_object(s3_client, "s3://my-bucket/churn.csv")  # doctest: +SKIP
    b'tenure,charges,churned\\n...'
    """
    if not uri.startswith("s3://"):
        raise DatasetError(f"not an s3:// URI: {uri}", field="dataset.source")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            where = f"no bucket for {uri}" if code == "NoSuchBucket" else f"no object at {uri}"
            raise DatasetError(where, field="dataset.source") from err
        raise DatasetError(f"could not read {uri} ({code})", field="dataset.source") from err
    except BotoCoreError as err:
        raise DatasetError(f"could not read {uri}", field="dataset.source") from err
    return body
