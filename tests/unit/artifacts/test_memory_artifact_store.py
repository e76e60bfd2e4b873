"""InMemoryArtifactStore specifics; shared behaviour lives in tests/contract."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
from flywheel.artifacts import ArtifactStore
from flywheel.errors import ArtifactIntegrityError, ArtifactNotFoundError, InvalidInputError
from flywheel.registry.models import ArtifactRef


def test_it_satisfies_the_port():
    assert isinstance(InMemoryArtifactStore(), ArtifactStore)


def test_refs_use_memory_uris_and_opaque_version_ids():
    store = InMemoryArtifactStore()
    first = store.put("models/m.onnx", b"1")
    second = store.put("models/m.onnx", b"2")

    assert first.uri == second.uri == "memory://models/m.onnx"
    assert first.version_id
    assert second.version_id
    assert first.version_id != second.version_id


def test_tamper_makes_get_refuse_the_version_but_not_its_siblings():
    # Given two versions of one key
    store = InMemoryArtifactStore()
    old = store.put("m.onnx", b"old model")
    new = store.put("m.onnx", b"new model")

    # When the old version's bytes are altered in storage
    store.tamper(old, b"evil model")

    # Then the old ref is refused and the new one still reads
    with pytest.raises(ArtifactIntegrityError):
        store.get(old)
    assert store.get(new) == b"new model"


def test_tampering_an_unknown_version_is_not_found():
    store = InMemoryArtifactStore()
    ref = store.put("m.onnx", b"x").model_copy(update={"version_id": "nope"})
    with pytest.raises(ArtifactNotFoundError):
        store.tamper(ref, b"y")


def test_s3_refs_are_refused():
    ref = ArtifactRef(uri="s3://bucket/m.onnx", sha256="0" * 64, size_bytes=1)
    with pytest.raises(InvalidInputError) as caught:
        InMemoryArtifactStore().get(ref)
    assert caught.value.field == "uri"


def test_concurrent_puts_keep_every_version():
    store = InMemoryArtifactStore()
    payloads = [f"v{i}".encode() for i in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        refs = list(pool.map(lambda data: store.put("hot/key", data), payloads))

    assert len({r.version_id for r in refs}) == 64
    assert [store.get(r) for r in refs] == payloads
