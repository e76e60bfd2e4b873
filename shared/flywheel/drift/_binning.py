"""Counting kernel behind numeric profiles: one chunked pass per column (numpy only).

A gridded profile carries a :class:`Grid`: uniform cells of width ``1 / scale`` (a power
of two), ``cell(x) = clip(floor(x * scale) - base, 0, cells + 1)``, where cells 0 and
``cells + 1`` are the open tails, split further into geometric tail cells
(:data:`TAIL_STEPS` per doubling of the distance from the grid, each with its count and
sum).  Every bin edge is a cell start, so counting a column is ``bincount(cell(x))``
plus a sum per run of cells, and it agrees exactly with
``searchsorted(edges, x, side="right")`` (a property test checks it).  The cell counts
are the fine histogram behind KS and Wasserstein (ADR 40).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.errors import InvalidInputError

if TYPE_CHECKING:
    from numpy.typing import NDArray

CHUNK_ROWS = 32_768
"""Rows per chunk: three float64/intp buffers of this size stay in a 2 MB L2 cache."""
TARGET_CELLS = 4_096
MAX_CELLS = 1 << 15
_MAX_BASE = float(1 << 50)
_CANCELLATION = 1e-6
_PAD = 0.5
TAIL_STEPS = 8
_MAX_TAIL_V = math.ldexp(1.0, 1000)
_MAX_EXPONENT = 900


@dataclass(frozen=True, slots=True)
class Grid:
    """Uniform cells ``[(k + base) / scale, (k + 1 + base) / scale)`` plus two open tails.

    Examples
    --------
    >>> g = Grid(scale=4.0, base=-1, cells=8)
    >>> [g.cell(x) for x in (-5.0, 0.0, 0.24, 0.25, 1.0, 99.0)]
    [0, 1, 1, 2, 5, 9]
    >>> g.start(2)
    0.25
    """

    scale: float
    base: int
    cells: int
    low: float = field(init=False, repr=False, compare=False)
    """Start of cell 1: values below it fall in the open lower tail (cell 0)."""
    high: float = field(init=False, repr=False, compare=False)
    """Start of cell ``cells + 1``, the open upper tail."""

    def __post_init__(self) -> None:
        mantissa, _ = math.frexp(self.scale)
        if not (math.isfinite(self.scale) and self.scale > 0 and mantissa == 0.5):
            raise ValueError("grid scale must be a finite power of two")
        if not 1 <= self.cells <= MAX_CELLS:
            raise ValueError(f"grid cells must be in [1, {MAX_CELLS}]")
        if abs(self.base) > _MAX_BASE:
            raise ValueError("grid base is out of range")
        if not -_MAX_EXPONENT <= math.frexp(self.scale)[1] - 1 <= _MAX_EXPONENT:
            raise ValueError("grid scale is out of range")
        object.__setattr__(self, "low", self.start(1))
        object.__setattr__(self, "high", self.start(self.cells + 1))

    @classmethod
    def covering(
        cls,
        edges: NDArray[np.float64],
        cells: int = TARGET_CELLS,
        *,
        data_range: tuple[float, float] | None = None,
    ) -> Grid | None:
        """A grid with ``cells / 2`` to ``cells`` cells over twice the span of ``edges``.

        With ``data_range`` (the reference's min and max) the grid is stretched,
        at the same cell width, to cover the data as far as ``cells`` more cells
        allow: windows like the reference then rarely reach the open tails, which
        cost extra passes.  ``None`` when ``edges`` has fewer than two values or a
        span that float64 cannot split into cells.
        """
        if edges.size < 2:
            return None
        lo, hi = float(edges[0]), float(edges[-1])
        span = hi - lo
        if not (math.isfinite(span) and span > 0):
            return None
        lo_ext, hi_ext = lo - span * _PAD, hi + span * _PAD
        width = hi_ext - lo_ext
        if not (math.isfinite(lo_ext) and math.isfinite(hi_ext) and math.isfinite(width)):
            return None
        ratio = cells / width
        if not (math.isfinite(ratio) and ratio > 0):
            return None
        exponent = math.floor(math.log2(ratio))
        if not -_MAX_EXPONENT <= exponent <= _MAX_EXPONENT:
            return None  # cells so fine (or coarse) that their starts would leave float64's range
        scale = math.ldexp(1.0, exponent)
        if data_range is not None and all(math.isfinite(v) for v in data_range):
            budget = cells / scale  # this many more cells' width, shared by the two sides
            lo_ext = max(min(lo_ext, data_range[0]), lo_ext - budget / 2)
            hi_ext = min(max(hi_ext, data_range[1]), hi_ext + budget / 2)
        low, high = lo_ext * scale, hi_ext * scale
        if not (abs(low) < _MAX_BASE and abs(high) < _MAX_BASE):
            return None
        base = math.floor(low) - 1
        n_cells = math.floor(high) - base
        if not 1 <= n_cells <= MAX_CELLS:
            return None
        return cls(scale=scale, base=base, cells=n_cells)

    def cell(self, x: float) -> int:
        """The cell of one finite value."""
        u = x * self.scale
        if math.isinf(u):
            return self.cells + 1 if u > 0 else 0
        return min(max(math.floor(u) - self.base, 0), self.cells + 1)

    def cells_of(self, values: NDArray[np.float64]) -> NDArray[np.intp]:
        """The cells of finite ``values`` (same arithmetic as :meth:`cell`)."""
        with np.errstate(over="ignore"):
            u = np.multiply(values, self.scale)
        np.floor(u, out=u)
        np.clip(u, float(self.base), float(self.base + self.cells + 1), out=u)
        cells = u.astype(np.intp)
        cells -= self.base
        return cells

    def start(self, k: int) -> float:
        """The smallest float in cell ``k`` (``1 <= k <= cells + 1``).

        Usually ``(k + base) / scale`` exactly; near zero, products that underflow
        can move the start by a few subnormals, so the answer is found by bisection
        over the ordered floats.
        """
        x = (k + self.base) / self.scale
        if self.cell(x) >= k > self.cell(math.nextafter(x, -math.inf)):
            return x + 0.0  # -0.0 -> 0.0
        width = 1.0 / self.scale
        low, high = _ordered(x - 2 * width), _ordered(x + 2 * width)
        if self.cell(_unordered(low)) >= k or self.cell(_unordered(high)) < k:
            raise ValueError("grid cell starts are not representable")
        while high - low > 1:
            mid = (low + high) // 2
            if self.cell(_unordered(mid)) >= k:
                high = mid
            else:
                low = mid
        return _unordered(high) + 0.0

    def tail_cells(self, distance: NDArray[np.float64]) -> NDArray[np.intp]:
        """Tail cell of values ``distance > 0`` beyond the grid (the same on both sides).

        With ``v = 1 + distance * scale = m * 2**e`` (``m`` in ``[0.5, 1)``), the
        cell is ``(e - 1) * TAIL_STEPS + floor((2m - 1) * TAIL_STEPS)``.
        """
        with np.errstate(over="ignore"):
            v = np.minimum(distance * self.scale + 1.0, _MAX_TAIL_V)
        mantissa, exponent = np.frexp(v)
        step = np.floor((2.0 * mantissa - 1.0) * TAIL_STEPS).astype(np.intp)
        return (exponent.astype(np.intp) - 1) * TAIL_STEPS + step

    def tail_distances(self, cells: NDArray[np.int64]) -> NDArray[np.float64]:
        """Distances from the grid at which tail cells ``cells`` start."""
        octave, step = np.divmod(cells, TAIL_STEPS)
        return (np.ldexp(1.0 + step / TAIL_STEPS, octave) - 1.0) / self.scale

    def boundaries(self) -> NDArray[np.float64]:
        """Starts of cells ``1 .. cells + 1`` (the ``cells + 1`` inner boundaries)."""
        k = np.arange(1, self.cells + 2, dtype=np.float64)
        return (k + self.base) / self.scale

    def snap(self, edges: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
        """Edges moved down to the start of their cell (duplicates dropped), and those cells."""
        cells = np.unique(self.cells_of(edges))
        cells = cells[(cells >= 1) & (cells <= self.cells)]
        starts = np.array([self.start(int(k)) for k in cells], dtype=np.float64)
        return starts, cells.astype(np.intp)

    def aligned(self, edges: NDArray[np.float64]) -> NDArray[np.intp] | None:
        """The cells of ``edges`` if each is the start of an inner cell, else ``None``."""
        if edges.size == 0:
            return np.empty(0, dtype=np.intp)
        cells = self.cells_of(edges)
        below = self.cells_of(np.nextafter(edges, -np.inf))
        ok = (cells >= 1) & (cells <= self.cells) & (below < cells)
        if not bool(np.all(ok)) or np.any(np.diff(cells) <= 0):
            return None
        return cells


def _ordered(x: float) -> int:
    """An integer that sorts like ``x`` (IEEE-754 bits, negatives mirrored)."""
    bits: int = struct.unpack("<q", struct.pack("<d", x))[0]
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)


def _unordered(i: int) -> float:
    bits = i if i >= 0 else (-i) | (1 << 63)
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


@dataclass(slots=True)
class Scan:
    """What one pass over a column found."""

    counts: NDArray[np.int64]
    fine: NDArray[np.int64] | None
    count: int
    missing: int
    sum: float
    sum_sq: float
    minimum: float | None
    maximum: float | None
    lower_tail: dict[int, tuple[int, float]] = field(default_factory=dict)
    """Tail cell -> (count, ``Σ(x - shift)``) for values below ``grid.low``."""
    upper_tail: dict[int, tuple[int, float]] = field(default_factory=dict)
    """The same for values at or above ``grid.high``."""


def as_float_array(values: Any) -> NDArray[Any]:
    """A 1-D array of a real dtype (no copy when possible), else a float64 conversion.

    ``None`` becomes NaN; text that is not a number raises :class:`InvalidInputError`.
    """
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        array = np.asarray(values, dtype=object)
    if array.ndim != 1:
        array = array.ravel()
    if array.dtype.kind in "fiub":
        return array
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    out = np.empty(array.shape[0], dtype=np.float64)
    for i, value in enumerate(array.astype(object)):
        if value is None:
            out[i] = np.nan
            continue
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"value {str(value)[:40]!r} is not numeric", field="values"
            ) from None
    return out


def scan(
    values: Any,
    *,
    edges: NDArray[np.float64],
    grid: Grid | None,
    edge_cells: NDArray[np.intp] | None,
    shift: float,
) -> Scan:
    """Count ``values`` into the bins (and cells) and accumulate moments, chunk by chunk.

    ``shift`` centres the sums: ``sum = Σ(x - shift)``, ``sum_sq = Σ(x - shift)²``.
    NaN and ±inf count as missing.  ``edge_cells`` are the cells of ``edges`` when
    ``grid`` is given (see :meth:`Grid.aligned`).
    """
    state = Accumulator(edges, grid, edge_cells, shift)
    state.update(values)
    return state.result()


class Accumulator:
    """Running counts, moments, extremes and tail cells of one column.

    Feed it any number of arrays (row groups of a Parquet file, shards) with
    :meth:`update`; :meth:`result` is the same as one :func:`scan` of them all.
    """

    def __init__(
        self,
        edges: NDArray[np.float64],
        grid: Grid | None,
        edge_cells: NDArray[np.intp] | None,
        shift: float,
    ) -> None:
        self.edges, self.grid, self.edge_cells, self.shift = edges, grid, edge_cells, shift
        width = grid.cells + 2 if grid is not None else edges.size + 1
        self.acc = np.zeros(width, dtype=np.int64)
        self.buf_u = np.empty(CHUNK_ROWS, dtype=np.float64)
        self.buf_c = np.empty(CHUNK_ROWS, dtype=np.intp)
        self.count = self.missing = 0
        self.total = self.total_sq = 0.0
        self.lo, self.hi = math.inf, -math.inf
        self.below: list[NDArray[np.float64]] = []  # values in the open tails, binned at the end
        self.above: list[NDArray[np.float64]] = []

    def update(self, values: Any) -> None:
        """Add ``values`` (any 1-D real array, or values :func:`as_float_array` accepts)."""
        array = as_float_array(values)
        # Equal chunks of at most CHUNK_ROWS: 100k rows are 4 x 25,000, not 3 x 32,768
        # plus a sliver that pays a whole chunk's per-call overhead.
        size = -(-array.size // max(-(-array.size // CHUNK_ROWS), 1))
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are handled explicitly
            for start in range(0, array.size, max(size, 1)):
                self._add(array[start : start + size])

    def _add(self, x: NDArray[Any]) -> None:
        if x.dtype != np.float64:
            x = x.astype(np.float64)
        sx, sxx = _sums(x)
        if not math.isfinite(sx):  # NaN or ±inf somewhere (or an overflowing sum)
            finite = np.isfinite(x)
            kept = int(np.count_nonzero(finite))
            self.missing += x.size - kept
            if kept == 0:
                return
            x = x[finite]
            sx, sxx = _sums(x)
        n = x.size
        self.count += n
        s, sq = _centred_moments(x, sx, sxx, self.shift)
        self.total += s
        self.total_sq += sq
        xmin, xmax = float(_MINIMUM(x)), float(_MAXIMUM(x))
        self.lo = min(self.lo, xmin)
        self.hi = max(self.hi, xmax)
        grid = self.grid
        if grid is None:
            _count_bins(x, self.edges, self.acc)
            return
        _count_cells(x, xmin, xmax, grid, self.acc, self.buf_u[:n], self.buf_c[:n])
        if xmin < grid.low:  # only chunks that reach the open tails
            self.below.append(x[x < grid.low])
        if xmax >= grid.high:
            self.above.append(x[x >= grid.high])

    def result(self) -> Scan:
        """Everything counted so far."""
        edge_cells = self.edge_cells
        lower: dict[int, tuple[int, float]] = {}
        upper: dict[int, tuple[int, float]] = {}
        grid = self.grid
        if grid is not None and self.below:
            below = np.concatenate(self.below)
            lower = _tail_cells(grid.tail_cells(grid.low - below), below - self.shift)
        if grid is not None and self.above:
            above = np.concatenate(self.above)
            upper = _tail_cells(grid.tail_cells(above - grid.high), above - self.shift)
        if self.grid is not None:
            assert edge_cells is not None
            counts = np.add.reduceat(self.acc, np.concatenate(([0], edge_cells)))
            fine: NDArray[np.int64] | None = self.acc
        else:
            counts, fine = self.acc, None
        return Scan(
            counts=counts.astype(np.int64),
            fine=fine,
            count=self.count,
            missing=self.missing,
            sum=self.total,
            sum_sq=max(self.total_sq, 0.0),
            minimum=self.lo if self.count else None,
            maximum=self.hi if self.count else None,
            lower_tail=lower,
            upper_tail=upper,
        )


def _count_bins(x: NDArray[np.float64], edges: NDArray[np.float64], acc: NDArray[np.int64]) -> None:
    """``acc += bincount(searchsorted(edges, x, "right"))``, with shortcuts for 0 or 1 edge."""
    if edges.size == 0:
        acc[0] += x.size
    elif edges.size == 1:
        above = int(np.count_nonzero(x >= edges[0]))
        acc[1] += above
        acc[0] += x.size - above
    else:
        acc += np.bincount(np.searchsorted(edges, x, side="right"), minlength=acc.size)


def _tail_cells(
    cells: NDArray[np.intp], centred: NDArray[np.float64]
) -> dict[int, tuple[int, float]]:
    """Tail cell -> (count, sum of ``centred``)."""
    # Tail cells are small non-negative integers (at most ~1000 * TAIL_STEPS): count
    # them directly rather than sorting for np.unique.
    counts = np.bincount(cells)
    keys = np.flatnonzero(counts)
    sums = np.bincount(cells, weights=centred)[keys]
    counts = counts[keys]
    return {
        key: (count, total)
        for key, count, total in zip(keys.tolist(), counts.tolist(), sums.tolist(), strict=True)
    }


_MINIMUM, _MAXIMUM = np.minimum.reduce, np.maximum.reduce
_BLOCK = 8_192
"""Rows per BLAS dot product: OpenBLAS keeps a ``ddot`` of at most 10,000 values on the
calling thread (a longer one wakes its thread pool, which stalls on a busy 2-vCPU box)."""
_ONES = np.ones((-(-CHUNK_ROWS // _BLOCK), _BLOCK))
"""Row-matched ones: ``vecdot(rows, ones)`` is faster than broadcasting one row."""


def _sums(x: NDArray[np.float64]) -> tuple[float, float]:
    """``Σx`` and ``Σx²``: BLAS dot products over ``_BLOCK``-row slices.

    About twice as fast as ``add.reduce`` plus ``einsum`` (no temporary either);
    non-finite values make ``Σx`` non-finite, as with ``add.reduce``.
    """
    n = x.size
    full = n - n % _BLOCK
    total = total_sq = 0.0
    if full:
        rows = x[:full].reshape(-1, _BLOCK)
        ones = _ONES[: rows.shape[0]] if rows.shape[0] <= _ONES.shape[0] else _ONES[0]
        total = float(np.add.reduce(np.vecdot(rows, ones)))
        total_sq = float(np.add.reduce(np.vecdot(rows, rows)))
    if full < n:
        rest = x[full:]
        total += float(np.dot(rest, _ONES[0, : rest.size]))
        total_sq += float(np.dot(rest, rest))
    return total, total_sq


def _centred_moments(
    x: NDArray[np.float64], sx: float, sxx: float, shift: float
) -> tuple[float, float]:
    """``Σ(x - shift)`` and ``Σ(x - shift)²`` from ``Σx`` and ``Σx²`` when that is safe."""
    n = x.size
    s = sx - n * shift
    sq = sxx - 2.0 * shift * sx + n * shift * shift
    if math.isfinite(sq) and sq > _CANCELLATION * (sxx + n * shift * shift):
        return s, sq
    # Large offset relative to the spread: the expansion cancels, centre explicitly.
    return _sums(x - shift)


def _count_cells(
    x: NDArray[np.float64],
    xmin: float,
    xmax: float,
    grid: Grid,
    acc: NDArray[np.int64],
    u: NDArray[np.float64],
    c: NDArray[np.intp],
) -> None:
    """``acc += bincount(grid.cells_of(x))`` with the passes the chunk's range allows.

    Most chunks are non-negative after scaling and end at most one grid's width
    past it.  Then ``trunc`` is ``floor``, so one multiply-and-cast gives the raw
    cells ``floor(x * scale)``, and ``bincount`` itself sorts out the tails: raw
    cells below ``base + 1`` are the lower tail, those from ``top`` on the upper
    one.  When ``base`` is small the raw cells are counted directly (no pass to
    subtract it); otherwise it is subtracted.  Anything else takes the general
    route: floor, clip to the tails, cast, subtract.
    """
    scale, base, size = grid.scale, grid.base, acc.size  # size = cells + 2
    top = base + size - 1  # raw cell of the upper tail's start
    low, high = xmin * scale, xmax * scale
    if low >= 0.0 and high < top + size:  # NaN-safe; inf fails the second test
        np.multiply(x, scale, out=c, casting="unsafe")
        if 0 <= base <= 2 * size:
            raw = np.bincount(c, minlength=base + size)
            acc += raw[base : base + size]
            if low < base:
                acc[0] += raw[:base].sum()
            if high >= top + 1:
                acc[-1] += raw[base + size :].sum()
            return
        if low >= base:  # nothing below the grid: every cell is >= 0 after the shift
            c -= base
            counts = np.bincount(c, minlength=size)
            acc += counts[:size]
            if high >= top + 1:
                acc[-1] += counts[size:].sum()
            return
    np.multiply(x, scale, out=u)
    if not low >= 0.0:
        np.floor(u, out=u)
    if not (base <= low and high < top + 1):  # NaN-safe: clip unless inside the grid
        np.clip(u, float(base), float(top), out=u)
    np.copyto(c, u, casting="unsafe")
    c -= base
    acc += np.bincount(c, minlength=size)
