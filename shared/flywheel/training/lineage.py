"""Where a model came from: library versions, the dependency lock hash, the code commit."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

#: Libraries whose versions go into every lineage record: key -> the distributions
#: that provide it (XGBoost ships as ``xgboost`` or as the CPU-only ``xgboost-cpu``).
TRACKED_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "sklearn": ("scikit-learn",),
    "skl2onnx": ("skl2onnx",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime",),
    "numpy": ("numpy",),
    "lightgbm": ("lightgbm",),
    "xgboost": ("xgboost", "xgboost-cpu"),
}

COMMIT_ENV_VAR = "FLYWHEEL_CODE_COMMIT"


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide a model's numbers, plus Python's.

    Missing distributions are reported as ``"not installed"``.

    Examples
    --------
    >>> sorted(library_versions())
    ['lightgbm', 'numpy', 'onnx', 'onnxruntime', 'python', 'skl2onnx', 'sklearn', 'xgboost']
    """
    versions: dict[str, str] = {}
    for key, distributions in TRACKED_DISTRIBUTIONS.items():
        versions[key] = "not installed"
        for distribution in distributions:
            try:
                versions[key] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                continue
            break
    versions["python"] = platform.python_version()
    return versions


def dependency_lock_hash() -> str:
    """SHA-256 over the sorted ``name==version`` lines of every installed distribution.

    Names are normalised (lowercase, ``_``/``.`` -> ``-``) so the hash does not
    depend on how an installer spelled them.

    Examples
    --------
    >>> len(dependency_lock_hash())
    64
    """
    lines = set()
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if not name:
            continue
        normalised = name.lower().replace("_", "-").replace(".", "-")
        lines.add(f"{normalised}=={distribution.version}")
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def code_commit() -> str | None:
    """The code commit: ``$FLYWHEEL_CODE_COMMIT``, else ``git rev-parse HEAD`` of this checkout.

    A checkout with uncommitted changes gets a ``-dirty`` suffix.  Never raises:
    no environment variable and no git checkout (the Lambda case) give ``None``.

    Examples
    --------
    >>> import os
    >>> os.environ["FLYWHEEL_CODE_COMMIT"] = "abc123"
    >>> code_commit()
    'abc123'
    >>> del os.environ["FLYWHEEL_CODE_COMMIT"]
    """
    from_env = os.environ.get(COMMIT_ENV_VAR, "").strip()
    if from_env:
        return from_env
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    return f"{head}-dirty" if dirty else head
