"""Serving: turn requests into feature matrices and run verified ONNX models.

Examples
--------
>>> from flywheel.serving import records_to_matrix
>>> from flywheel.registry.models import FeatureSpec, InputSchema
>>> records_to_matrix([{"x": 1}], InputSchema(features=(FeatureSpec(name="x"),)))
array([[1.]])
"""

from flywheel.serving.predictor import OnnxModel, Prediction, RuntimeSettings, records_to_matrix

__all__ = ["OnnxModel", "Prediction", "RuntimeSettings", "records_to_matrix"]
