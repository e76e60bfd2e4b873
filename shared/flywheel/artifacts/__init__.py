"""Artifacts: versioned, integrity-checked storage of models and reports, and ONNX validation.

Examples
--------
>>> sha256_hex(b"model bytes")[:16]
'9cb7487000bc86ac'
"""

from flywheel.artifacts.ports import (
    ArtifactStore,
    BaseArtifactStore,
    sha256_hex,
    validate_key,
    verify_integrity,
)
from flywheel.artifacts.validation import OnnxSummary, validate_onnx

__all__ = [
    "ArtifactStore",
    "BaseArtifactStore",
    "OnnxSummary",
    "sha256_hex",
    "validate_key",
    "validate_onnx",
    "verify_integrity",
]
