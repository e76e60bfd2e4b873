"""S3 artifact store: versioned objects, SHA-256 checksums, optional SSE-KMS."""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any, NoReturn

import boto3
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

from flywheel.artifacts.ports import BaseArtifactStore, artifact_format, validate_key
from flywheel.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    FlywheelError,
    InvalidInputError,
)
from flywheel.registry.models import ArtifactRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        GetObjectRequestTypeDef,
        HeadObjectRequestTypeDef,
        PutObjectRequestTypeDef,
    )

__all__ = ["S3ArtifactStore"]

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# 405 MethodNotAllowed: the pinned version is a delete marker.
_NOT_FOUND_CODES = frozenset(
    {"NoSuchKey", "NoSuchVersion", "404", "NotFound", "405", "MethodNotAllowed"}
)
_DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})
_DENIED_CODES = frozenset({"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId"})
_UNAVAILABLE_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}
)


class S3ArtifactStore(BaseArtifactStore):
    """Artifacts in one S3 bucket (versioning on), pinned by version id and SHA-256.

    Every upload sends a SHA-256 checksum that S3 verifies on receipt; every
    read asks S3 for that checksum back (``ChecksumMode=ENABLED``) and then
    re-hashes the body against the ref's digest, the one recorded at registration
    (not whatever the bucket now holds).

    Parameters
    ----------
    bucket
        Bucket name.
    client
        An S3 client; a default ``boto3.client("s3")`` is created when omitted.
    prefix
        Key prefix inside the bucket (``"artifacts"`` stores ``k`` at ``artifacts/k``).
    kms_key_id
        Encrypt uploads with this KMS key (SSE-KMS with an S3 bucket key);
        when omitted the bucket's default encryption applies.

    Examples
    --------
    >>> store = S3ArtifactStore("flywheel-artifacts", client=s3_client)  # doctest: +SKIP
    >>> ref = store.put("models/churn/3/model.onnx", onnx_bytes)  # doctest: +SKIP
    >>> ref.uri  # doctest: +SKIP
    's3://flywheel-artifacts/models/churn/3/model.onnx'
    >>> store.get(ref) == onnx_bytes  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        bucket: str,
        *,
        client: S3Client | None = None,
        prefix: str = "",
        kms_key_id: str | None = None,
    ) -> None:
        if not _BUCKET_NAME.fullmatch(bucket):
            raise InvalidInputError(f"invalid S3 bucket name {bucket!r}", field="bucket")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self._bucket = bucket
        self._prefix = prefix
        self._kms_key_id = kms_key_id or None
        self._client: S3Client = client if client is not None else boto3.client("s3")

    @property
    def bucket(self) -> str:
        """The bucket this store reads and writes."""
        return self._bucket

    def exists(self, ref: ArtifactRef) -> bool:
        """Whether the pinned object version is present (``HeadObject``).

        Examples
        --------
        >>> store.exists(ref)  # doctest: +SKIP
        True
        """
        key = self._key_of(ref)
        request: HeadObjectRequestTypeDef = {"Bucket": self._bucket, "Key": key}
        if ref.version_id:
            request["VersionId"] = ref.version_id
        try:
            self._client.head_object(**request)
        except ClientError as err:
            code = _error_code(err)
            if code in _NOT_FOUND_CODES or (code in {"400", "InvalidArgument"} and ref.version_id):
                return False
            _raise_mapped(err, ref.uri, "exists")
        except BotoCoreError as err:
            _raise_mapped(err, ref.uri, "exists")
        return True

    def _write(
        self, key: str, data: bytes, *, content_type: str, sha256: str
    ) -> tuple[str, str | None]:
        object_key = f"{self._prefix}/{key}" if self._prefix else key
        uri = f"s3://{self._bucket}/{object_key}"
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        request: PutObjectRequestTypeDef = {
            "Bucket": self._bucket,
            "Key": object_key,
            "Body": data,
            "ContentType": content_type,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": checksum,
        }
        if self._kms_key_id:
            request["ServerSideEncryption"] = "aws:kms"
            request["SSEKMSKeyId"] = self._kms_key_id
            request["BucketKeyEnabled"] = True
        try:
            response = self._client.put_object(**request)
        except (ClientError, BotoCoreError) as err:
            _raise_mapped(err, uri, "put")
        returned = response.get("ChecksumSHA256")
        if returned is not None and returned != checksum:
            raise ArtifactIntegrityError(
                f"artifact {uri}: S3 stored a different SHA-256 than the one uploaded",
                field="sha256",
                details={"uri": uri, "operation": "put"},
            )
        return uri, response.get("VersionId")

    def locate(self, key: str) -> ArtifactRef | None:
        """The latest version of ``key`` with the SHA-256 S3 stored at put (``HeadObject``
        with checksum mode); ``None`` when the key does not exist.

        Raises
        ------
        ArtifactIntegrityError
            The object has no SHA-256 checksum (it was not written by this store).
        """
        object_key = f"{self._prefix}/{validate_key(key)}" if self._prefix else validate_key(key)
        uri = f"s3://{self._bucket}/{object_key}"
        request: HeadObjectRequestTypeDef = {
            "Bucket": self._bucket,
            "Key": object_key,
            "ChecksumMode": "ENABLED",
        }
        try:
            response = self._client.head_object(**request)
        except ClientError as err:
            if _error_code(err) in _NOT_FOUND_CODES:
                return None
            _raise_mapped(err, uri, "locate")
        except BotoCoreError as err:
            _raise_mapped(err, uri, "locate")
        checksum = response.get("ChecksumSHA256")
        if not checksum:
            raise ArtifactIntegrityError(
                f"artifact {uri} has no SHA-256 checksum: it was not written by Flywheel",
                field="sha256",
                details={"uri": uri, "operation": "locate"},
            )
        return ArtifactRef(
            uri=uri,
            version_id=response.get("VersionId"),
            sha256=base64.b64decode(checksum).hex(),
            size_bytes=int(response["ContentLength"]),
            format=artifact_format(key),
        )

    def _read(self, ref: ArtifactRef) -> bytes:
        key = self._key_of(ref)
        request: GetObjectRequestTypeDef = {
            "Bucket": self._bucket,
            "Key": key,
            "ChecksumMode": "ENABLED",
        }
        if ref.version_id:
            request["VersionId"] = ref.version_id
        try:
            response = self._client.get_object(**request)
            body = response["Body"]
            if response.get("ContentLength", ref.size_bytes) != ref.size_bytes:
                body.close()
                raise ArtifactIntegrityError(
                    f"artifact {ref.uri} (version {ref.version_id}) failed its integrity check: "
                    f"size is {response.get('ContentLength')} bytes, registered {ref.size_bytes}",
                    field="size_bytes",
                    details={"uri": ref.uri, "version_id": ref.version_id},
                )
            return body.read()
        except (ClientError, BotoCoreError) as err:
            _raise_mapped(err, ref.uri, "get", version_id=ref.version_id)

    def _key_of(self, ref: ArtifactRef) -> str:
        root = f"s3://{self._bucket}/"
        if not ref.uri.startswith(root):
            raise InvalidInputError(
                f"artifact {ref.uri} is not in this store (bucket {self._bucket!r})", field="uri"
            )
        key = ref.uri.removeprefix(root)
        validate_key(key)
        return key


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _raise_mapped(
    err: ClientError | BotoCoreError, uri: str, operation: str, *, version_id: str | None = None
) -> NoReturn:
    """Translate a botocore error into ours; the library's message never leaks."""
    where = f"artifact {uri}" + (f" (version {version_id})" if version_id else "")
    details: dict[str, Any] = {"uri": uri, "operation": operation}
    if version_id:
        details["version_id"] = version_id
    error: FlywheelError
    if isinstance(err, FlexibleChecksumError):
        error = ArtifactIntegrityError(
            f"{where} failed its integrity check: the body does not match the checksum S3 "
            "stored at upload",
            field="sha256",
            details=details,
        )
    elif isinstance(err, BotoCoreError):
        error = ArtifactError(
            f"{where}: the artifact store could not be reached",
            details={**details, "reason": "unreachable"},
        )
    else:
        code = _error_code(err)
        if code in _NOT_FOUND_CODES or (code == "InvalidArgument" and version_id):
            error = ArtifactNotFoundError(f"{where} does not exist", field="uri", details=details)
        elif code == "NoSuchBucket":
            error = ArtifactError(
                f"{where}: the artifact bucket does not exist",
                details={**details, "reason": "bucket_not_found"},
            )
        elif code in _DIGEST_CODES:
            error = ArtifactIntegrityError(
                f"{where}: S3 rejected the upload because the bytes it received do not match "
                "their checksum",
                field="sha256",
                details=details,
            )
        elif code in _DENIED_CODES:
            error = ArtifactError(
                f"{where}: access to the artifact store was denied",
                details={**details, "reason": "access_denied"},
            )
        elif code.startswith("KMS."):
            error = ArtifactError(
                f"{where}: the artifact encryption key is not usable",
                details={**details, "reason": "kms_unavailable"},
            )
        elif code in _UNAVAILABLE_CODES:
            error = ArtifactError(
                f"{where}: the artifact store is temporarily unavailable; try again",
                details={**details, "reason": "unavailable"},
            )
        else:
            error = ArtifactError(
                f"{where}: the artifact store request failed",
                details={**details, "reason": "request_failed"},
            )
    raise error from err
