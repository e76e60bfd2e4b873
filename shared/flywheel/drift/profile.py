"""Reference profiles: mergeable per-feature summaries of a dataset (numpy only).

A profile is computed from the training data and stored next to the model.  Later,
production windows are counted into the *same* bins with
:meth:`ReferenceProfile.observe`, shards are combined with :func:`merge`, and a
drift scorer compares the histograms (PSI, KS, Wasserstein, JS, chi²).

Numeric features
    ``edges`` are the de-duplicated 1%..99% training quantiles (``bins - 1``
    interior points, ``inverted_cdf``, so discrete features get edges at their
    values).  With open tails the bins are ``(-inf, e0), [e0, e1), ...,
    [e_last, +inf)``: every finite value lands in exactly one of
    ``len(edges) + 1`` bins (``np.searchsorted(edges, x, side="right")``).
    Only finite edges are stored, so the JSON needs no ``Infinity``;
    :attr:`NumericProfile.bin_edges` adds the infinite ends.
    NaN and ±inf count as missing.  Moments are stored as sums of ``x - shift``
    and ``(x - shift)²`` (``shift`` is the training mean) so that merging is
    addition and the variance does not cancel catastrophically.
Categorical features
    Counts per category (``str`` of the value; integral floats without ``.0``);
    ``None``, NaN and ``""`` count as missing.

Merging adds counts and sums; it requires identical features and edges and raises
:class:`~flywheel.errors.ProfileMismatchError` otherwise.  Counts merge exactly;
sums merge up to float64 rounding.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flywheel.errors import InvalidInputError, ProfileMismatchError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from numpy.typing import ArrayLike, NDArray

DEFAULT_BINS = 100


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _finite(values: ArrayLike) -> tuple[NDArray[np.float64], int]:
    """Finite values as float64 and the number of missing (NaN, ±inf, None) ones."""
    array = _as_float(values)
    mask = np.isfinite(array)
    return array[mask], int(array.size - np.count_nonzero(mask))


def _as_float(values: ArrayLike) -> NDArray[np.float64]:
    try:
        return np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        pass
    flat = np.asarray(values, dtype=object).ravel()
    out = np.empty(flat.shape[0], dtype=np.float64)
    for i, value in enumerate(flat):
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


class NumericProfile(_Frozen):
    """Histogram and moments of one numeric feature.

    Examples
    --------
    >>> p = NumericProfile.build(np.arange(1000.0), bins=10)
    >>> (len(p.edges), sum(p.counts), p.count, round(p.mean, 1))
    (9, 1000, 1000, 499.5)
    >>> p.histogram(np.array([-5.0, 50.0, 5000.0])).tolist()
    [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
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
        return self

    @classmethod
    def build(cls, values: ArrayLike, *, bins: int = DEFAULT_BINS) -> NumericProfile:
        """Profile ``values`` with ``bins`` quantile bins (fewer when values repeat)."""
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
        )
        return empty._with(finite, missing)

    @property
    def bin_edges(self) -> NDArray[np.float64]:
        """All ``len(counts) + 1`` bin boundaries, from ``-inf`` to ``+inf``."""
        return np.concatenate(([-np.inf], np.asarray(self.edges, dtype=np.float64), [np.inf]))

    @property
    def mean(self) -> float:
        return self.shift + self.sum / self.count if self.count else math.nan

    @property
    def variance(self) -> float:
        """Population variance."""
        if not self.count:
            return math.nan
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

    def histogram(self, values: ArrayLike) -> NDArray[np.int64]:
        """Count the finite ``values`` into this profile's bins (vectorised).

        Missing values are left out; the result has ``len(edges) + 1`` entries.
        """
        finite, _ = _finite(values)
        return self._count(finite)

    def _count(self, finite: NDArray[np.float64]) -> NDArray[np.int64]:
        index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), finite, side="right")
        return np.bincount(index, minlength=len(self.edges) + 1).astype(np.int64)

    def observe(self, values: ArrayLike) -> NumericProfile:
        """A profile of ``values`` in this profile's bins (and shift), ready to merge."""
        finite, missing = _finite(values)
        return self.model_copy(
            update={
                "counts": (0,) * len(self.counts),
                "count": 0,
                "missing": 0,
                "sum": 0.0,
                "sum_sq": 0.0,
                "minimum": None,
                "maximum": None,
            }
        )._with(finite, missing)

    def _with(self, finite: NDArray[np.float64], missing: int) -> NumericProfile:
        """This profile plus ``finite`` values and ``missing`` missing ones."""
        centred = finite - self.shift
        addition = NumericProfile.model_construct(
            kind="numeric",
            edges=self.edges,
            counts=tuple(int(c) for c in self._count(finite)),
            count=int(finite.size),
            missing=missing,
            shift=self.shift,
            sum=float(np.sum(centred)),
            sum_sq=float(np.dot(centred, centred)),
            minimum=float(finite.min()) if finite.size else None,
            maximum=float(finite.max()) if finite.size else None,
        )
        return self.merge(addition)

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
        return NumericProfile(
            edges=self.edges,
            counts=tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            count=self.count + other.count,
            missing=self.missing + other.missing,
            shift=self.shift,
            sum=self.sum + other_sum,
            sum_sq=max(self.sum_sq + other_sum_sq, 0.0),
            minimum=_pick(min, self.minimum, other.minimum),
            maximum=_pick(max, self.maximum, other.maximum),
        )


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


class CategoricalProfile(_Frozen):
    """Category counts of one categorical feature.

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
        """A profile of ``values`` (categories not seen before are added)."""
        labels = [_category(v) for v in np.asarray(values, dtype=object).ravel()]
        present = np.asarray([label for label in labels if label is not None], dtype=object)
        counts: dict[str, int] = {}
        if present.size:
            keys, numbers = np.unique(present.astype(str), return_counts=True)
            counts = {str(k): int(n) for k, n in zip(keys, numbers, strict=True)}
        return CategoricalProfile(counts=counts, missing=len(labels) - int(present.size))

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        """Add ``other``'s counts."""
        counts = dict(self.counts)
        for key, value in other.counts.items():
            counts[key] = counts.get(key, 0) + value
        return CategoricalProfile(
            counts=dict(sorted(counts.items())), missing=self.missing + other.missing
        )


FeatureProfile = NumericProfile | CategoricalProfile


class ReferenceProfile(_Frozen):
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
            numeric[name] = NumericProfile.build(matrix[:, j], bins=bins)
    return ReferenceProfile(
        features=names, rows=int(matrix.shape[0]), numeric=numeric, categorical=categories
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
    if a.features != b.features:
        raise ProfileMismatchError(
            f"profiles cover different features: {list(a.features)} vs {list(b.features)}",
            field="features",
        )
    if set(a.numeric) != set(b.numeric):
        raise ProfileMismatchError(
            "profiles disagree on which features are numeric", field="features"
        )
    numeric: dict[str, NumericProfile] = {}
    for name, profile in a.numeric.items():
        try:
            numeric[name] = profile.merge(b.numeric[name])
        except ProfileMismatchError:
            raise ProfileMismatchError(
                f"feature {name!r}: the profiles have different bin edges", field=name
            ) from None
    categorical = {name: p.merge(b.categorical[name]) for name, p in a.categorical.items()}
    return ReferenceProfile(
        features=a.features, rows=a.rows + b.rows, numeric=numeric, categorical=categorical
    )
