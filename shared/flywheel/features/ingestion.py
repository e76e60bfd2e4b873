"""Validate a batch of source rows and run the view's transformation (pyarrow).

Every input row ends up either accepted or rejected with its reasons: the schema
(required columns), types (a value that does not convert to its column's type),
the nulls policy (``nullable=False``), finite floats, and unique
``(entity, event, created)`` keys. Nothing is dropped silently. A batch missing a
required column fails as a whole with :class:`~flywheel.errors.InvalidInputError`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flywheel.errors import InvalidInputError
from flywheel.features.models import Column, FeatureType, Rejection, to_micros
from flywheel.features.transformations import TransformationError

if TYPE_CHECKING:
    from datetime import datetime

    from flywheel.features.models import FeatureView
    from flywheel.features.transformations import Transformation

TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[FeatureType, pa.DataType] = {
    FeatureType.FLOAT: pa.float64(),
    FeatureType.INT: pa.int64(),
    FeatureType.BOOL: pa.bool_(),
    FeatureType.STRING: pa.string(),
}
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)

BoolArray = npt.NDArray[np.bool_]


def key_type(view: FeatureView) -> pa.DataType:
    return pa.string() if view.entity.dtype == "string" else pa.int64()


def stored_schema(view: FeatureView) -> pa.Schema:
    """The Arrow schema of the view's offline files."""
    return pa.schema(
        [
            pa.field(view.entity.join_key, key_type(view), nullable=False),
            pa.field(view.event_timestamp, TIMESTAMP, nullable=False),
            pa.field(view.created_timestamp, TIMESTAMP, nullable=False),
            *(pa.field(f.name, ARROW_TYPES[f.dtype], nullable=f.nullable) for f in view.features),
        ]
    )


def _invalid_rows(array: pa.Array, target: pa.DataType) -> BoolArray:
    """Which non-null values fail to convert (bisection: a few casts per bad value)."""
    bad = np.zeros(len(array), dtype=bool)
    pending = [(0, len(array))]
    while pending:
        start, stop = pending.pop()
        try:
            pc.cast(array.slice(start, stop - start), target, safe=True)
        except _CAST_ERRORS:
            if stop - start == 1:
                bad[start] = True
            else:
                middle = (start + stop) // 2
                pending += [(start, middle), (middle, stop)]
    return bad


def coerce(values: pa.Array | pa.ChunkedArray, target: pa.DataType) -> tuple[pa.Array, BoolArray]:
    """Convert to ``target``; values that do not convert become null and are flagged.

    Examples
    --------
    >>> arr, bad = coerce(pa.array(["1.5", "x", None]), pa.float64())
    >>> arr.to_pylist(), bad.tolist()
    ([1.5, None, None], [False, True, False])
    """
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if array.type == pa.null():
        return pa.nulls(len(array), target), np.zeros(len(array), dtype=bool)
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(array.type):
        # Naive timestamps are UTC; nanoseconds are truncated to microseconds.
        return pc.cast(array, target, safe=False), np.zeros(len(array), dtype=bool)
    try:
        return pc.cast(array, target, safe=True), np.zeros(len(array), dtype=bool)
    except _CAST_ERRORS:
        bad = _invalid_rows(array, target)
    kept = pc.if_else(pa.array(bad), pa.nulls(len(array), array.type), array)
    return pc.cast(kept, target, safe=True), bad


def _nulls(array: pa.Array) -> BoolArray:
    mask = array.is_null(nan_is_null=True) if pa.types.is_floating(array.type) else array.is_null()
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _not_finite(array: pa.Array) -> BoolArray:
    if not pa.types.is_floating(array.type):
        return np.zeros(len(array), dtype=bool)
    infinite = pc.fill_null(pc.is_inf(array), False)
    return np.asarray(infinite.to_numpy(zero_copy_only=False), dtype=bool)


class _Reasons:
    """Row index -> reasons, built from boolean masks."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.by_row: dict[int, list[str]] = {}

    def add(
        self, mask: BoolArray, reason: str, *, rows: npt.NDArray[np.int64] | None = None
    ) -> None:
        hits = np.flatnonzero(mask)
        for i in (rows[hits] if rows is not None else hits).tolist():
            self.by_row.setdefault(int(i), []).append(reason)

    def rejected(self) -> BoolArray:
        mask = np.zeros(self.rows, dtype=bool)
        if self.by_row:
            mask[np.fromiter(self.by_row, dtype=np.int64)] = True
        return mask


@dataclass(frozen=True)
class PreparedBatch:
    """The rows to store (in the stored schema) and the rows rejected, with reasons."""

    table: pa.Table
    rejected: tuple[Rejection, ...]
    reasons: dict[str, int]
    created_filled: bool


def _check(
    reasons: _Reasons,
    array: pa.Array,
    column: Column | None,
    label: str,
    *,
    nullable: bool,
    rows: npt.NDArray[np.int64] | None = None,
    unconvertible: BoolArray | None = None,
) -> None:
    if not nullable:
        nulls = _nulls(array)
        if unconvertible is not None:  # already rejected as "not a <type>"
            nulls &= ~unconvertible
        reasons.add(nulls, f"{label}: null", rows=rows)
    if column is not None and column.dtype is FeatureType.FLOAT:
        reasons.add(_not_finite(array), f"{label}: not finite", rows=rows)


def prepare(
    view: FeatureView, source: pa.Table, transformation: Transformation, *, now: datetime
) -> PreparedBatch:
    """Validate ``source``, transform the valid rows, validate the features.

    Raises
    ------
    InvalidInputError
        A required column is missing (nothing is accepted).
    TransformationError
        The transformation's output lacks a feature or has the wrong type.
    """
    required = [view.entity.join_key, view.event_timestamp, *(c.name for c in view.source.columns)]
    missing = [name for name in required if name not in source.column_names]
    if missing:
        raise InvalidInputError(
            f"batch for {view.name!r} lacks column(s) {', '.join(missing)}", field=missing[0]
        )
    n = source.num_rows
    reasons = _Reasons(n)

    key, bad = coerce(source[view.entity.join_key], key_type(view))
    reasons.add(bad, f"{view.entity.join_key}: not a {view.entity.dtype}")
    _check(reasons, key, None, view.entity.join_key, nullable=False, unconvertible=bad)
    event, bad = coerce(source[view.event_timestamp], TIMESTAMP)
    reasons.add(bad, f"{view.event_timestamp}: not a timestamp")
    _check(reasons, event, None, view.event_timestamp, nullable=False, unconvertible=bad)
    filled = view.created_timestamp not in source.column_names
    if filled:
        created = pa.array(np.full(n, to_micros(now)), pa.int64()).cast(TIMESTAMP)
    else:
        created, bad = coerce(source[view.created_timestamp], TIMESTAMP)
        reasons.add(bad, f"{view.created_timestamp}: not a timestamp")
        _check(reasons, created, None, view.created_timestamp, nullable=False, unconvertible=bad)

    raw: dict[str, pa.Array] = {}
    for column in view.source.columns:
        array, bad = coerce(source[column.name], ARROW_TYPES[column.dtype])
        reasons.add(bad, f"{column.name}: not a {column.dtype}")
        _check(reasons, array, column, column.name, nullable=column.nullable, unconvertible=bad)
        raw[column.name] = array

    # The transformation sees only rows whose source values are valid.
    valid = np.flatnonzero(~reasons.rejected())
    take = pa.array(valid, pa.int64())
    inputs = {name: _to_numpy(array.take(take)) for name, array in raw.items()}
    if not raw:  # a view without source columns still has one row per input row
        inputs = {view.entity.join_key: _to_numpy(key.take(take))}
    produced = transformation(inputs)
    features: dict[str, pa.Array] = {}
    for feature in view.features:
        if feature.name not in produced:
            raise TransformationError(
                f"transformation {view.transformation} did not produce feature {feature.name!r}",
                field=feature.name,
            )
        features[feature.name] = _to_arrow(produced[feature.name], feature, view)
        _check(
            reasons,
            features[feature.name],
            feature,
            feature.name,
            nullable=feature.nullable,
            rows=valid,  # transformed row i is input row valid[i]
        )

    rejected = reasons.rejected()
    _reject_duplicates(reasons, rejected, key, event, created)
    rejected = reasons.rejected()
    keep = np.flatnonzero(~rejected)
    keep_in_valid = np.flatnonzero(~rejected[valid])
    table = pa.Table.from_arrays(
        [
            key.take(pa.array(keep, pa.int64())),
            event.take(pa.array(keep, pa.int64())),
            created.take(pa.array(keep, pa.int64())),
            *(features[f.name].take(pa.array(keep_in_valid, pa.int64())) for f in view.features),
        ],
        schema=stored_schema(view),
    )
    rejections = tuple(
        Rejection(row=row, reasons=tuple(found)) for row, found in sorted(reasons.by_row.items())
    )
    counts = Counter(reason for r in rejections for reason in r.reasons)
    return PreparedBatch(table, rejections, dict(sorted(counts.items())), filled)


def _reject_duplicates(
    reasons: _Reasons, rejected: BoolArray, key: pa.Array, event: pa.Array, created: pa.Array
) -> None:
    """Reject every row that repeats an earlier row's (entity, event, created) key."""
    rows = np.flatnonzero(~rejected)
    if len(rows) < 2:
        return
    take = pa.array(rows, pa.int64())
    codes = pc.dictionary_encode(key.take(take)).indices.to_numpy(zero_copy_only=False)
    ev = event.take(take).cast(pa.int64()).to_numpy(zero_copy_only=False)
    cr = created.take(take).cast(pa.int64()).to_numpy(zero_copy_only=False)
    order = np.lexsort((np.arange(len(rows)), cr, ev, codes))
    codes, ev, cr = codes[order], ev[order], cr[order]
    repeat = np.concatenate(
        ([False], (codes[1:] == codes[:-1]) & (ev[1:] == ev[:-1]) & (cr[1:] == cr[:-1]))
    )
    if not repeat.any():
        return
    first = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(order))))
    for pos in np.flatnonzero(repeat).tolist():
        original = int(rows[order[first[pos]]])
        reasons.by_row.setdefault(int(rows[order[pos]]), []).append(
            f"duplicate key (same entity, event and created timestamps as row {original})"
        )


def _to_numpy(array: pa.Array) -> npt.NDArray[Any]:
    if pa.types.is_floating(array.type):
        return np.asarray(pc.fill_null(array, np.nan).to_numpy(zero_copy_only=False))
    if pa.types.is_integer(array.type) and array.null_count == 0:
        return np.asarray(array.to_numpy(zero_copy_only=False))
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)


def _to_arrow(values: npt.NDArray[Any], feature: Column, view: FeatureView) -> pa.Array:
    target = ARROW_TYPES[feature.dtype]
    try:
        array = pa.array(values, from_pandas=True)
        return pc.cast(array, target, safe=True)
    except _CAST_ERRORS:
        raise TransformationError(
            f"transformation {view.transformation} returned values for {feature.name!r} "
            f"that are not {feature.dtype}",
            field=feature.name,
        ) from None
