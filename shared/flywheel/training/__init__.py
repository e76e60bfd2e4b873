"""Training: configs, datasets, scikit-learn fitting, ONNX conversion with parity, lineage.

Import the submodules directly (``flywheel.training.trainer`` and so on); this
package imports nothing so that serving can depend on :mod:`flywheel` without
scikit-learn.
"""
