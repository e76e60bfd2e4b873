"""S3ArtifactStore on moto: what S3 stores, and how S3 failures reach callers."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from flywheel.adapters.s3_artifacts import S3ArtifactStore
from flywheel.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    InvalidInputError,
)
from flywheel.registry.models import ArtifactRef

MODEL = b"\x08\x07 pretend this is an ONNX model"
LIBRARY_TEXT = "Library says: arn:aws:s3:::secret-internal-detail"


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def s3(moto_aws: None) -> Any:
    return boto3.client("s3")


@pytest.fixture
def bucket(local_names: dict[str, str]) -> str:
    """The artifacts bucket exactly as the project provisions it (versioned)."""
    return local_names["FLYWHEEL_ARTIFACTS_BUCKET"]


@pytest.fixture
def store(bucket: str, s3: Any) -> S3ArtifactStore:
    return S3ArtifactStore(bucket, client=s3)


def test_upload_carries_a_sha256_checksum_that_s3_keeps(store, s3, bucket):
    ref = store.put("models/churn/1/model.onnx", MODEL)

    head = s3.head_object(Bucket=bucket, Key="models/churn/1/model.onnx", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == _b64_sha256(MODEL)
    assert head["VersionId"] == ref.version_id
    assert head["ContentType"] == "application/octet-stream"
    assert ref.uri == f"s3://{bucket}/models/churn/1/model.onnx"


def test_json_is_stored_as_application_json(store, s3, bucket):
    store.put_json("profiles/churn/1.json", {"a": 1})
    head = s3.head_object(Bucket=bucket, Key="profiles/churn/1.json")
    assert head["ContentType"] == "application/json"


def test_uploads_use_the_configured_kms_key(bucket, s3):
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    store = S3ArtifactStore(bucket, client=s3, kms_key_id=key_id)

    store.put("m.onnx", MODEL)

    head = s3.head_object(Bucket=bucket, Key="m.onnx")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]


def test_without_a_kms_key_the_bucket_default_applies(store, s3, bucket):
    store.put("m.onnx", MODEL)
    assert s3.head_object(Bucket=bucket, Key="m.onnx").get("ServerSideEncryption") != "aws:kms"


def test_prefix_is_part_of_the_object_key_and_the_uri(bucket, s3):
    store = S3ArtifactStore(bucket, client=s3, prefix="/team-a/")

    ref = store.put("m.onnx", MODEL)

    assert ref.uri == f"s3://{bucket}/team-a/m.onnx"
    assert s3.get_object(Bucket=bucket, Key="team-a/m.onnx")["Body"].read() == MODEL
    assert store.get(ref) == MODEL


def test_a_raw_overwrite_does_not_change_what_a_pinned_ref_returns(store, s3, bucket):
    # Given a registered version, then someone overwrites the key outside Flywheel
    ref = store.put("models/m.onnx", MODEL)
    s3.put_object(Bucket=bucket, Key="models/m.onnx", Body=b"replacement")

    # Then the registered ref still returns the registered bytes
    assert store.get(ref) == MODEL


def test_a_deleted_key_keeps_its_pinned_versions(store, s3, bucket):
    ref = store.put("models/m.onnx", MODEL)
    s3.delete_object(Bucket=bucket, Key="models/m.onnx")  # adds a delete marker

    assert store.exists(ref)
    assert store.get(ref) == MODEL
    unpinned = ref.model_copy(update={"version_id": None})
    assert store.exists(unpinned) is False
    with pytest.raises(ArtifactNotFoundError):
        store.get(unpinned)


def test_unversioned_bucket_overwrite_is_caught_by_our_digest_check(s3):
    # Given a bucket without versioning: refs carry no version id ...
    s3.create_bucket(Bucket="unversioned-artifacts")
    store = S3ArtifactStore("unversioned-artifacts", client=s3)
    ref = store.put("m.onnx", MODEL)
    assert ref.version_id is None

    # ... and a raw put replaces the object with a valid checksum of its own
    forged = MODEL.replace(b"pretend", b"EVIL!!!")
    s3.put_object(
        Bucket="unversioned-artifacts",
        Key="m.onnx",
        Body=forged,
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=_b64_sha256(forged),
    )

    # Then S3 is satisfied, but the registered digest is not: nothing is returned
    returned = None
    with pytest.raises(ArtifactIntegrityError) as caught:
        returned = store.get(ref)
    assert returned is None
    assert caught.value.field == "sha256"


def test_corruption_of_a_pinned_version_is_caught_by_the_s3_checksum(store, bucket):
    # Storage corruption that leaves S3's recorded checksum alone (bit rot):
    # the body no longer matches the checksum S3 returns with ChecksumMode.
    ref = store.put("m.onnx", MODEL)
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_object(
        bucket, "m.onnx", version_id=ref.version_id
    )
    stored.value = MODEL[:-1] + b"!"

    with pytest.raises(ArtifactIntegrityError) as caught:
        store.get(ref)
    assert "checksum" in str(caught.value)


def test_refs_to_another_bucket_are_refused(store):
    ref = ArtifactRef(uri="s3://someone-elses-bucket/m.onnx", sha256="0" * 64, size_bytes=1)
    with pytest.raises(InvalidInputError) as caught:
        store.get(ref)
    assert caught.value.field == "uri"


def test_a_missing_bucket_is_an_artifact_error_without_library_text(s3):
    store = S3ArtifactStore("no-such-flywheel-bucket", client=s3)
    with pytest.raises(ArtifactError) as caught:
        store.put("m.onnx", MODEL)
    assert caught.value.details["reason"] == "bucket_not_found"
    assert "NoSuchBucket" not in str(caught.value)
    assert "specified bucket" not in str(caught.value)


@pytest.mark.parametrize("bucket_name", ["", "UPPER", "a", "bad_bucket"])
def test_invalid_bucket_names_are_refused(bucket_name, s3):
    with pytest.raises(InvalidInputError) as caught:
        S3ArtifactStore(bucket_name, client=s3)
    assert caught.value.field == "bucket"


# --- error mapping, with S3 answers injected by botocore's Stubber ------------


@pytest.fixture
def stubbed(aws_env: dict[str, str]) -> Any:
    client = boto3.client("s3")
    with Stubber(client) as stubber:
        yield S3ArtifactStore("flywheel-artifacts", client=client), stubber


REF = ArtifactRef(
    uri="s3://flywheel-artifacts/m.onnx",
    version_id="v1",
    sha256=hashlib.sha256(MODEL).hexdigest(),
    size_bytes=len(MODEL),
)


@pytest.mark.parametrize(
    ("code", "status", "expected", "reason"),
    [
        ("NoSuchKey", 404, ArtifactNotFoundError, None),
        ("NoSuchVersion", 404, ArtifactNotFoundError, None),
        ("InvalidArgument", 400, ArtifactNotFoundError, None),  # malformed version id
        ("AccessDenied", 403, ArtifactError, "access_denied"),
        ("KMS.DisabledException", 400, ArtifactError, "kms_unavailable"),
        ("SlowDown", 503, ArtifactError, "unavailable"),
        ("SomethingNew", 400, ArtifactError, "request_failed"),
    ],
)
def test_get_errors_map_to_ours_without_library_text(stubbed, code, status, expected, reason):
    store, stubber = stubbed
    stubber.add_client_error(
        "get_object", service_error_code=code, service_message=LIBRARY_TEXT, http_status_code=status
    )

    with pytest.raises(expected) as caught:
        store.get(REF)

    assert type(caught.value) is expected
    assert caught.value.details.get("reason") == reason
    assert "secret-internal-detail" not in str(caught.value)
    assert "secret-internal-detail" not in str(caught.value.to_dict())
    assert code not in str(caught.value.to_dict())


@pytest.mark.parametrize("code", ["BadDigest", "XAmzContentSHA256Mismatch"])
def test_s3_rejecting_the_upload_checksum_is_an_integrity_error(stubbed, code):
    store, stubber = stubbed
    stubber.add_client_error("put_object", service_error_code=code, service_message=LIBRARY_TEXT)

    with pytest.raises(ArtifactIntegrityError) as caught:
        store.put("m.onnx", MODEL)
    assert "secret-internal-detail" not in str(caught.value)


def test_s3_acknowledging_a_different_checksum_is_an_integrity_error(stubbed):
    store, stubber = stubbed
    stubber.add_response(
        "put_object", {"VersionId": "v1", "ChecksumSHA256": _b64_sha256(b"other bytes")}
    )
    with pytest.raises(ArtifactIntegrityError):
        store.put("m.onnx", MODEL)


def test_exists_is_false_for_not_found_and_raises_for_denied(stubbed):
    store, stubber = stubbed
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    stubber.add_client_error("head_object", service_error_code="403", http_status_code=403)

    assert store.exists(REF) is False
    with pytest.raises(ArtifactError) as caught:
        store.exists(REF)
    assert caught.value.details["reason"] == "access_denied"


def test_an_unreachable_endpoint_is_an_artifact_error(aws_env):
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1),
    )
    with pytest.raises(ArtifactError) as caught:
        S3ArtifactStore("flywheel-artifacts", client=client).get(REF)
    assert caught.value.details["reason"] == "unreachable"
    assert "127.0.0.1" not in str(caught.value)
