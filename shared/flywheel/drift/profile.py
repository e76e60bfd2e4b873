"""Reference profiles: mergeable per-feature summaries of a dataset (numpy only).

A profile is computed from the training data and stored next to the model.  Later,
production windows are counted into the *same* bins with
:meth:`ReferenceProfile.observe`, shards are combined with :func:`merge`, and a
drift scorer compares the histograms (PSI, KS, Wasserstein, JS, chi²).
:class:`NumericProfile` and :class:`CategoricalProfile` define the bins.

Merging adds counts and sums; it requires identical features and edges and raises
:class:`~flywheel.errors.ProfileMismatchError` otherwise.  Counts merge exactly;
sums merge up to float64 rounding.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
from pydantic import (
    Field,
    PrivateAttr,
    field_serializer,
    model_validator,
)

from flywheel.drift._binning import TARGET_CELLS, Accumulator, Grid, as_float_array, scan
from flywheel.errors import InvalidInputError, InvalidWindowError, ProfileMismatchError
from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from numpy.typing import ArrayLike, NDArray

    from flywheel.drift._binning import Scan

DEFAULT_BINS = 100
PREDICTION_BINS = 10
"""Deciles for prediction scores: a canary check has a few hundred rows, not millions."""
MIN_SNAPPED_SHARE = 0.95
"""Keep the grid only if snapping keeps this share of the distinct quantile edges."""


def _finite(values: ArrayLike) -> tuple[NDArray[np.float64], int]:
    """Finite values as float64 and the number of missing (NaN, ±inf, None) ones."""
    array = _as_float(values)
    mask = np.isfinite(array)
    return array[mask], int(array.size - np.count_nonzero(mask))


def _as_float(values: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(as_float_array(values), dtype=np.float64)


class FineGrid(Frozen):
    """Serialised :class:`~flywheel.drift._binning.Grid`: ``cell(x) = floor(x * scale) - base``.

    Examples
    --------
    >>> FineGrid(scale=1024.0, base=-1025, cells=3073).grid().cell(0.0)
    1025
    """

    scale: float
    base: int
    cells: int

    def grid(self) -> Grid:
        return _grid(self.scale, self.base, self.cells)


@functools.lru_cache(maxsize=512)
def _grid(scale: float, base: int, cells: int) -> Grid:
    return Grid(scale=scale, base=base, cells=cells)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Arrays a profile's bins need for counting, cached per (edges, grid)."""

    edges: NDArray[np.float64]
    grid: Grid | None
    edge_cells: NDArray[np.intp] | None


@functools.lru_cache(maxsize=512)
def _plan(edges: tuple[float, ...], grid: FineGrid | None) -> _Plan | None:
    """``None`` when ``edges`` are not cell starts of ``grid``."""
    array = np.asarray(edges, dtype=np.float64)
    array.flags.writeable = False
    if grid is None:
        return _Plan(edges=array, grid=None, edge_cells=None)
    try:
        g = grid.grid()
    except ValueError:
        return None
    cells = g.aligned(array)
    if cells is None:
        return None
    cells.flags.writeable = False
    return _Plan(edges=array, grid=g, edge_cells=cells)


def _grid_and_edges(
    raw: NDArray[np.float64], cells: int, data_range: tuple[float, float] | None
) -> tuple[FineGrid | None, NDArray[np.float64]]:
    """Snap quantile edges onto a fine grid (finer while edges collide), or keep them."""
    best: tuple[FineGrid, NDArray[np.float64]] | None = None
    target = cells
    while (grid := Grid.covering(raw, target, data_range=data_range)) is not None:
        snapped, _ = grid.snap(raw)
        best = (FineGrid(scale=grid.scale, base=grid.base, cells=grid.cells), snapped)
        if snapped.size == raw.size:
            break
        target *= 2
    if best is None or best[1].size < MIN_SNAPPED_SHARE * raw.size:
        return None, raw
    return best


TailCell = tuple[int, int, float]


def _tail_tuple(tail: dict[int, tuple[int, float]]) -> tuple[TailCell, ...]:
    return tuple((cell, count, _saturate(total)) for cell, (count, total) in sorted(tail.items()))


def _merge_tails(
    mine: tuple[TailCell, ...], theirs: tuple[TailCell, ...], delta: float
) -> tuple[TailCell, ...]:
    """Add tail cells; ``theirs`` sums are re-centred by ``delta`` (their shift - ours)."""
    merged = {cell: (count, total) for cell, count, total in mine}
    for cell, count, total in theirs:
        old_count, old_total = merged.get(cell, (0, 0.0))
        merged[cell] = (old_count + count, old_total + total + count * delta)
    return _tail_tuple(merged)


class _CellCounts(Sequence[int]):
    """Read-only fine-cell counts backed by the scan's array; a tuple only on demand.

    A window's fine histogram has thousands of cells, and turning them into Python
    ints costs more than all the statistics that read them (about 50 µs a feature).
    Window profiles built from a scan hold this in ``fine_counts`` instead of a
    tuple: it equals, hashes and serialises like the tuple of its values.
    """

    __slots__ = ("_array", "_tuple")

    def __init__(self, array: NDArray[np.int64]) -> None:
        array.flags.writeable = False
        self._array = array
        self._tuple: tuple[int, ...] | None = None

    def as_tuple(self) -> tuple[int, ...]:
        if self._tuple is None:
            self._tuple = tuple(self._array.tolist())
        return self._tuple

    def __len__(self) -> int:
        return int(self._array.size)

    def __getitem__(self, index: Any) -> Any:
        return self.as_tuple()[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self.as_tuple())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        return np.array(self._array, dtype=dtype, copy=True if copy else None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _CellCounts):
            return bool(np.array_equal(self._array, other._array))
        if isinstance(other, tuple):
            return self.as_tuple() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.as_tuple())

    def __repr__(self) -> str:
        return repr(self.as_tuple())


def _trim(fine: NDArray[np.int64]) -> tuple[int, tuple[int, ...]]:
    nonzero = np.flatnonzero(fine)
    if nonzero.size == 0:
        return 0, ()
    first, last = int(nonzero[0]), int(nonzero[-1])
    return first, tuple(fine[first : last + 1].tolist())


class _ArrayCache:
    """A memo of derived numpy arrays, invisible to equality, hashing and JSON."""

    __slots__ = ("bins", "bins_of", "cdf", "cdf_of", "counts", "fine", "key", "tail_keys", "tails")

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.counts: Sequence[int] | None = None  # the very tuple the array was built from
        self.fine: NDArray[np.int64] | None = None
        self.cdf: NDArray[np.float64] | None = None
        self.cdf_of: NDArray[np.int64] | None = None
        self.tail_keys: list[Any] = [None, None]
        self.bins: NDArray[np.float64] | None = None
        self.bins_of: tuple[int, ...] | None = None  # the counts tuple behind ``bins``
        self.tails: list[tuple[NDArray[Any], NDArray[Any], NDArray[Any]] | None] = [None, None]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ArrayCache)

    __hash__ = None  # type: ignore[assignment]


class NumericProfile(Frozen):
    """Histogram and moments of one numeric feature.

    ``edges`` are the de-duplicated 1%..99% training quantiles (``bins - 1`` interior points,
    ``inverted_cdf``, so discrete features get edges at their values); the bins are
    ``(-inf, e0), [e0, e1), ..., [e_last, +inf)``, one of ``len(edges) + 1`` for every
    finite value (``np.searchsorted(edges, x, side="right")``).  Only finite edges are
    stored (no ``Infinity`` in the JSON); :attr:`bin_edges` adds the infinite ends.  NaN
    and ±inf count as missing.  Moments are sums of ``x - shift`` and ``(x - shift)²``
    (``shift``: the training mean), so merging is addition and the variance does not
    cancel catastrophically.  Built profiles also carry a :class:`FineGrid` (about 4,096
    cells of power-of-two width, counts per cell, edges snapped down to cell starts);
    profiles without one (older JSON, spans float64 cannot grid) count with
    ``searchsorted`` (ADR 40).

    Examples
    --------
    >>> p = NumericProfile.build(np.arange(1000.0), bins=10)
    >>> (len(p.edges), sum(p.counts), p.count, round(p.mean, 1))
    (9, 1000, 1000, 499.5)
    >>> p.histogram(np.array([-5.0, 50.0, 5000.0])).tolist()
    [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    >>> p.grid is not None and int(p.fine_histogram().sum()) == 1000
    True
    """

    kind: Literal["numeric"] = "numeric"
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    count: int = Field(ge=0)
    missing: int = Field(ge=0)
    shift: float
    sum: float
    sum_sq: float = Field(ge=0)
    minimum: float | None = None
    maximum: float | None = None
    grid: FineGrid | None = None
    fine_start: int = Field(default=0, ge=0)
    fine_counts: tuple[int, ...] = ()
    lower_tail: tuple[TailCell, ...] = ()
    """Geometric tail cells below the grid: ``(cell, count, Σ(x - shift))``, by cell."""
    upper_tail: tuple[TailCell, ...] = ()
    """The same at or above the grid (see :meth:`Grid.tail_cells`)."""
    _arrays: _ArrayCache = PrivateAttr(default_factory=_ArrayCache)

    def _cache(self) -> _ArrayCache:
        # The private-attribute dict directly: ``self._arrays`` goes through pydantic's
        # ``__getattr__`` (a failed lookup first), about 2 µs, and scoring asks a dozen
        # times per feature.
        cache: _ArrayCache = self.__pydantic_private__["_arrays"]  # type: ignore[index]
        return cache

    @field_serializer("fine_counts")
    def _fine_counts_tuple(self, value: Sequence[int]) -> tuple[int, ...]:
        return value.as_tuple() if isinstance(value, _CellCounts) else tuple(value)

    @model_validator(mode="after")
    def _consistent(self) -> NumericProfile:
        edges = np.asarray(self.edges, dtype=np.float64)
        if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise ValueError("edges must be finite and strictly increasing")
        if len(self.counts) != len(self.edges) + 1:
            raise ValueError("counts must have len(edges) + 1 entries")
        if any(c < 0 for c in self.counts) or sum(self.counts) != self.count:
            raise ValueError("counts must be non-negative and add up to count")
        if not math.isfinite(self.shift):
            raise ValueError("shift must be finite")
        plan = _plan(self.edges, self.grid)
        if plan is None:
            raise ValueError("with a grid, every edge must be the start of a grid cell")
        if self.grid is None:
            if self.fine_counts or self.lower_tail or self.upper_tail:
                raise ValueError("fine_counts and tail cells need a grid")
            return self
        if self.fine_start + len(self.fine_counts) > self.grid.cells + 2:
            raise ValueError("fine_counts run past the grid")
        fine = self.fine_histogram()
        assert fine is not None
        assert plan.edge_cells is not None
        if np.any(fine < 0) or int(fine.sum()) != self.count:
            raise ValueError("fine_counts must be non-negative and add up to count")
        by_bin = np.add.reduceat(fine, np.concatenate(([0], plan.edge_cells)))
        if by_bin.tolist() != list(self.counts):
            raise ValueError("fine_counts must add up to counts bin by bin")
        for tail, total in ((self.lower_tail, fine[0]), (self.upper_tail, fine[-1])):
            cells = [cell for cell, _, _ in tail]
            if cells != sorted(set(cells)) or any(c < 0 or n <= 0 for c, n, _ in tail):
                raise ValueError("tail cells must be distinct, sorted, with positive counts")
            if sum(n for _, n, _ in tail) != int(total):
                raise ValueError("tail cells must add up to the open grid cells")
        return self

    @classmethod
    def build(
        cls, values: ArrayLike, *, bins: int = DEFAULT_BINS, cells: int = TARGET_CELLS
    ) -> NumericProfile:
        """Profile ``values`` with ``bins`` quantile bins (fewer when values repeat).

        ``cells`` is the target size of the fine grid (``0`` for none).
        """
        if bins < 1:
            raise InvalidInputError("bins must be at least 1", field="bins")
        finite, missing = _finite(values)
        if finite.size and bins > 1:
            quantiles = np.quantile(
                finite, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf"
            )
            edges = np.unique(quantiles)
        else:
            edges = np.empty(0, dtype=np.float64)
        data_range = (float(finite.min()), float(finite.max())) if finite.size else None
        grid, edges = _grid_and_edges(edges, cells, data_range) if cells > 0 else (None, edges)
        shift = float(np.mean(finite)) if finite.size else 0.0
        if not math.isfinite(shift):  # values near the float64 limit overflow the mean
            shift = 0.0
        empty = cls(
            edges=tuple(float(e) for e in edges),
            counts=(0,) * (edges.size + 1),
            count=0,
            missing=0,
            shift=shift,
            sum=0.0,
            sum_sq=0.0,
            grid=grid,
        )
        return empty.merge(empty._scanned(finite, extra_missing=missing))

    @property
    def bin_edges(self) -> NDArray[np.float64]:
        """All ``len(counts) + 1`` bin boundaries, from ``-inf`` to ``+inf``."""
        return np.concatenate(([-np.inf], np.asarray(self.edges, dtype=np.float64), [np.inf]))

    @property
    def mean(self) -> float:
        """The mean; ``±inf`` when the sum overflowed float64 (see :func:`_saturate`)."""
        if not self.count:
            return math.nan
        if abs(self.sum) >= _FLOAT_MAX:
            return math.copysign(math.inf, self.sum)
        return self.shift + self.sum / self.count

    @property
    def variance(self) -> float:
        """Population variance; ``inf`` when the sums overflowed float64."""
        if not self.count:
            return math.nan
        if self.sum_sq >= _FLOAT_MAX or abs(self.sum) >= _FLOAT_MAX:
            return math.inf
        centred = self.sum / self.count
        return max(self.sum_sq / self.count - centred * centred, 0.0)

    @property
    def std(self) -> float:
        """Population standard deviation."""
        return math.sqrt(self.variance)

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    def counts_array(self) -> NDArray[np.float64]:
        """:attr:`counts` as a float array (memoised, read-only)."""
        cache = self._cache()
        if cache.bins is None or cache.bins_of is not self.counts:
            bins = np.array(self.counts, dtype=np.float64)
            bins.flags.writeable = False
            cache.bins, cache.bins_of = bins, self.counts
        return cache.bins

    def fine_histogram(self) -> NDArray[np.int64] | None:
        """Counts per grid cell (``grid.cells + 2`` entries, tails included), if gridded.

        The array is read-only and memoised on the instance.

        Examples
        --------
        >>> p = NumericProfile.build(np.arange(100.0))
        >>> fine = p.fine_histogram()
        >>> (int(fine.sum()), fine.size == p.grid.cells + 2)
        (100, True)
        """
        if self.grid is None:
            return None
        cache = self._cache()
        key = (self.fine_start, self.grid)
        if cache.fine is None or cache.counts is not self.fine_counts or cache.key != key:
            fine = np.zeros(self.grid.cells + 2, dtype=np.int64)
            fine[self.fine_start : self.fine_start + len(self.fine_counts)] = self.fine_counts
            fine.flags.writeable = False
            cache.key, cache.counts, cache.fine = key, self.fine_counts, fine
        return cache.fine

    def fine_cdf(self) -> NDArray[np.float64]:
        """The CDF at the starts of grid cells ``1 .. cells + 1`` (memoised, read-only).

        Raises
        ------
        ValueError
            When the profile has no grid or no values.
        """
        fine = self.fine_histogram()
        if fine is None or self.count == 0:
            raise ValueError("a fine CDF needs a grid and at least one value")
        cache = self._cache()
        if cache.cdf is None or cache.cdf_of is not fine:
            cdf = np.cumsum(fine[:-1]) / self.count
            cdf.flags.writeable = False
            cache.cdf, cache.cdf_of = cdf, fine
        return cache.cdf

    def tail_arrays(
        self, *, upper: bool
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        """One open tail's cells, counts and centred sums as arrays (memoised)."""
        cache = self._cache()
        tail = self.upper_tail if upper else self.lower_tail
        slot = 1 if upper else 0
        if cache.tails[slot] is None or cache.tail_keys[slot] is not tail:
            cells = np.array([t[0] for t in tail], dtype=np.int64)
            counts = np.array([t[1] for t in tail], dtype=np.float64)
            sums = np.array([t[2] for t in tail], dtype=np.float64)
            cache.tails[slot] = (cells, counts, sums)
            cache.tail_keys[slot] = tail
        arrays = cache.tails[slot]
        assert arrays is not None
        return arrays

    def histogram(self, values: ArrayLike) -> NDArray[np.int64]:
        """Count the finite ``values`` into this profile's bins (vectorised).

        Missing values are left out; the result has ``len(edges) + 1`` entries.
        """
        return self._scan(values).counts

    def _scan(self, values: ArrayLike) -> Scan:
        plan = _plan(self.edges, self.grid)
        assert plan is not None  # checked by the validator
        return scan(
            values, edges=plan.edges, grid=plan.grid, edge_cells=plan.edge_cells, shift=self.shift
        )

    def accumulator(self) -> Accumulator:
        """A running count in this profile's bins; feed it arrays, then :meth:`from_scan`.

        Examples
        --------
        >>> ref = NumericProfile.build(np.arange(100.0))
        >>> acc = ref.accumulator()
        >>> acc.update(np.array([1.0, 2.0])); acc.update(np.array([3.0]))
        >>> ref.from_scan(acc.result()) == ref.observe([1.0, 2.0, 3.0])
        True
        """
        plan = _plan(self.edges, self.grid)
        assert plan is not None  # checked by the validator
        return Accumulator(plan.edges, plan.grid, plan.edge_cells, self.shift)

    def observe(self, values: ArrayLike) -> NumericProfile:
        """A profile of ``values`` in this profile's bins (and shift), ready to merge."""
        return self._scanned(values)

    def _scanned(self, values: ArrayLike, *, extra_missing: int = 0) -> NumericProfile:
        return self.from_scan(self._scan(values), extra_missing=extra_missing)

    def from_scan(self, result: Scan, *, extra_missing: int = 0) -> NumericProfile:
        """The window profile an :meth:`accumulator` (or a scan) counted in these bins."""
        start, fine = 0, cast("Sequence[int]", ())
        plan = _plan(self.edges, self.grid)
        low, high = result.minimum, result.maximum
        grid = plan.grid if plan is not None else None
        if result.fine is not None and grid is not None and low is not None and high is not None:
            # Occupied cells run from the smallest value's cell to the largest's.
            start = grid.cell(low)
            fine = _CellCounts(result.fine[start : grid.cell(high) + 1])
        # Built from our own counts, so skip re-validation (it costs more than the scan).
        profile = NumericProfile.model_construct(
            kind="numeric",
            edges=self.edges,
            counts=tuple(result.counts.tolist()),
            count=result.count,
            missing=result.missing + extra_missing,
            shift=self.shift,
            sum=_saturate(result.sum),
            sum_sq=_saturate(result.sum_sq, squares=True),
            minimum=result.minimum,
            maximum=result.maximum,
            grid=self.grid,
            fine_start=start,
            fine_counts=cast("tuple[int, ...]", fine),  # a _CellCounts stands in for the tuple
            lower_tail=_tail_tuple(result.lower_tail),
            upper_tail=_tail_tuple(result.upper_tail),
        )
        if result.fine is not None:  # keep the array the scan already built
            result.fine.flags.writeable = False
            cache = profile._cache()
            cache.key, cache.counts, cache.fine = (start, self.grid), fine, result.fine
        return profile

    def merge(self, other: NumericProfile) -> NumericProfile:
        """Add ``other``'s counts and moments (same edges required).

        Raises
        ------
        ProfileMismatchError
            When the bin edges differ.
        """
        if self.edges != other.edges:
            raise ProfileMismatchError("numeric profiles have different bin edges", field="edges")
        # Re-centre other's sums on this shift: Σ(x-a) = Σ(x-b) + n(b-a), and so on.
        delta = other.shift - self.shift
        other_sum = other.sum + other.count * delta
        other_sum_sq = other.sum_sq + 2 * delta * other.sum + other.count * delta * delta
        grid: FineGrid | None = None
        start, fine = 0, tuple[int, ...]()
        lower: tuple[TailCell, ...] = ()
        upper: tuple[TailCell, ...] = ()
        mine, theirs = self.fine_histogram(), other.fine_histogram()
        if mine is not None and theirs is not None and self.grid == other.grid:
            grid = self.grid
            start, fine = _trim(mine + theirs)
            lower = _merge_tails(self.lower_tail, other.lower_tail, delta)
            upper = _merge_tails(self.upper_tail, other.upper_tail, delta)
        return NumericProfile(
            grid=grid,
            fine_start=start,
            fine_counts=fine,
            lower_tail=lower,
            upper_tail=upper,
            edges=self.edges,
            counts=tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            count=self.count + other.count,
            missing=self.missing + other.missing,
            shift=self.shift,
            sum=_saturate(self.sum + other_sum),
            sum_sq=_saturate(self.sum_sq + other_sum_sq, squares=True),
            minimum=_pick(min, self.minimum, other.minimum),
            maximum=_pick(max, self.maximum, other.maximum),
        )


_FLOAT_MAX = float(np.finfo(np.float64).max)


def _saturate(total: float, *, squares: bool = False) -> float:
    """A moment sum kept finite so that profiles stay valid JSON.

    Values beyond about 1e154 overflow ``Σ(x - shift)²`` (and near 1e308, the sum);
    JSON has no infinity, and a profile that cannot be read back would stop drift
    monitoring for its model.  An overflowed sum is stored as the largest float
    instead; :attr:`NumericProfile.mean` and :attr:`~NumericProfile.variance` read
    it back as infinite.  A sum that is NaN (overflows of both signs) is unknown:
    0 for ``Σ(x - shift)``, the largest float for the squares.
    """
    if math.isnan(total):
        return _FLOAT_MAX if squares else 0.0
    return max(min(total, _FLOAT_MAX), 0.0 if squares else -_FLOAT_MAX)


def _pick(fn: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(fn(a, b))


def _category(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    text = str(value)
    return text or None


class CategoricalProfile(Frozen):
    """Category counts of one categorical feature.

    Counts are kept per category (``str`` of the value; integral floats without ``.0``);
    ``None``, NaN and ``""`` count as missing.  Dictionary-encoded columns
    (:class:`CategoryCodes`, pandas categoricals, Arrow dictionaries) are counted from
    their integer codes without building strings.

    Examples
    --------
    >>> p = CategoricalProfile.build(["a", "b", "a", None, 2.0])
    >>> (p.counts, p.missing)
    ({'2': 1, 'a': 2, 'b': 1}, 1)
    """

    kind: Literal["categorical"] = "categorical"
    counts: dict[str, int]
    missing: int = Field(ge=0)

    @classmethod
    def build(cls, values: Iterable[Any]) -> CategoricalProfile:
        """Count ``values`` by category."""
        return cls(counts={}, missing=0).observe(values)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    @property
    def missing_rate(self) -> float:
        total = self.count + self.missing
        return self.missing / total if total else 0.0

    def frequencies(self) -> dict[str, float]:
        """Share of each category among non-missing values."""
        total = self.count
        return {k: v / total for k, v in self.counts.items()} if total else {}

    def observe(self, values: Iterable[Any]) -> CategoricalProfile:
        """A profile of ``values`` (categories not seen before are added).

        Distinct values are counted first (a C-level hash count), then only those
        few are turned into labels, so a million strings take tens of milliseconds.
        """
        flat = np.asarray(values, dtype=object).ravel()
        try:
            distinct = Counter(flat.tolist())
        except TypeError:  # unhashable values: label each one
            distinct = Counter(_category(v) for v in flat)
        if any(isinstance(key, bool | np.bool_) for key in distinct):
            # True == 1 as dict keys, but they label differently ("true" vs "1").
            distinct = Counter(_category(v) for v in flat)
        counts: dict[str, int] = {}
        missing = 0
        for value, number in distinct.items():
            label = value if value is None else _category(value)
            if label is None:
                missing += number
            else:
                counts[label] = counts.get(label, 0) + number
        return CategoricalProfile(counts=dict(sorted(counts.items())), missing=missing)

    def observe_codes(self, codes: ArrayLike, categories: Sequence[Any]) -> CategoricalProfile:
        """A profile of dictionary-encoded values: ``categories[code]``, ``-1`` for missing.

        Counting is one ``bincount`` over the integer codes; only the (few)
        categories are turned into labels.

        Raises
        ------
        InvalidInputError
            When the codes are not integers or fall outside ``-1 .. len(categories) - 1``.

        Examples
        --------
        >>> CategoricalProfile.build([]).observe_codes([0, 1, 1, -1], ["a", "b"]).counts
        {'a': 1, 'b': 2}
        """
        array = np.asarray(codes)
        if array.ndim != 1:
            array = array.ravel()
        if array.size and array.dtype.kind not in "iu":
            raise InvalidInputError("category codes must be integers", field="codes")
        n = len(categories)
        counts: dict[str, int] = {}
        missing = 0
        if array.size:
            numbers, missing = _code_counts(array, n)
            for value, number in zip(categories, numbers.tolist(), strict=True):
                if not number:
                    continue
                label = _category(value)
                if label is None:
                    missing += number
                else:
                    counts[label] = counts.get(label, 0) + number
        return CategoricalProfile(counts=dict(sorted(counts.items())), missing=missing)

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        """Add ``other``'s counts."""
        counts = dict(self.counts)
        for key, value in other.counts.items():
            counts[key] = counts.get(key, 0) + value
        return CategoricalProfile(
            counts=dict(sorted(counts.items())), missing=self.missing + other.missing
        )


FeatureProfile = NumericProfile | CategoricalProfile


def _categorical_part(column: Any) -> CategoricalProfile:
    """A categorical column's counts: from dictionary codes when it has them."""
    codes = category_codes(column) or _integer_codes(column)
    if codes is not None:
        return CategoricalProfile.build([]).observe_codes(codes.codes, codes.categories)
    return CategoricalProfile.build(np.asarray(column, dtype=object).ravel())


def _code_counts(codes: NDArray[Any], n: int) -> tuple[NDArray[np.intp], int]:
    """Counts of codes ``0 .. n - 1`` and the number of ``-1`` (missing) codes.

    ``bincount`` checks the range itself (it refuses negatives; its length shows the
    largest code), so valid codes without missing values take a single pass.
    """
    try:
        numbers, missing = np.bincount(codes, minlength=n), 0
    except ValueError:  # negative codes: only -1 (missing) is allowed
        low = int(codes.min())
        if low == -1:
            shifted = np.bincount(codes + 1, minlength=n + 1)
            numbers, missing = shifted[1:], int(shifted[0])
        else:
            numbers = np.empty(n + 1, dtype=np.intp)  # reported below
    if numbers.size > n:
        low, high = int(codes.min()), int(codes.max())
        raise InvalidInputError(
            f"category codes must lie in [-1, {n - 1}], found [{low}, {high}]", field="codes"
        )
    return numbers, missing


@dataclass(frozen=True, slots=True)
class CategoryCodes:
    """A dictionary-encoded column: value ``i`` is ``categories[codes[i]]``, code ``-1`` missing.

    This is how pandas categoricals and Arrow dictionary arrays store strings;
    :func:`category_codes` converts both.

    Examples
    --------
    >>> column = CategoryCodes(codes=np.array([0, 1, 0]), categories=("eu", "us"))
    >>> len(column)
    3
    """

    codes: NDArray[np.integer[Any]]
    categories: Sequence[Any]

    def __len__(self) -> int:
        return int(np.asarray(self.codes).size)


_MAX_CODE_RANGE = 1 << 20


def _integer_codes(column: Any) -> CategoryCodes | None:
    """Integer or boolean arrays with a modest range, as codes (``bincount`` instead of sort)."""
    if not isinstance(column, np.ndarray) or column.dtype.kind not in "iub" or column.ndim != 1:
        return None
    if column.dtype.kind == "b":
        return CategoryCodes(column.view(np.uint8), (False, True))
    if column.size == 0:
        return CategoryCodes(column.astype(np.int64), ())
    low, high = int(column.min()), int(column.max())
    if high - low >= _MAX_CODE_RANGE:
        return None
    codes = column - low if low else column
    return CategoryCodes(codes, range(low, high + 1))


def category_codes(column: Any) -> CategoryCodes | None:
    """``column`` as :class:`CategoryCodes` when it is dictionary-encoded, else ``None``.

    Understands :class:`CategoryCodes`, pandas ``Categorical`` (and categorical
    ``Series``), and pyarrow ``DictionaryArray`` / ``ChunkedArray`` of dictionaries
    (nulls become code ``-1``).

    Examples
    --------
    >>> category_codes(np.array([1.0, 2.0])) is None
    True
    """
    if isinstance(column, CategoryCodes):
        return column
    cat = getattr(column, "cat", None)  # pandas Series with a categorical dtype
    if cat is not None and hasattr(cat, "codes"):
        return CategoryCodes(np.asarray(cat.codes), list(cat.categories))
    if hasattr(column, "codes") and hasattr(column, "categories"):
        return CategoryCodes(np.asarray(column.codes), list(column.categories))
    if hasattr(column, "combine_chunks") and hasattr(column, "num_chunks"):
        if not hasattr(column.type, "index_type"):
            return None
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if hasattr(column, "indices") and hasattr(column, "dictionary"):
        import pyarrow.compute as pc

        indices = column.indices
        if indices.null_count:
            indices = pc.fill_null(indices, -1)
        codes = indices.to_numpy(zero_copy_only=False)
        return CategoryCodes(codes, column.dictionary.to_pylist())
    return None


#: Suffixes of the two numbers a text feature is profiled as.
TEXT_LENGTH = ":length"
TEXT_KNOWN_WORDS = ":known_words"
#: Words kept per text feature in :attr:`ReferenceProfile.text`.
TEXT_VOCABULARY_SIZE = 1000
_WORDS = re.compile(r"\w\w+")


def text_vocabulary(values: Sequence[Any], size: int = TEXT_VOCABULARY_SIZE) -> tuple[str, ...]:
    """The ``size`` words most rows use (lowercased), for :func:`text_columns`.

    Examples
    --------
    >>> text_vocabulary(["Great service", "great food", None], size=2)
    ('great', 'food')
    """
    documents: Counter[str] = Counter()
    for value in values:
        if isinstance(value, str):
            documents.update(set(_WORDS.findall(value.lower())))
    return tuple(w for w, _ in sorted(documents.items(), key=lambda kv: (-kv[1], kv[0]))[:size])


def text_columns(
    name: str, values: Sequence[Any], vocabulary: Sequence[str]
) -> dict[str, NDArray[np.float64]]:
    """A text feature as two numeric columns: its length and its share of known words.

    A missing value (``None``) is missing in both; a text without words has no share.

    Examples
    --------
    >>> cols = text_columns("note", ["great food", "zzz great", None], ("great", "food"))
    >>> cols["note:length"].tolist(), cols["note:known_words"].tolist()
    ([10.0, 9.0, nan], [1.0, 0.5, nan])
    """
    known = frozenset(vocabulary)
    lengths = np.full(len(values), np.nan)
    shares = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            continue
        lengths[i] = len(value)
        words = _WORDS.findall(value.lower())
        if words:
            shares[i] = sum(w in known for w in words) / len(words)
    return {f"{name}{TEXT_LENGTH}": lengths, f"{name}{TEXT_KNOWN_WORDS}": shares}


class ReferenceProfile(Frozen):
    """Per-feature profiles of a dataset, in the model's feature order.

    Examples
    --------
    >>> X = np.column_stack([np.arange(100.0), np.arange(100) % 3])
    >>> ref = build_profile(X, ["amount", "segment"], categorical=["segment"])
    >>> ref.numeric["amount"].count, ref.categorical["segment"].counts
    (100, {'0': 34, '1': 33, '2': 33})
    >>> ReferenceProfile.from_json(ref.to_json()) == ref
    True
    """

    schema_version: Literal[1] = 1
    features: tuple[str, ...] = Field(min_length=1)
    rows: int = Field(ge=0)
    numeric: dict[str, NumericProfile] = Field(default_factory=dict)
    categorical: dict[str, CategoricalProfile] = Field(default_factory=dict)
    text: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Each text feature's vocabulary (its most common training words). A text feature is
    profiled as two numbers, ``<name>:length`` (characters) and ``<name>:known_words``
    (the share of a row's words in that vocabulary): see :func:`text_columns`."""
    predictions: NumericProfile | None = None
    """The model's scores on its holdout rows, in deciles (training sets it; windows
    observed from features have none).  A score is what serving captures and
    measures: the value (regression), P(second class) (binary), the top
    probability (multi-class); see :func:`score_column`.
    The canary check compares a canary's live scores with it."""
    dataset_rows: int | None = Field(default=None, ge=0)
    """Rows of the whole training set (split and holdout); training sets it, and data
    validation compares the next training set's size with it."""
    labels: CategoricalProfile | NumericProfile | None = Field(default=None, discriminator="kind")
    """The target over the whole training set: counts by class name (classification) or
    a numeric profile (regression); data validation compares label shares with it."""

    @model_validator(mode="after")
    def _every_feature_once(self) -> ReferenceProfile:
        profiled = list(self.numeric) + list(self.categorical)
        if sorted(profiled) != sorted(self.features) or len(set(self.features)) != len(
            self.features
        ):
            raise ValueError("each feature needs exactly one numeric or categorical profile")
        return self

    def feature(self, name: str) -> FeatureProfile:
        """The profile of one feature."""
        if name in self.numeric:
            return self.numeric[name]
        if name in self.categorical:
            return self.categorical[name]
        raise InvalidInputError(f"no feature {name!r} in the profile", field="feature")

    def histogram(self, feature: str, values: ArrayLike) -> NDArray[np.int64]:
        """Count ``values`` of a numeric ``feature`` into its reference bins."""
        profile = self.feature(feature)
        if not isinstance(profile, NumericProfile):
            raise InvalidInputError(f"feature {feature!r} is categorical", field="feature")
        return profile.histogram(values)

    def observe(self, X: ArrayLike) -> ReferenceProfile:  # noqa: N803
        """Profile new rows (columns in :attr:`features` order) in the reference's bins.

        The result merges with the reference and with other observed windows.

        Raises
        ------
        InvalidInputError
            When ``X`` does not have one column per feature.
        """
        matrix = _matrix(X, len(self.features))
        numeric: dict[str, NumericProfile] = {}
        categorical: dict[str, CategoricalProfile] = {}
        for j, name in enumerate(self.features):
            if name in self.numeric:
                numeric[name] = self.numeric[name].observe(matrix[:, j])
            else:
                categorical[name] = CategoricalProfile.build(matrix[:, j])
        return ReferenceProfile(
            features=self.features,
            rows=int(matrix.shape[0]),
            numeric=numeric,
            categorical=categorical,
        )

    def observe_columns(self, columns: Mapping[str, Any]) -> ReferenceProfile:
        """Profile a window given column by column (the fast path for large windows).

        Numeric columns are 1-D arrays of any real dtype (contiguous ``float64``
        is zero-copy).  Categorical columns are arrays of values or, much faster,
        dictionary-encoded (:class:`CategoryCodes`, pandas categoricals, Arrow
        dictionaries).  Extra columns are ignored.

        Raises
        ------
        InvalidWindowError
            When a feature has no column or the columns differ in length.

        Examples
        --------
        >>> ref = build_profile(np.arange(100.0).reshape(-1, 1), ["x"])
        >>> ref.observe_columns({"x": np.array([1.0, np.nan])}).numeric["x"].missing
        1
        """
        return self.observe_batches([columns])

    def observe_batches(self, batches: Iterable[Mapping[str, Any]]) -> ReferenceProfile:
        """:meth:`observe_columns` over a stream of column batches, one batch in memory.

        Numeric columns are counted by one running :meth:`NumericProfile.accumulator`
        each, categorical counts add up, so the result equals observing the batches'
        concatenation (the drift monitor feeds capture files, Parquet row groups come
        the same way).

        Raises
        ------
        InvalidWindowError
            When a batch lacks a feature or its columns differ in length.

        Examples
        --------
        >>> ref = build_profile(np.arange(100.0).reshape(-1, 1), ["x"])
        >>> halves = [{"x": np.arange(50.0)}, {"x": np.arange(50.0, 100.0)}]
        >>> ref.observe_batches(halves) == ref.observe_columns({"x": np.arange(100.0)})
        True
        """
        accumulators = {name: profile.accumulator() for name, profile in self.numeric.items()}
        categorical = {name: CategoricalProfile(counts={}, missing=0) for name in self.categorical}
        rows = 0
        for columns in batches:
            missing = [name for name in self.features if name not in columns]
            if missing:
                raise InvalidWindowError(
                    f"the window has no column for {missing}", field=missing[0]
                )
            lengths: set[int] = set()
            for name in self.features:
                column = columns[name]
                if name in accumulators:
                    values = as_float_array(column)
                    lengths.add(int(values.size))
                    accumulators[name].update(values)
                    continue
                part = _categorical_part(column)
                lengths.add(part.count + part.missing)
                categorical[name] = categorical[name].merge(part)
            if len(lengths) > 1:
                raise InvalidWindowError(
                    f"window columns differ in length: {sorted(lengths)}", field="columns"
                )
            rows += lengths.pop() if lengths else 0
        # Every feature was profiled above from this profile's own bins: skip re-validation.
        return ReferenceProfile.model_construct(
            features=self.features,
            rows=rows,
            numeric={
                name: self.numeric[name].from_scan(acc.result())
                for name, acc in accumulators.items()
            },
            categorical=categorical,
        )

    def to_json(self) -> str:
        """Serialise to JSON (finite numbers only)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Load a profile written by :meth:`to_json`."""
        return cls.model_validate_json(text)


def _matrix(rows: ArrayLike, n_features: int) -> NDArray[Any]:
    matrix = np.asarray(rows)
    if matrix.ndim == 1 and n_features == 1:
        matrix = matrix.reshape(-1, 1)
    if matrix.ndim != 2 or matrix.shape[1] != n_features:
        raise InvalidInputError(
            f"expected a 2-D array with {n_features} columns, got shape {matrix.shape}",
            field="X",
        )
    return matrix


def build_profile(
    X: ArrayLike,  # noqa: N803
    feature_names: Sequence[str],
    categorical: Iterable[str] = (),
    *,
    bins: int = DEFAULT_BINS,
    cells: int = TARGET_CELLS,
    predictions: ArrayLike | None = None,
) -> ReferenceProfile:
    """Profile a dataset: quantile histograms for numeric features, counts for categorical.

    Parameters
    ----------
    X
        ``[n_rows, n_features]``; numeric columns may hold NaN; categorical
        columns anything with a ``str`` (use an object array for mixed types).
    feature_names
        Column names, in order.
    categorical
        Names of the categorical columns.
    bins
        Quantile bins per numeric feature before de-duplication.
    cells
        Target number of fine grid cells per numeric feature (``0``: no grid).
    predictions
        The model's scores on its holdout rows (see :attr:`ReferenceProfile.predictions`),
        profiled in :data:`PREDICTION_BINS` quantile bins.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = build_profile(rng.normal(size=(10_000, 2)), ["a", "b"])
    >>> (len(ref.numeric["a"].counts), int(ref.histogram("a", rng.normal(size=500)).sum()))
    (100, 500)
    """
    names = tuple(feature_names)
    categorical_names = set(categorical)
    unknown = sorted(categorical_names - set(names))
    if unknown:
        raise InvalidInputError(
            f"categorical features not in feature_names: {unknown}", field="categorical"
        )
    matrix = _matrix(X, len(names))
    numeric: dict[str, NumericProfile] = {}
    categories: dict[str, CategoricalProfile] = {}
    for j, name in enumerate(names):
        if name in categorical_names:
            categories[name] = CategoricalProfile.build(matrix[:, j])
        else:
            numeric[name] = NumericProfile.build(matrix[:, j], bins=bins, cells=cells)
    scores = None
    if predictions is not None:
        scores = NumericProfile.build(predictions, bins=PREDICTION_BINS, cells=0)
        if scores.count == 0:
            raise InvalidInputError("predictions hold no finite score", field="predictions")
    return ReferenceProfile(
        features=names,
        rows=int(matrix.shape[0]),
        numeric=numeric,
        categorical=categories,
        predictions=scores,
    )


def check_compatible(a: ReferenceProfile, b: ReferenceProfile) -> None:
    """Raise unless ``a`` and ``b`` have the same features, kinds and bin edges.

    Raises
    ------
    ProfileMismatchError
        Naming the first difference.

    Examples
    --------
    >>> ref = build_profile(np.arange(10.0).reshape(-1, 1), ["x"])
    >>> check_compatible(ref, ref.observe([[3.0]])) is None
    True
    """
    if a.features != b.features:
        raise ProfileMismatchError(
            f"profiles cover different features: {list(a.features)} vs {list(b.features)}",
            field="features",
        )
    if set(a.numeric) != set(b.numeric):
        raise ProfileMismatchError(
            "profiles disagree on which features are numeric", field="features"
        )
    for name, profile in a.numeric.items():
        if profile.edges != b.numeric[name].edges:
            raise ProfileMismatchError(
                f"feature {name!r}: the profiles have different bin edges", field=name
            )


def merge(a: ReferenceProfile, b: ReferenceProfile) -> ReferenceProfile:
    """Combine two profiles of the same features and bins (windows, shards).

    Raises
    ------
    ProfileMismatchError
        When the features, their kinds or their bin edges differ.

    Examples
    --------
    >>> ref = build_profile(np.arange(10.0).reshape(-1, 1), ["x"], bins=4)
    >>> both = merge(ref.observe([[1.0], [2.0]]), ref.observe([[3.0]]))
    >>> (both.rows, both.numeric["x"].count, both.numeric["x"].maximum)
    (3, 3, 3.0)
    """
    check_compatible(a, b)
    numeric = {name: p.merge(b.numeric[name]) for name, p in a.numeric.items()}
    categorical = {name: p.merge(b.categorical[name]) for name, p in a.categorical.items()}
    return ReferenceProfile(
        features=a.features,
        rows=a.rows + b.rows,
        numeric=numeric,
        categorical=categorical,
        predictions=_merged_predictions([a, b]),
    )


def _merged_predictions(profiles: Sequence[ReferenceProfile]) -> NumericProfile | None:
    """The sum of the parts' prediction profiles when every part has one in the same bins."""
    parts = [p.predictions for p in profiles]
    if any(part is None for part in parts):
        return None
    first = parts[0]
    assert first is not None
    if any(part is None or part.edges != first.edges for part in parts):
        return None
    return _merge_numeric([part for part in parts if part is not None])


def merge_all(profiles: Iterable[ReferenceProfile]) -> ReferenceProfile:
    """Merge the profiles of a window's shards (the reduce step of a fan-out).

    Raises
    ------
    InvalidInputError
        When ``profiles`` is empty.
    ProfileMismatchError
        When two shards were not observed in the same reference bins.

    Examples
    --------
    >>> ref = build_profile(np.arange(10.0).reshape(-1, 1), ["x"], bins=4)
    >>> shards = [ref.observe([[float(i)]]) for i in range(3)]
    >>> merge_all(shards).numeric["x"].count
    3
    """
    shards = list(profiles)
    if not shards:
        raise InvalidInputError("there are no profiles to merge", field="profiles")
    first = shards[0]
    if len(shards) == 1:
        return first
    for shard in shards[1:]:
        check_compatible(first, shard)
    categorical: dict[str, CategoricalProfile] = {}
    for name in first.categorical:
        counts: Counter[str] = Counter()
        for shard in shards:
            counts.update(shard.categorical[name].counts)
        categorical[name] = CategoricalProfile(
            counts=dict(sorted(counts.items())),
            missing=sum(shard.categorical[name].missing for shard in shards),
        )
    return ReferenceProfile(
        features=first.features,
        rows=sum(shard.rows for shard in shards),
        numeric={
            name: _merge_numeric([shard.numeric[name] for shard in shards])
            for name in first.numeric
        },
        categorical=categorical,
        predictions=_merged_predictions(shards),
    )


def _merge_numeric(parts: list[NumericProfile]) -> NumericProfile:
    """Many :meth:`NumericProfile.merge` calls at once: arrays add, one validation."""
    first = parts[0]
    counts = np.sum([np.asarray(p.counts, dtype=np.int64) for p in parts], axis=0)
    total = total_sq = 0.0
    for p in parts:  # re-centre each part's sums on the first part's shift
        delta = p.shift - first.shift
        total += p.sum + p.count * delta
        total_sq += p.sum_sq + 2 * delta * p.sum + p.count * delta * delta
    lows = [p.minimum for p in parts if p.minimum is not None]
    highs = [p.maximum for p in parts if p.maximum is not None]
    grid: FineGrid | None = first.grid
    start, fine = 0, tuple[int, ...]()
    lower, upper = first.lower_tail, first.upper_tail
    if grid is not None and all(p.grid == grid for p in parts):
        fines = [f for p in parts if (f := p.fine_histogram()) is not None]
        start, fine = _trim(np.sum(fines, axis=0))
        for p in parts[1:]:
            delta = p.shift - first.shift
            lower = _merge_tails(lower, p.lower_tail, delta)
            upper = _merge_tails(upper, p.upper_tail, delta)
    else:
        grid, lower, upper = None, (), ()
    return NumericProfile(
        edges=first.edges,
        counts=tuple(counts.tolist()),
        count=sum(p.count for p in parts),
        missing=sum(p.missing for p in parts),
        shift=first.shift,
        sum=_saturate(total),
        sum_sq=_saturate(total_sq, squares=True),
        minimum=min(lows) if lows else None,
        maximum=max(highs) if highs else None,
        grid=grid,
        fine_start=start,
        fine_counts=fine,
        lower_tail=lower,
        upper_tail=upper,
    )


def score_column(probabilities: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """A classifier's score per row: P(second class) when binary, else the top probability.

    The one definition behind captured scores, ``PredictionScore`` and the reference
    profile's prediction deciles (training), so the canary check compares like with like.

    Examples
    --------
    >>> import numpy as np
    >>> score_column(np.array([[0.25, 0.75], [0.9, 0.1]])).tolist()
    [0.75, 0.1]
    >>> score_column(np.array([[0.2, 0.5, 0.3]])).tolist()
    [0.5]
    """
    matrix = np.asarray(probabilities, dtype=np.float64)
    return matrix[:, 1] if matrix.shape[1] == 2 else matrix.max(axis=1)
