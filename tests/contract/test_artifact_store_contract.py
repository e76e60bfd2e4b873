"""One behaviour suite, run against every ArtifactStore: in-memory and S3 (moto).

If a test passes for one store and fails for the other, the local runtime and
AWS disagree, which is exactly what this suite is here to catch.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
from flywheel.adapters.s3_artifacts import S3ArtifactStore
from flywheel.artifacts import ArtifactStore
from flywheel.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    InvalidArtifactError,
    InvalidInputError,
)
from flywheel.registry.models import ArtifactRef
from tests.contract.conftest import boto3_session

if TYPE_CHECKING:
    from collections.abc import Callable

BUCKET = "flywheel-contract-artifacts"


@dataclass
class StoreKit:
    store: ArtifactStore
    scheme: str
    # Replace the bytes of the exact version a ref pins, behind the store's back.
    tamper: Callable[[ArtifactRef, bytes], None]
    # A ref that belongs to some other store.
    foreign_ref: ArtifactRef


def _memory_kit() -> StoreKit:
    store = InMemoryArtifactStore()
    return StoreKit(
        store=store,
        scheme="memory://",
        tamper=store.tamper,
        foreign_ref=ArtifactRef(uri="s3://elsewhere/m.onnx", sha256="0" * 64, size_bytes=1),
    )


def _s3_tamper(ref: ArtifactRef, data: bytes) -> None:
    """Rewrite the pinned version inside moto's backend, checksum included.

    Real S3 never lets a client rewrite an existing version; what this stands
    for is storage returning other bytes for a pinned version (an operator
    restoring the wrong backup, a bug, a compromised bucket).  Updating the
    stored checksum as well means S3's own checksum check passes and only
    our re-hash against the ref's SHA-256 can catch it.
    """
    bucket, key = ref.uri.removeprefix("s3://").split("/", 1)
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_object(
        bucket, key, version_id=ref.version_id
    )
    assert stored is not None
    stored.value = data
    stored.checksum_value = base64.b64encode(hashlib.sha256(data).digest()).decode()


def _s3_kit() -> StoreKit:
    # moto is active (the shared ``moto_aws`` fixture: fake credentials, us-east-1).
    client = boto3_session().client("s3")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return StoreKit(
        store=S3ArtifactStore(BUCKET, client=client),
        scheme=f"s3://{BUCKET}/",
        tamper=_s3_tamper,
        foreign_ref=ArtifactRef(uri="memory://m.onnx", sha256="0" * 64, size_bytes=1),
    )


@pytest.fixture(params=["memory", "s3"])
def kit(request: pytest.FixtureRequest) -> StoreKit:
    if request.param == "memory":
        return _memory_kit()
    request.getfixturevalue("moto_aws")
    return _s3_kit()


MODEL = b"\x08\x07onnx model bytes"


def test_put_returns_a_ref_that_pins_size_digest_and_version(kit: StoreKit):
    ref = kit.store.put("models/churn/1/model.onnx", MODEL)

    assert ref.uri == f"{kit.scheme}models/churn/1/model.onnx"
    assert ref.sha256 == hashlib.sha256(MODEL).hexdigest()
    assert ref.size_bytes == len(MODEL)
    assert ref.version_id


def test_get_returns_exactly_the_stored_bytes(kit: StoreKit):
    ref = kit.store.put("models/churn/1/model.onnx", MODEL)
    assert kit.store.get(ref) == MODEL


def test_an_overwritten_key_still_returns_the_registered_version(kit: StoreKit):
    # Given version 1 was registered, then someone wrote the same key again
    registered = kit.store.put("models/churn/model.onnx", b"registered model")
    newer = kit.store.put("models/churn/model.onnx", b"a different model")

    # Then each ref still returns its own bytes
    assert kit.store.get(registered) == b"registered model"
    assert kit.store.get(newer) == b"a different model"
    assert registered.version_id != newer.version_id


def test_a_ref_without_version_reads_the_latest_and_still_verifies(kit: StoreKit):
    kit.store.put("k.bin", b"first")
    latest = kit.store.put("k.bin", b"second")
    unpinned = latest.model_copy(update={"version_id": None})

    assert kit.store.get(unpinned) == b"second"


def test_a_tampered_version_is_refused_and_nothing_is_returned(kit: StoreKit):
    ref = kit.store.put("models/churn/1/model.onnx", MODEL)
    kit.tamper(ref, b"\x08\x07EVIL model bytes")  # same size, different bytes

    returned = None
    with pytest.raises(ArtifactIntegrityError) as caught:
        returned = kit.store.get(ref)

    assert returned is None
    assert caught.value.code == "artifact_integrity"
    assert ref.uri in str(caught.value)


def test_a_tampered_version_of_another_size_is_refused(kit: StoreKit):
    ref = kit.store.put("m.onnx", MODEL)
    kit.tamper(ref, MODEL + b"+payload")

    with pytest.raises(ArtifactIntegrityError):
        kit.store.get(ref)


def test_a_ref_whose_digest_disagrees_with_storage_is_refused(kit: StoreKit):
    # Given a registry record whose digest is not that of the stored version
    ref = kit.store.put("m.onnx", MODEL)
    wrong = ref.model_copy(update={"sha256": hashlib.sha256(b"something else").hexdigest()})

    with pytest.raises(ArtifactIntegrityError) as caught:
        kit.store.get(wrong)
    assert caught.value.field == "sha256"


def test_a_ref_whose_size_disagrees_with_storage_is_refused(kit: StoreKit):
    ref = kit.store.put("m.onnx", MODEL)
    with pytest.raises(ArtifactIntegrityError):
        kit.store.get(ref.model_copy(update={"size_bytes": ref.size_bytes + 1}))


def test_a_ref_pinning_another_versions_id_is_refused(kit: StoreKit):
    # Given two versions, and a ref that mixes v1's digest with v2's version id
    first = kit.store.put("m.onnx", b"model one")
    second = kit.store.put("m.onnx", b"model two")
    mixed = first.model_copy(update={"version_id": second.version_id})

    with pytest.raises(ArtifactIntegrityError):
        kit.store.get(mixed)


def test_unknown_version_is_not_found(kit: StoreKit):
    ref = kit.store.put("m.onnx", MODEL)
    missing = ref.model_copy(update={"version_id": "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd06"})

    with pytest.raises(ArtifactNotFoundError) as caught:
        kit.store.get(missing)
    assert caught.value.code == "artifact_not_found"
    assert kit.store.exists(missing) is False


def test_unknown_key_is_not_found(kit: StoreKit):
    ref = kit.store.put("m.onnx", MODEL)
    missing = ref.model_copy(update={"uri": ref.uri.replace("m.onnx", "nope.onnx")})

    with pytest.raises(ArtifactNotFoundError):
        kit.store.get(missing)
    assert kit.store.exists(missing.model_copy(update={"version_id": None})) is False


def test_exists_is_true_for_every_stored_version(kit: StoreKit):
    first = kit.store.put("m.onnx", b"one")
    second = kit.store.put("m.onnx", b"two")
    assert kit.store.exists(first)
    assert kit.store.exists(second)


def test_json_round_trips_and_is_canonical(kit: StoreKit):
    first = kit.store.put_json("profiles/churn/1.json", {"b": [1, 2.5], "a": {"z": None}})
    again = kit.store.put_json("profiles/churn/1.json", {"a": {"z": None}, "b": [1, 2.5]})

    assert kit.store.get_json(first) == {"a": {"z": None}, "b": [1, 2.5]}
    assert first.sha256 == again.sha256


def test_get_json_of_a_non_json_artifact_is_refused(kit: StoreKit):
    ref = kit.store.put("m.onnx", b"\x08\x07not json")
    with pytest.raises(InvalidArtifactError):
        kit.store.get_json(ref)


def test_get_json_verifies_integrity_first(kit: StoreKit):
    ref = kit.store.put_json("r.json", {"ok": True})
    kit.tamper(ref, b'{"ok":false}')
    with pytest.raises(ArtifactIntegrityError):
        kit.store.get_json(ref)


@pytest.mark.parametrize("key", ["../escape.onnx", "/abs.onnx", "a/../../b", "a//b", ""])
def test_unsafe_keys_are_refused_and_nothing_is_written(kit: StoreKit, key: str):
    with pytest.raises(InvalidInputError) as caught:
        kit.store.put(key, MODEL)
    assert caught.value.field == "key"


def test_empty_data_is_refused(kit: StoreKit):
    with pytest.raises(InvalidInputError) as caught:
        kit.store.put("empty.bin", b"")
    assert caught.value.field == "data"


def test_unserializable_json_is_refused(kit: StoreKit):
    with pytest.raises(InvalidInputError) as caught:
        kit.store.put_json("r.json", {"when": object()})
    assert caught.value.field == "obj"


def test_refs_from_another_store_are_refused(kit: StoreKit):
    with pytest.raises(InvalidInputError) as caught:
        kit.store.get(kit.foreign_ref)
    assert caught.value.field == "uri"


def test_locate_pins_the_latest_version_of_a_key_with_its_stored_digest(kit: StoreKit):
    # Given a key written twice by another process (nobody holds the refs)
    kit.store.put_json("training-jobs/churn/run-1/result.json", {"run": 1})
    latest = kit.store.put_json("training-jobs/churn/run-1/result.json", {"run": 2})

    # Then locate finds the latest version, as put described it, and get verifies it
    found = kit.store.locate("training-jobs/churn/run-1/result.json")
    assert found == latest
    assert kit.store.get_json(found) == {"run": 2}
    # And a key nobody wrote is not found (no error: the caller decides)
    assert kit.store.locate("training-jobs/churn/run-2/result.json") is None
