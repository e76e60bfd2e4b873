"""Data validation before training: a new training set against its declared schema and the
previous training set's reference profile.

:func:`validate_dataset` runs the expectations of :class:`DataExpectations` (the model
config's ``data.expectations``) and returns a :class:`DataValidationReport`: one
:class:`ExpectationResult` per check and feature that failed, one per check that passed.
Without a reference profile (the model's first training set) only the checks that need
none run (rows, declared types and ranges, null rates, duplicates, leakage); the others
are ``skipped`` with the reason.

Examples
--------
>>> from flywheel.training.datasets import load_dataset
>>> report = validate_dataset(load_dataset("sklearn:breast_cancer"), DataExpectations())
>>> report.passed, [r.name for r in report.results if r.status == "skipped"][:2]
(True, ['features', 'categories'])
"""

from __future__ import annotations

import html
import math
import time
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from pydantic import Field, model_validator

from flywheel.drift.profile import (
    TEXT_KNOWN_WORDS,
    TEXT_LENGTH,
    CategoricalProfile,
    NumericProfile,
)
from flywheel.errors import DatasetError
from flywheel.models import Frozen
from flywheel.registry.models import STRING_TYPES, Task
from flywheel.training._leakage import single_feature_scores
from flywheel.training.datasets import dataset_from_bytes

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from flywheel.drift.profile import ReferenceProfile
    from flywheel.registry.models import FeatureType
    from flywheel.training.config import FeatureRange
    from flywheel.training.datasets import Dataset

__all__ = [
    "CHECKS",
    "DataExpectations",
    "DataValidationReport",
    "ExpectationResult",
    "class_counts",
    "label_profile",
    "load_checked",
    "validate_dataset",
]

Check = Literal[
    "min_rows",
    "min_rows_per_class",
    "features",
    "types",
    "ranges",
    "null_rates",
    "categories",
    "row_count",
    "label_shift",
    "duplicates",
    "leakage",
]
#: Every check, in the order reports list them.
CHECKS: tuple[Check, ...] = get_args(Check)
_NEEDS_REFERENCE = frozenset({"features", "categories", "row_count", "label_shift"})
_NUMERIC = frozenset({"float", "int", "bool"})


class DataExpectations(Frozen):
    """Thresholds of the data checks (``data.expectations`` in a model config).

    A failed check stops the run unless it is listed in ``warn`` (reported only); checks
    in ``off`` do not run.

    Examples
    --------
    >>> DataExpectations().warn
    ('features', 'categories')
    >>> DataExpectations(off=("leakage",), max_null_rate_increase=0.2).max_null_rate_increase
    0.2
    """

    #: Checks whose failure is a warning.
    warn: tuple[Check, ...] = ("features", "categories")
    #: Checks that do not run.
    off: tuple[Check, ...] = ()
    #: ranges: the reference's [min, max] widened by this share of its width on each side.
    range_tolerance: float = Field(default=0.5, ge=0)
    #: ranges: share of a feature's values allowed outside the declared or widened range.
    max_out_of_range: float = Field(default=0.01, ge=0, le=1)
    #: null_rates: largest share of missing values of any feature.
    max_null_rate: float = Field(default=0.95, ge=0, le=1)
    #: null_rates: largest increase of a feature's missing share over the reference's.
    max_null_rate_increase: float = Field(default=0.1, ge=0, le=1)
    #: categories: share of rows holding categories the reference never saw.
    max_new_category_share: float = Field(default=0.05, ge=0, le=1)
    #: categories: a reference category at least this frequent must still occur.
    min_vanished_category_share: float = Field(default=0.01, ge=0, le=1)
    #: row_count: largest relative drop of the row count against the previous set.
    max_row_drop: float = Field(default=0.5, ge=0, le=1)
    #: row_count: largest relative growth (2.0: up to three times the previous rows).
    max_row_growth: float = Field(default=2.0, ge=0)
    #: label_shift (classification): largest absolute change of a class's share.
    max_label_shift: float = Field(default=0.1, ge=0, le=1)
    #: label_shift (regression): largest change of the label mean, in reference std units.
    max_label_mean_shift: float = Field(default=0.5, ge=0)
    #: duplicates: largest share of rows repeating an earlier row (features and label).
    max_duplicate_share: float = Field(default=0.05, ge=0, le=1)
    #: leakage: a feature whose out-of-fold ROC AUC / R² alone reaches this is flagged.
    max_single_feature_score: float = Field(default=0.99, gt=0, le=1)
    #: leakage: rows sampled (seeded) for the single-feature models.
    leakage_rows: int = Field(default=20_000, ge=100)

    @model_validator(mode="after")
    def _distinct(self) -> DataExpectations:
        both = sorted(set(self.warn) & set(self.off))
        if both:
            raise ValueError(f"{both[0]!r} is listed in both warn and off")
        return self

    def severity(self, check: Check) -> Literal["error", "warning"]:
        return "warning" if check in self.warn else "error"


class ExpectationResult(Frozen):
    """One check (on one feature, where it applies): what was seen against what is allowed."""

    check: Check
    feature: str | None = None
    status: Literal["passed", "failed", "skipped"]
    severity: Literal["error", "warning"]
    observed: str
    threshold: str
    #: The policy field behind the threshold (``data.expectations.max_null_rate_increase``).
    field: str

    @property
    def name(self) -> str:
        """``check`` or ``check.feature``."""
        return f"{self.check}.{self.feature}" if self.feature else self.check


class DataValidationReport(Frozen):
    """Every expectation's result for one training set."""

    model: str
    dataset_id: str
    dataset_sha256: str
    rows: int
    #: What the reference profile is (``champion v3``), or ``None``.
    reference: str | None = None
    #: Why some checks did not run (no reference, a check turned off).
    notes: tuple[str, ...] = ()
    results: tuple[ExpectationResult, ...]
    seconds: float = 0.0

    @property
    def failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if r.status == "failed" and r.severity == "error"]

    @property
    def warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if r.status == "failed" and r.severity == "warning"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line: the verdict and every failed expectation's name.

        Examples
        --------
        >>> DataValidationReport(model="m", dataset_id="d", dataset_sha256="0" * 64, rows=1,
        ...                      results=()).summary()
        'data validation passed (0 expectations, 0 warnings)'
        """
        if self.passed:
            return (
                f"data validation passed ({len(self.results)} expectations, "
                f"{len(self.warnings)} warnings)"
            )
        names = ", ".join(r.name for r in self.failures)
        return f"{len(self.failures)} data expectation(s) failed: {names}"

    def with_results(self, extra: Sequence[ExpectationResult]) -> DataValidationReport:
        """The report with ``extra`` results appended."""
        return self.model_copy(update={"results": (*self.results, *extra)})

    def text(self) -> str:
        """A plain-text table, one expectation per line."""
        header = ("expectation", "status", "observed", "threshold")
        rows = [(r.name, _status(r), r.observed, r.threshold) for r in self.results]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(3)]
        lines = [
            f"data validation of {self.model}: {self.dataset_id} ({self.rows:,} rows)",
            f"reference: {self.reference or 'none'}",
            *(f"note: {n}" for n in self.notes),
            "",
        ]
        for row in (header, *rows):
            lines.append(
                "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
            )
        lines += ["", self.summary()]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """A standalone HTML page of the report (every value escaped)."""
        esc = html.escape
        body = "".join(
            f"<tr class='{esc(_status(r).split()[0])}'><td>{esc(r.name)}</td>"
            f"<td>{esc(_status(r))}</td><td>{esc(r.observed)}</td>"
            f"<td>{esc(r.threshold)}</td><td><code>{esc(r.field)}</code></td></tr>"
            for r in self.results
        )
        notes = "".join(f"<p>{esc(n)}</p>" for n in self.notes)
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>Data validation: {esc(self.model)}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
            ".failed{background:#fdd}.warning{background:#ffd}.skipped{color:#888}"
            "</style></head><body>"
            f"<h1>Data validation: {esc(self.model)}</h1>"
            f"<p>{esc(self.dataset_id)} ({self.rows:,} rows, sha256 "
            f"<code>{esc(self.dataset_sha256[:12])}</code>); reference: "
            f"{esc(self.reference or 'none')}</p>{notes}"
            f"<p><strong>{esc(self.summary())}</strong></p>"
            "<table><tr><th>expectation</th><th>status</th><th>observed</th>"
            f"<th>threshold</th><th>policy</th></tr>{body}</table></body></html>"
        )


def _status(result: ExpectationResult) -> str:
    if result.status == "failed" and result.severity == "warning":
        return "warning"
    return result.status


def class_counts(dataset: Dataset) -> dict[str, int]:
    """Rows per class name (empty for regression).

    Examples
    --------
    >>> from flywheel.training.datasets import load_dataset
    >>> class_counts(load_dataset("sklearn:iris"))["setosa"]
    50
    """
    if dataset.task is not Task.CLASSIFICATION:
        return {}
    codes = np.bincount(np.asarray(dataset.y, dtype=np.int64), minlength=len(dataset.classes))
    return {name: int(n) for name, n in zip(dataset.classes, codes, strict=True)}


def label_profile(dataset: Dataset) -> CategoricalProfile | NumericProfile:
    """The target's distribution: counts by class name, or a numeric profile.

    Examples
    --------
    >>> from flywheel.training.datasets import load_dataset
    >>> label_profile(load_dataset("sklearn:breast_cancer")).counts
    {'benign': 357, 'malignant': 212}
    """
    if dataset.task is Task.CLASSIFICATION:
        return CategoricalProfile(counts=class_counts(dataset), missing=0)
    return NumericProfile.build(np.asarray(dataset.y, dtype=np.float64), cells=0)


def load_checked(
    content: bytes,
    *,
    file_format: Literal["csv", "parquet"],
    source: str,
    target: str,
    features: Sequence[str] | None = None,
    task: Task | None = None,
    types: Mapping[str, FeatureType] | None = None,
) -> tuple[Dataset, dict[str, str]]:
    """Load a table like :func:`~flywheel.training.datasets.dataset_from_bytes`, but a
    column that does not hold its declared type is loaded as inferred and named instead.

    Returns the dataset and ``{feature: what is wrong}`` for those columns.

    Examples
    --------
    >>> ds, wrong = load_checked(b"age,y\\n31,a\\nn/a,b\\n", file_format="csv", source="m.csv",
    ...                          target="y", types={"age": "float"})
    >>> ds.feature_dtypes, wrong
    (('categorical',), {'age': "column 'age' is declared float but holds 'n/a'"})
    """
    declared = dict(types or {})
    wrong: dict[str, str] = {}
    while True:
        try:
            dataset = dataset_from_bytes(
                content,
                file_format=file_format,
                source=source,
                target=target,
                features=features,
                task=task,
                types=declared,
            )
        except DatasetError as err:
            name = (err.field or "").removeprefix("dataset.features.")
            if name not in declared:
                raise
            wrong[name] = str(err).removeprefix("dataset.features: ")
            del declared[name]
            continue
        return dataset, wrong


def _column(dataset: Dataset, j: int) -> NDArray[Any]:
    return dataset.X[:, j]


def _floats(column: NDArray[Any]) -> NDArray[np.float64]:
    if column.dtype != object:
        return np.asarray(column, dtype=np.float64)
    return np.asarray([np.nan if v is None else v for v in column.tolist()], dtype=np.float64)


def _missing(column: NDArray[Any], numeric: bool) -> NDArray[np.bool_]:
    if numeric:
        return np.isnan(_floats(column))
    return np.fromiter((v is None for v in column.tolist()), dtype=bool, count=len(column))


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


class _Run:
    """Collects results for one dataset (keeps :func:`validate_dataset` readable)."""

    def __init__(self, expectations: DataExpectations) -> None:
        self.expectations = expectations
        self.results: list[ExpectationResult] = []

    def add(
        self,
        check: Check,
        *,
        ok: bool,
        observed: str,
        threshold: str,
        field: str,
        feature: str | None = None,
    ) -> None:
        self.results.append(
            ExpectationResult(
                check=check,
                feature=feature,
                status="passed" if ok else "failed",
                severity=self.expectations.severity(check),
                observed=observed,
                threshold=threshold,
                field=field,
            )
        )

    def skip(self, check: Check, why: str) -> None:
        self.results.append(
            ExpectationResult(
                check=check,
                status="skipped",
                severity=self.expectations.severity(check),
                observed=why,
                threshold="-",
                field=f"data.expectations.{check}",
            )
        )

    def per_feature(
        self,
        check: Check,
        failed: list[tuple[str, str, str]],
        *,
        passed: str,
        threshold: str,
        field: str,
    ) -> None:
        """One failed result per feature, or one passed result for the check."""
        for feature, observed, limit in failed:
            self.add(
                check, ok=False, observed=observed, threshold=limit, field=field, feature=feature
            )
        if not failed:
            self.add(check, ok=True, observed=passed, threshold=threshold, field=field)


def validate_dataset(
    dataset: Dataset,
    expectations: DataExpectations,
    *,
    model: str = "",
    reference: ReferenceProfile | None = None,
    reference_label: str | None = None,
    no_reference: str = "no reference profile",
    min_rows: int = 2,
    min_rows_per_class: int = 1,
    declared_ranges: Mapping[str, FeatureRange] | None = None,
    type_problems: Mapping[str, str] | None = None,
) -> DataValidationReport:
    """Check ``dataset`` against ``expectations`` and (if given) the previous training set's
    ``reference`` profile.

    ``type_problems`` names columns that do not hold their declared type (from
    :func:`load_checked`); ``no_reference`` says why there is no reference.

    Examples
    --------
    >>> from flywheel.training.datasets import load_dataset
    >>> iris = load_dataset("sklearn:iris")
    >>> report = validate_dataset(iris, DataExpectations(), min_rows=500)
    >>> report.summary()
    '1 data expectation(s) failed: min_rows'
    """
    started = time.perf_counter()
    run = _Run(expectations)
    n = dataset.n_rows
    run.add(
        "min_rows",
        ok=n >= min_rows,
        observed=f"{n:,} rows",
        threshold=f">= {min_rows:,}",
        field="data.min_rows",
    )
    if dataset.task is Task.CLASSIFICATION:
        counts = class_counts(dataset)
        small = sorted((c, name) for name, c in counts.items() if c < min_rows_per_class)
        run.per_feature(
            "min_rows_per_class",
            [(f"class {name}", f"{c:,} rows", f">= {min_rows_per_class:,}") for c, name in small],
            passed=f"smallest class {min(counts.values()):,} rows",
            threshold=f">= {min_rows_per_class:,}",
            field="data.min_rows_per_class",
        )
    notes: list[str] = []
    if reference is None:
        notes.append(f"{no_reference}: only the checks that need no reference ran")
    off = set(expectations.off)
    if off:
        notes.append(f"turned off: {', '.join(sorted(off))}")
    checks = [
        ("features", _features),
        ("types", _types),
        ("ranges", _ranges),
        ("null_rates", _null_rates),
        ("categories", _categories),
        ("row_count", _row_count),
        ("label_shift", _label_shift),
        ("duplicates", _duplicates),
        ("leakage", _leakage),
    ]
    for check, function in checks:
        if check in off:
            continue
        if reference is None and check in _NEEDS_REFERENCE:
            run.skip(check, "no reference")  # type: ignore[arg-type]
            continue
        function(run, dataset, reference, declared_ranges or {}, type_problems or {})
    return DataValidationReport(
        model=model,
        dataset_id=dataset.dataset_id,
        dataset_sha256=dataset.sha256,
        rows=n,
        reference=reference_label if reference is not None else None,
        notes=tuple(notes),
        results=tuple(run.results),
        seconds=round(time.perf_counter() - started, 3),
    )


# -- the checks: each gets (run, dataset, reference, declared ranges, type problems) -----------
def _profiled(dataset: Dataset) -> list[str]:
    kinds = dict(zip(dataset.feature_names, dataset.feature_dtypes, strict=True))
    return [name for name in dataset.feature_names if kinds[name] != "text"]


def _reference_features(reference: Any) -> set[str]:
    """The reference's input features: a text feature is profiled as two derived ones."""
    text = set(getattr(reference, "text", {}) or {})
    derived = {f"{t}{TEXT_LENGTH}" for t in text} | {f"{t}{TEXT_KNOWN_WORDS}" for t in text}
    return (set(reference.features) - derived) | text


def _features(run: _Run, dataset: Dataset, reference: Any, *_: Any) -> None:
    ours = set(dataset.feature_names)
    theirs = _reference_features(reference)
    gone, new = sorted(theirs - ours), sorted(ours - theirs)
    field = "data.expectations.features"
    for name in gone:
        run.add(
            "features",
            ok=False,
            feature=name,
            observed="missing from the data",
            threshold="the reference's features",
            field=field,
        )
    for name in new:
        run.add(
            "features",
            ok=False,
            feature=name,
            observed="not in the reference",
            threshold="the reference's features",
            field=field,
        )
    if not gone and not new:
        run.add(
            "features",
            ok=True,
            observed=f"{len(ours)} features as in the reference",
            threshold="the reference's features",
            field=field,
        )


def _types(
    run: _Run, dataset: Dataset, reference: Any, _: Any, problems: Mapping[str, str]
) -> None:
    failed = [(name, problem, "the declared type") for name, problem in sorted(problems.items())]
    if reference is not None:
        for name, kind in zip(dataset.feature_names, dataset.feature_dtypes, strict=True):
            if name in problems:
                continue
            if name in reference.numeric and kind in STRING_TYPES:
                failed.append((name, f"{kind} (strings)", "numeric, as in the reference"))
            elif name in reference.categorical and kind in _NUMERIC:
                failed.append((name, f"{kind} (numbers)", "categorical, as in the reference"))
    run.per_feature(
        "types",
        failed,
        passed=f"{dataset.n_features} features hold their types",
        threshold="declared or the reference's",
        field="training.features",
    )


def _ranges(
    run: _Run,
    dataset: Dataset,
    reference: Any,
    declared: Mapping[str, FeatureRange],
    problems: Mapping[str, str],
) -> None:
    limit = run.expectations.max_out_of_range
    tolerance = run.expectations.range_tolerance
    failed: list[tuple[str, str, str]] = []
    for j, (name, kind) in enumerate(
        zip(dataset.feature_names, dataset.feature_dtypes, strict=True)
    ):
        if kind not in _NUMERIC or name in problems:
            continue
        values = _floats(_column(dataset, j))
        values = values[~np.isnan(values)]
        if not values.size:
            continue
        bounds: list[tuple[float, float, str]] = []
        if name in declared:
            low = declared[name].minimum
            high = declared[name].maximum
            bounds.append(
                (-math.inf if low is None else low, math.inf if high is None else high, "declared")
            )
        profile = reference.numeric.get(name) if reference is not None else None
        if profile is not None and profile.minimum is not None and profile.maximum is not None:
            width = profile.maximum - profile.minimum
            bounds.append(
                (
                    profile.minimum - tolerance * width,
                    profile.maximum + tolerance * width,
                    "reference",
                )
            )
        for low, high, what in bounds:
            outside = float(np.mean((values < low) | (values > high)))
            if outside > limit:
                failed.append(
                    (
                        name,
                        f"{_pct(outside)} outside [{low:.6g}, {high:.6g}] ({what}); "
                        f"min {values.min():.6g}, max {values.max():.6g}",
                        f"<= {_pct(limit)}",
                    )
                )
                break
    run.per_feature(
        "ranges",
        failed,
        passed="values within the declared and the reference's ranges",
        threshold=f"<= {_pct(limit)} outside (reference widened by {tolerance:g} x width)",
        field="data.expectations.max_out_of_range",
    )


def _null_rates(run: _Run, dataset: Dataset, reference: Any, *_: Any) -> None:
    expect = run.expectations
    failed: list[tuple[str, str, str]] = []
    worst = 0.0
    for j, (name, kind) in enumerate(
        zip(dataset.feature_names, dataset.feature_dtypes, strict=True)
    ):
        rate = float(np.mean(_missing(_column(dataset, j), kind in _NUMERIC)))
        worst = max(worst, rate)
        if rate > expect.max_null_rate:
            failed.append((name, f"{_pct(rate)} missing", f"<= {_pct(expect.max_null_rate)}"))
            continue
        profile = None
        if reference is not None:
            profile = reference.numeric.get(name) or reference.categorical.get(name)
        if profile is not None and rate - profile.missing_rate > expect.max_null_rate_increase:
            failed.append(
                (
                    name,
                    f"{_pct(rate)} missing (reference {_pct(profile.missing_rate)})",
                    f"<= +{_pct(expect.max_null_rate_increase)} over the reference",
                )
            )
    run.per_feature(
        "null_rates",
        failed,
        passed=f"at most {_pct(worst)} missing",
        threshold=f"<= {_pct(expect.max_null_rate)}, <= +{_pct(expect.max_null_rate_increase)} "
        "over the reference",
        field="data.expectations.max_null_rate_increase",
    )


def _categories(run: _Run, dataset: Dataset, reference: Any, *_: Any) -> None:
    expect = run.expectations
    failed: list[tuple[str, str, str]] = []
    for j, name in enumerate(dataset.feature_names):
        profile: CategoricalProfile | None = reference.categorical.get(name)
        if profile is None or dataset.feature_dtypes[j] != "categorical":
            continue
        seen = CategoricalProfile.build(_column(dataset, j).tolist())
        total = max(seen.count, 1)
        new = {k: c for k, c in seen.counts.items() if k not in profile.counts}
        share = sum(new.values()) / total
        if share > expect.max_new_category_share:
            top = ", ".join(repr(k) for k, _ in sorted(new.items(), key=lambda kv: -kv[1])[:3])
            failed.append(
                (
                    name,
                    f"{_pct(share)} of rows in new categories ({top})",
                    f"<= {_pct(expect.max_new_category_share)}",
                )
            )
        gone = sorted(
            k
            for k, f in profile.frequencies().items()
            if f >= expect.min_vanished_category_share and k not in seen.counts
        )
        if gone:
            failed.append(
                (
                    name,
                    f"categories gone: {', '.join(map(repr, gone[:3]))}",
                    f"each category >= {_pct(expect.min_vanished_category_share)} of "
                    "the reference still present",
                )
            )
    run.per_feature(
        "categories",
        failed,
        passed="no new or vanished categories beyond the limits",
        threshold=f"<= {_pct(expect.max_new_category_share)} new",
        field="data.expectations.max_new_category_share",
    )


def _row_count(run: _Run, dataset: Dataset, reference: Any, *_: Any) -> None:
    expect = run.expectations
    previous = reference.dataset_rows
    if previous is None or previous == 0:
        run.skip("row_count", "the reference has no training-set row count")
        return
    ratio = dataset.n_rows / previous
    low, high = 1 - expect.max_row_drop, 1 + expect.max_row_growth
    run.add(
        "row_count",
        ok=low <= ratio <= high,
        observed=f"{dataset.n_rows:,} rows ({ratio - 1:+.0%} vs {previous:,})",
        threshold=f"{-expect.max_row_drop:+.0%} .. {expect.max_row_growth:+.0%}",
        field="data.expectations.max_row_drop"
        if ratio < low
        else "data.expectations.max_row_growth",
    )


def _label_shift(run: _Run, dataset: Dataset, reference: Any, *_: Any) -> None:
    expect = run.expectations
    previous = reference.labels
    if previous is None:
        run.skip("label_shift", "the reference has no label profile")
        return
    current = label_profile(dataset)
    if isinstance(previous, CategoricalProfile) and isinstance(current, CategoricalProfile):
        before, after = previous.frequencies(), current.frequencies()
        shifts = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in set(before) | set(after)}
        worst = max(sorted(shifts), key=lambda k: abs(shifts[k]))
        new = sorted(set(after) - set(before))
        observed = (
            f"class {worst!r} {_pct(before.get(worst, 0.0))} -> {_pct(after.get(worst, 0.0))}"
        )
        if new:
            observed += f"; new classes {', '.join(map(repr, new))}"
        run.add(
            "label_shift",
            ok=abs(shifts[worst]) <= expect.max_label_shift and not new,
            observed=observed,
            threshold=f"<= {_pct(expect.max_label_shift)} per class, no new class",
            field="data.expectations.max_label_shift",
        )
        return
    if isinstance(previous, NumericProfile) and isinstance(current, NumericProfile):
        std = previous.std or 1.0
        shift = (current.mean - previous.mean) / std
        run.add(
            "label_shift",
            ok=abs(shift) <= expect.max_label_mean_shift,
            observed=f"mean {previous.mean:.6g} -> {current.mean:.6g} ({shift:+.2f} std)",
            threshold=f"<= {expect.max_label_mean_shift:g} std",
            field="data.expectations.max_label_mean_shift",
        )
        return
    run.add(
        "label_shift",
        ok=False,
        observed="the task differs from the reference's",
        threshold="the same task",
        field="training.task",
    )


def _duplicates(run: _Run, dataset: Dataset, *_: Any) -> None:
    limit = run.expectations.max_duplicate_share
    n = dataset.n_rows
    if dataset.X.dtype != object:
        table = np.ascontiguousarray(
            np.column_stack([dataset.X, np.asarray(dataset.y, dtype=np.float64)])
        )
        table = np.where(np.isnan(table), np.nan, table) + 0.0  # one NaN, and -0.0 as 0.0
        rows = table.view(np.dtype((np.void, table.dtype.itemsize * table.shape[1])))
        distinct = len(np.unique(rows))
    else:
        distinct = len(
            {
                (*(None if v is None or _nan(v) else v for v in row), label)
                for row, label in zip(dataset.X.tolist(), dataset.y.tolist(), strict=True)
            }
        )
    share = (n - distinct) / n if n else 0.0
    run.add(
        "duplicates",
        ok=share <= limit,
        observed=f"{n - distinct:,} rows ({_pct(share)})",
        threshold=f"<= {_pct(limit)}",
        field="data.expectations.max_duplicate_share",
    )


def _leakage(run: _Run, dataset: Dataset, *_: Any) -> None:
    expect = run.expectations
    classification = dataset.task is Task.CLASSIFICATION
    scores = single_feature_scores(
        dataset.X,
        np.asarray(dataset.y),
        dataset.feature_names,
        tuple(kind in _NUMERIC for kind in dataset.feature_dtypes),
        n_classes=len(dataset.classes) if classification else 0,
        max_rows=expect.leakage_rows,
    )
    metric = "ROC AUC" if classification else "R²"
    if not scores:
        run.skip("leakage", "too few rows per class for cross-validation")
        return
    limit = expect.max_single_feature_score
    failed = [
        (name, f"{metric} {score:.4f} on its own", f"< {limit:g}")
        for name, score in sorted(scores.items(), key=lambda kv: -kv[1])
        if score >= limit
    ]
    best = max(scores, key=lambda k: scores[k])
    run.per_feature(
        "leakage",
        failed,
        passed=f"best single feature {best!r}: {metric} {scores[best]:.4f}",
        threshold=f"< {limit:g}",
        field="data.expectations.max_single_feature_score",
    )
