"""Versioned transformations: pure functions from source columns to feature columns.

A transformation takes ``{column: numpy array}`` (one array per source column, all
the same length) and returns ``{feature: array-like}`` of that length. It must be
pure and row-wise: the same rows give the same features, whether they are ingested
for training or materialized for serving. That is the one transformation path.

Source nulls reach the function as ``NaN`` (float columns) or ``None`` (other
columns); a ``NaN`` it returns in a float feature is a null.

Examples
--------
>>> import numpy as np
>>> registry = TransformationRegistry()
>>> @registry.register("spend_features", version=1)
... def spend_features(cols):
...     return {"log_spend": np.log1p(cols["spend"])}
>>> spend_features.ref.name, spend_features.ref.version
('spend_features', 1)
>>> round(float(spend_features({"spend": np.array([0.0, 9.0])})["log_spend"][1]), 4)
2.3026
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from flywheel.errors import ConflictError, InvalidInputError, NotFoundError
from flywheel.features.models import TransformationRef

Columns = Mapping[str, npt.NDArray[Any]]
TransformFn = Callable[[Columns], Mapping[str, Any]]


class TransformationError(InvalidInputError):
    """A transformation returned something other than one array per feature, row for row."""

    code = "invalid_transformation"


def fingerprint(fn: Callable[..., Any]) -> str:
    """SHA-256 of a function's source (its bytecode when the source is unavailable).

    Examples
    --------
    >>> def f(cols):
    ...     return cols
    >>> len(fingerprint(f))
    64
    """
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = repr((getattr(fn, "__qualname__", ""), code.co_code if code else b""))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Transformation:
    """A named, versioned transformation function."""

    name: str
    version: int
    fn: TransformFn = field(compare=False)

    @property
    def ref(self) -> TransformationRef:
        return TransformationRef(
            name=self.name, version=self.version, fingerprint=fingerprint(self.fn)
        )

    def __call__(self, columns: Columns) -> dict[str, npt.NDArray[Any]]:
        """Run the function and check its output shape (not its types: ingestion does)."""
        rows = len(next(iter(columns.values()))) if columns else 0
        try:
            output = self.fn(columns)
        except Exception as exc:  # the user's code: report which transformation, not its text
            raise TransformationError(
                f"transformation {self.name}@v{self.version} failed ({type(exc).__name__})"
            ) from exc
        if not isinstance(output, Mapping):
            raise TransformationError(
                f"transformation {self.name}@v{self.version} must return a mapping of columns"
            )
        result: dict[str, npt.NDArray[Any]] = {}
        for name, values in output.items():
            array = np.asarray(values)
            if array.ndim != 1 or (columns and len(array) != rows):
                raise TransformationError(
                    f"transformation {self.name}@v{self.version} returned {name!r} with "
                    f"shape {array.shape}; expected ({rows},)",
                    field=str(name),
                )
            result[str(name)] = array
        return result


def _identity(columns: Columns) -> Mapping[str, Any]:
    return dict(columns)


#: Features are the source columns of the same names, unchanged.
IDENTITY = Transformation("identity", 1, _identity)


class TransformationRegistry:
    """Transformations by ``(name, version)``: how stored definitions find their code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, int], Transformation] = {}
        self.add(IDENTITY)

    def add(self, transformation: Transformation) -> Transformation:
        """Register ``transformation``; a different function under a taken name+version fails."""
        key = (transformation.name, transformation.version)
        with self._lock:
            existing = self._items.get(key)
            if existing is not None and existing.ref.fingerprint != transformation.ref.fingerprint:
                raise ConflictError(
                    f"transformation {transformation.name}@v{transformation.version} is already "
                    "registered with different code; bump its version",
                    field="transformation",
                )
            self._items[key] = transformation
        return transformation

    def register(self, name: str, *, version: int) -> Callable[[TransformFn], Transformation]:
        """Decorator: register a function as transformation ``name@v<version>``."""
        if version < 1:
            raise InvalidInputError("a transformation version starts at 1", field="version")

        def decorate(fn: TransformFn) -> Transformation:
            return self.add(Transformation(name, version, fn))

        return decorate

    def resolve(self, ref: TransformationRef) -> Transformation:
        """The code of a stored reference, refusing code that no longer matches it.

        Raises
        ------
        NotFoundError
            No transformation of that name and version is registered in this process.
        ConflictError
            The registered function's code differs from the one the view was
            registered with (changed without a version bump).
        """
        with self._lock:
            found = self._items.get((ref.name, ref.version))
        if found is None:
            raise NotFoundError(
                f"transformation {ref} is not registered here; import the module defining it",
                field="transformation",
            )
        if found.ref.fingerprint != ref.fingerprint:
            raise ConflictError(
                f"transformation {ref} changed since the view was registered; "
                "register it under a new version",
                field="transformation",
            )
        return found


#: The process-wide registry that :func:`transformation` registers into.
TRANSFORMATIONS = TransformationRegistry()


def transformation(name: str, *, version: int) -> Callable[[TransformFn], Transformation]:
    """Register a function in :data:`TRANSFORMATIONS` (see :class:`TransformationRegistry`)."""
    return TRANSFORMATIONS.register(name, version=version)
