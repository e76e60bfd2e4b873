"""Check request records against a version's registered input schema.

For every record and every feature of the schema:

- the feature must be present, and no other field may be;
- ``float`` features take JSON numbers, ``int`` features integers (``3.0`` is fine),
  ``bool`` features ``true``/``false``; a declared ``minimum``/``maximum`` is inclusive
  and enforced;
- **NaN/Inf policy**: ``null`` (or a ``NaN`` literal) means *missing* and is accepted
  only for ``nullable`` features, where the model sees NaN; ``Infinity``/``-Infinity``,
  and numbers too large for the model's tensor type, are always refused;
- a request carries at most ``max_records`` records (HTTP 413 beyond).

The error lists *each* bad field with its reason (a second pass over every value runs
only when the first, which builds the model's matrix, finds a problem).

Examples
--------
>>> from flywheel.registry.models import FeatureSpec, InputSchema
>>> schema = InputSchema(features=(FeatureSpec(name="age", minimum=0, maximum=130),))
>>> RecordValidator(schema).matrix([{"age": 42}])
array([[42.]])
>>> try:
...     RecordValidator(schema).matrix([{"age": -1}, {"age": "x"}])
... except InvalidRecordsError as err:
...     [(p["row"], p["reason"]) for p in err.details["errors"]]
[(0, 'must be >= 0'), (1, 'must be a number, got string')]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.errors import InvalidInputError, InvalidRecordsError, PayloadTooLargeError
from flywheel.serving.predictor import _MatrixPlan, string_problem

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from flywheel.registry.models import FeatureSpec, InputSchema

__all__ = ["DEFAULT_MAX_RECORDS", "MAX_LISTED_PROBLEMS", "RecordValidator"]

#: Records per request unless the deployment says otherwise (``FLYWHEEL_MAX_BATCH_RECORDS``).
DEFAULT_MAX_RECORDS = 100
#: An error lists at most this many problems; ``details["truncated"]`` flags the rest.
MAX_LISTED_PROBLEMS = 50

_FLOAT32_MAX = float(np.finfo(np.float32).max)


class RecordValidator:
    """Validate records for one input schema and build the model's matrix.

    Parameters
    ----------
    schema
        The version's registered input schema.
    max_records
        The batch cap; more records raise :class:`PayloadTooLargeError` (HTTP 413).

    Examples
    --------
    >>> from flywheel.registry.models import FeatureSpec, InputSchema
    >>> v = RecordValidator(InputSchema(features=(FeatureSpec(name="x"),)), max_records=2)
    >>> v.matrix([{"x": 1.5}]).shape
    (1, 1)
    >>> v.problems([{"x": None}, {"y": 1}])
    [{'row': 0, 'field': 'x', 'reason': 'must not be null'}, \
{'row': 1, 'field': 'x', 'reason': 'is missing'}, \
{'row': 1, 'field': 'y', 'reason': 'is not a feature of this model'}]
    """

    __slots__ = ("_features", "_has_ranges", "_high", "_low", "_plan", "max_records", "schema")

    def __init__(self, schema: InputSchema, *, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        if max_records < 1:
            raise InvalidInputError("max_records must be at least 1", field="max_records")
        self.schema = schema
        self.max_records = max_records
        self._plan = _MatrixPlan(schema)
        self._features = schema.features
        dtype = np.float64 if self._plan.typed else self._plan.dtype
        # Bounds in the tensor dtype: casting is monotonic, so a value within its
        # declared range never fails the check after the cast.
        self._low = np.array(
            [-np.inf if f.minimum is None else f.minimum for f in schema.features], dtype=dtype
        )
        self._high = np.array(
            [np.inf if f.maximum is None else f.maximum for f in schema.features], dtype=dtype
        )
        self._has_ranges = any(
            f.minimum is not None or f.maximum is not None for f in schema.features
        )

    def matrix(self, records: Sequence[Mapping[str, Any]]) -> NDArray[np.floating[Any]]:
        """The ``[rows, features]`` matrix for valid records, in schema order.

        Raises
        ------
        PayloadTooLargeError
            More than ``max_records`` records.
        InvalidRecordsError
            Any invalid value; ``details["errors"]`` lists each one.

        Examples
        --------
        >>> from flywheel.registry.models import FeatureSpec, InputSchema
        >>> v = RecordValidator(InputSchema(features=(FeatureSpec(name="x", nullable=True),)))
        >>> v.matrix([{"x": None}])
        array([[nan]])
        """
        count = len(records)
        if count > self.max_records:
            raise PayloadTooLargeError(
                f"a request carries at most {self.max_records} records, got {count}",
                field="records",
                details={"max_records": self.max_records, "records": count},
            )
        try:
            matrix = self._plan.build(records)
        except InvalidInputError:
            self._raise_problems(records)
            raise  # pragma: no cover - _raise_problems always raises when build does
        if self._has_ranges:
            numbers = matrix
            low, high = self._low, self._high
            if self._plan.typed:
                idx = self._plan.numeric_idx
                numbers = np.asarray(matrix[:, idx], dtype=np.float64)
                low, high = low[idx], high[idx]
            with np.errstate(invalid="ignore"):
                outside = (numbers < low) | (numbers > high)
            if outside.any():
                self._raise_problems(records)
        return matrix

    def problems(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Every problem in ``records`` (up to a cap), row by row in schema order.

        Examples
        --------
        >>> from flywheel.registry.models import FeatureSpec, InputSchema
        >>> v = RecordValidator(InputSchema(features=(FeatureSpec(name="n", dtype="int"),)))
        >>> v.problems([{"n": 1.5}])
        [{'row': 0, 'field': 'n', 'reason': 'must be an integer, got 1.5'}]
        """
        found: list[dict[str, Any]] = []
        if isinstance(records, str | bytes) or not isinstance(records, list | tuple):
            return [{"row": None, "field": "records", "reason": "must be a list of objects"}]
        if not records:
            return [{"row": None, "field": "records", "reason": "must not be empty"}]
        names = frozenset(f.name for f in self._features)
        f32 = self.schema.tensor_dtype == "float32"
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                found.append({"row": row, "field": "records", "reason": "must be an object"})
                continue
            for spec in self._features:
                if spec.name not in record:
                    reason: str | None = "is missing"
                else:
                    reason = _value_problem(spec, record[spec.name], f32=f32)
                if reason is not None:
                    found.append({"row": row, "field": spec.name, "reason": reason})
            found.extend(
                {"row": row, "field": str(key), "reason": "is not a feature of this model"}
                for key in record
                if key not in names
            )
            if len(found) > MAX_LISTED_PROBLEMS:
                break
        return found

    def _raise_problems(self, records: Sequence[Mapping[str, Any]]) -> None:
        found = self.problems(records)
        if not found:  # pragma: no cover - both passes implement the same rules
            found = [{"row": None, "field": "records", "reason": "invalid records"}]
        listed = found[:MAX_LISTED_PROBLEMS]
        details: dict[str, Any] = {"errors": listed}
        if len(found) > len(listed):
            details["truncated"] = True
        first = listed[0]
        where = f"record {first['row']}: " if first["row"] is not None else ""
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise InvalidRecordsError(
            f"{where}{first['field']!r} {first['reason']}{more}",
            field=first["field"],
            details=details,
        )


def _value_problem(spec: FeatureSpec, value: Any, *, f32: bool) -> str | None:
    """Why ``value`` is not acceptable for ``spec`` (``None`` when it is)."""
    if spec.is_string:
        return string_problem(spec, value)
    if value is None:
        return None if spec.nullable else "must not be null"
    if isinstance(value, np.generic):
        value = value.item()
    if spec.dtype == "bool":
        return None if type(value) is bool else f"must be true or false, got {_type_name(value)}"
    if type(value) is bool or not isinstance(value, int | float):
        return f"must be a number, got {_type_name(value)}"
    if spec.dtype == "int" and not (isinstance(value, int) or value.is_integer()):
        return f"must be an integer, got {value!r}"
    try:
        number = float(value)
    except OverflowError:
        return "is out of range"
    if math.isnan(number):
        return None if spec.nullable else "must be a finite number"
    if math.isinf(number) or (f32 and abs(number) > _FLOAT32_MAX):
        return "must be a finite number"
    cast = np.float32 if f32 else np.float64
    if spec.minimum is not None and cast(number) < cast(spec.minimum):
        return f"must be >= {_plain(spec.minimum)}"
    if spec.maximum is not None and cast(number) > cast(spec.maximum):
        return f"must be <= {_plain(spec.maximum)}"
    return None


def _plain(bound: float) -> str:
    return str(int(bound)) if bound.is_integer() else repr(bound)


def _type_name(value: Any) -> str:
    names: dict[type, str] = {dict: "object", list: "array", str: "string"}
    return names.get(type(value), type(value).__name__)
