"""Rules every store shares: keys, digests, canonical JSON."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flywheel.artifacts import sha256_hex, validate_key, verify_integrity
from flywheel.artifacts.ports import MAX_KEY_BYTES, decode_json, encode_json
from flywheel.errors import ArtifactIntegrityError, InvalidArtifactError, InvalidInputError
from flywheel.registry.models import ArtifactRef, FeatureSpec


@pytest.mark.parametrize(
    "key",
    [
        "model.onnx",
        "models/churn/3/model.onnx",
        "capture/date=2026-01-01/part-0001.json",
        "reports/drift 2026-01-01T00:00:00Z.html",
    ],
)
def test_ordinary_keys_are_accepted(key):
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "non-empty"),
        ("../secrets", "'..'"),
        ("models/../../etc/passwd", "'..'"),
        ("models/..", "'..'"),
        ("a..b", "'..'"),
        ("/etc/passwd", "start with '/'"),
        ("models/", "end with '/'"),
        ("models//m.onnx", "empty or '.'"),
        ("models/./m.onnx", "empty or '.'"),
        ("models\\m.onnx", "backslashes"),
        ("models/m\n.onnx", "control characters"),
        ("x" * (MAX_KEY_BYTES + 1), "longer than"),
    ],
)
def test_unsafe_keys_are_refused_with_the_reason(key, reason):
    with pytest.raises(InvalidInputError) as caught:
        validate_key(key)
    assert caught.value.field == "key"
    assert reason in str(caught.value)


@given(st.text(min_size=1, max_size=200))
def test_accepted_keys_never_escape_their_root(key):
    try:
        validate_key(key)
    except InvalidInputError:
        return
    assert ".." not in key
    assert not key.startswith("/")
    assert "" not in key.split("/")


def _ref(data: bytes) -> ArtifactRef:
    return ArtifactRef(uri="memory://k", sha256=sha256_hex(data), size_bytes=len(data))


def test_verify_integrity_accepts_the_registered_bytes():
    verify_integrity(b"abc", _ref(b"abc"))


def test_verify_integrity_refuses_changed_bytes_of_the_same_size():
    with pytest.raises(ArtifactIntegrityError) as caught:
        verify_integrity(b"abd", _ref(b"abc"))
    assert caught.value.field == "sha256"


def test_verify_integrity_refuses_a_different_size():
    with pytest.raises(ArtifactIntegrityError) as caught:
        verify_integrity(b"abcd", _ref(b"abc"))
    assert caught.value.field == "size_bytes"


def test_json_encoding_is_canonical():
    assert encode_json({"b": [1, 2], "a": "é"}) == encode_json({"a": "é", "b": [1, 2]})
    assert encode_json({"b": [1, 2], "a": "é"}) == '{"a":"é","b":[1,2]}'.encode()


def test_pydantic_models_are_encoded_as_json():
    assert decode_json(encode_json(FeatureSpec(name="age"))) == {
        "name": "age",
        "dtype": "float",
        "minimum": None,
        "maximum": None,
        "nullable": False,
        "categories": [],
        "unknown": "error",
        "max_length": None,
    }


@pytest.mark.parametrize("obj", [{"x": math.nan}, {"x": object()}, {1j: 1}])
def test_values_json_cannot_carry_are_refused(obj):
    with pytest.raises(InvalidInputError) as caught:
        encode_json(obj)
    assert caught.value.field == "obj"


@pytest.mark.parametrize("data", [b"\xff\xfe", b"{not json", b'{"x": NaN}'])
def test_bytes_that_are_not_canonical_json_are_refused(data):
    with pytest.raises(InvalidArtifactError):
        decode_json(data)
