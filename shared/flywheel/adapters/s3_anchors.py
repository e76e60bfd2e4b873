"""Anchors in an S3 bucket with Object Lock (compliance mode): write-once signed heads."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.audit.models import Anchor
from flywheel.errors import ArtifactError, ConflictError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3AnchorStore"]


class S3AnchorStore:
    """One JSON object per anchor under ``anchors/<model>/``; the bucket's default
    retention locks each object, and ``If-None-Match: *`` never replaces one.

    Examples
    --------
    >>> store = S3AnchorStore("flywheel-prod-anchors", client=s3_client)  # doctest: +SKIP
    >>> store.anchors("churn")[-1].head.seq  # doctest: +SKIP
    42
    """

    def __init__(self, bucket: str, *, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client: S3Client = client if client is not None else boto3.client("s3")

    def put(self, anchor: Anchor) -> str:
        body = anchor.model_dump_json().encode()
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=anchor.key,
                Body=body,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
            )
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise ConflictError(f"anchor {anchor.key} exists", field="anchor") from err
            raise ArtifactError(f"could not write anchor {anchor.key} ({code})") from err
        except BotoCoreError as err:
            raise ArtifactError(f"could not write anchor {anchor.key}") from err
        return f"s3://{self.bucket}/{anchor.key}"

    def anchors(self, model: str) -> list[Anchor]:
        found: list[Anchor] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"anchors/{model}/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    body = self._client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"]
                    found.append(Anchor.model_validate(json.loads(body.read())))
        except (ClientError, BotoCoreError) as err:
            raise ArtifactError(f"could not read the anchors of {model!r}") from err
        return sorted(found, key=lambda a: a.head.seq)
