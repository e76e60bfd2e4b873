"""Serving: turn requests into feature matrices and run verified ONNX models.

The predictor's names are loaded on first use, so modules that need only the HTTP
edge, capture or routing (the LLM gateway, the control-plane functions) never import
numpy.

Examples
--------
>>> from flywheel.serving import records_to_matrix
>>> from flywheel.registry.models import FeatureSpec, InputSchema
>>> records_to_matrix([{"x": 1}], InputSchema(features=(FeatureSpec(name="x"),)))
array([[1.]])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flywheel.serving.predictor import (
        OnnxModel,
        Prediction,
        RuntimeSettings,
        records_to_matrix,
    )

__all__ = ["OnnxModel", "Prediction", "RuntimeSettings", "records_to_matrix"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from flywheel.serving import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
