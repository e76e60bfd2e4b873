"""Offline comparison of serving variants from captured rows: shadow agreement, A/B arms.

Capture writes one row per scored record with its ``request_id``, ``row`` index,
``variant`` (``champion``/``canary``/``a``/``b``/``shadow``), ``version``,
``latency_ms``, ``prediction`` and ``probabilities`` (see
:mod:`flywheel.serving.capture`).  :func:`compare_shadow` measures how often the shadow
agrees with the answers callers got; :func:`compare_ab` compares arms ``a`` and ``b``.

Examples
--------
>>> rows = [
...     {"request_id": "r1", "row": 0, "variant": "champion", "version": 1,
...      "latency_ms": 0.4, "prediction": "yes", "probabilities": {"no": 0.2, "yes": 0.8}},
...     {"request_id": "r1", "row": 0, "variant": "shadow", "version": 2,
...      "latency_ms": 0.1, "prediction": "no", "probabilities": {"no": 0.6, "yes": 0.4}},
... ]
>>> report = compare_shadow(rows)
>>> report.paired_rows, report.agreement_rate, report.max_probability_diff
(1, 0.0, 0.4)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from flywheel.drift.statistics import chi2_sf, chi_square_homogeneity, normal_sf, psi
from flywheel.errors import InvalidInputError
from flywheel.models import Frozen
from flywheel.monitoring.performance import classification_metrics, regression_metrics

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from flywheel.drift.profile import NumericProfile

__all__ = [
    "PREDICTION_ALPHA",
    "AbComparison",
    "ArmDifference",
    "PredictionShift",
    "ShadowComparison",
    "VariantComparison",
    "VariantSummary",
    "compare_ab",
    "compare_shadow",
    "compare_variants",
    "partition_hour",
    "prediction_shift",
    "prediction_shift_from_reference",
    "prediction_shift_of_scores",
    "row_score",
    "summarize_variants",
]

#: A/B arms as captured (``flywheel.serving.models.Variant``).
ARMS = ("a", "b")
SHADOW = "shadow"
#: p-value under which the observed split is declared a sample-ratio mismatch.
SRM_P_VALUE = 0.001


class VariantSummary(Frozen):
    """What one variant (and version) served in the window."""

    variant: str
    version: int
    requests: int
    rows: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    #: Classifiers: share of rows per predicted label.
    label_shares: dict[str, float] = Field(default_factory=dict)
    #: Regressors: mean and standard deviation of the predicted values.
    value_mean: float | None = None
    value_std: float | None = None
    labelled_rows: int = 0
    #: Metrics on the labelled rows (names of :mod:`flywheel.monitoring.performance`).
    metrics: dict[str, float] = Field(default_factory=dict)


class ShadowComparison(Frozen):
    """The served variant against the shadow version, row by row."""

    served_versions: tuple[int, ...]
    shadow_versions: tuple[int, ...]
    paired_rows: int
    unpaired_served_rows: int
    unpaired_shadow_rows: int
    #: Share of paired rows with the same label (regressors: within ``tolerance``).
    agreement_rate: float | None
    tolerance: float | None = None
    max_probability_diff: float | None = None
    mean_probability_diff: float | None = None
    max_value_diff: float | None = None
    mean_value_diff: float | None = None
    served_latency_p50_ms: float | None = None
    served_latency_p99_ms: float | None = None
    shadow_latency_p50_ms: float | None = None
    shadow_latency_p99_ms: float | None = None


class ArmDifference(Frozen):
    """Arm ``b`` minus arm ``a`` on one metric, with a two-sided test."""

    metric: str
    a: float
    b: float
    difference: float
    z: float | None
    p_value: float | None
    significant: bool


class AbComparison(Frozen):
    """The two arms of an A/B test, their split and (with labels) their metrics."""

    arms: dict[str, VariantSummary]
    expected_share_b: float | None
    observed_share_b: float | None
    #: Chi-square p-value of the observed split against ``expected_share_b``.
    split_p_value: float | None
    sample_ratio_mismatch: bool
    difference: ArmDifference | None = None
    verdict: str


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(np.asarray(values, dtype=np.float64), q)), 4)


def _request_latencies(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """One latency per request (every row of a request carries the request's latency)."""
    seen: dict[str, float] = {}
    for row in rows:
        value = row.get("latency_ms")
        if isinstance(value, int | float):
            seen.setdefault(str(row.get("request_id")), float(value))
    return list(seen.values())


def _is_regression(rows: Iterable[Mapping[str, Any]]) -> bool:
    for row in rows:
        prediction = row.get("prediction")
        if prediction is not None:
            return isinstance(prediction, int | float) and not isinstance(prediction, bool)
    return False


def _key(row: Mapping[str, Any]) -> tuple[str, int]:
    return str(row.get("request_id")), int(row.get("row") or 0)


def _summary(
    variant: str,
    version: int,
    rows: Sequence[Mapping[str, Any]],
    labels: Mapping[tuple[str, int], Any] | None,
) -> VariantSummary:
    latencies = _request_latencies(rows)
    predictions = [row.get("prediction") for row in rows]
    regression = _is_regression(rows)
    extra: dict[str, Any] = {}
    if regression:
        values = np.asarray([p for p in predictions if p is not None], dtype=np.float64)
        if values.size:
            extra["value_mean"] = round(float(values.mean()), 6)
            extra["value_std"] = round(float(values.std()), 6)
    else:
        counts: dict[str, int] = {}
        for prediction in predictions:
            counts[str(prediction)] = counts.get(str(prediction), 0) + 1
        extra["label_shares"] = {k: round(v / len(rows), 6) for k, v in sorted(counts.items())}
    labelled = [(row, labels[_key(row)]) for row in rows if labels and _key(row) in labels]
    metrics: dict[str, float] = {}
    if labelled:
        truth = [label for _, label in labelled]
        predicted = np.asarray([row.get("prediction") for row, _ in labelled], dtype=object)
        try:
            metrics = (
                regression_metrics(
                    np.asarray(truth, dtype=np.float64), predicted.astype(np.float64)
                )
                if regression
                else {"accuracy": classification_metrics(truth, predicted)["accuracy"]}
            )
        except (InvalidInputError, TypeError, ValueError):
            metrics = {}
    return VariantSummary(
        variant=variant,
        version=version,
        requests=len({str(row.get("request_id")) for row in rows}),
        rows=len(rows),
        latency_p50_ms=_percentile(latencies, 50),
        latency_p99_ms=_percentile(latencies, 99),
        labelled_rows=len(labelled),
        metrics={k: round(v, 6) for k, v in metrics.items() if math.isfinite(v)},
        **extra,
    )


def summarize_variants(
    rows: Iterable[Mapping[str, Any]],
    labels: Mapping[tuple[str, int], Any] | None = None,
) -> list[VariantSummary]:
    """One :class:`VariantSummary` per (variant, version), in a stable order.

    ``labels`` maps ``(request_id, row)`` to the ground truth received as feedback.

    Examples
    --------
    >>> rows = [{"request_id": "r", "row": 0, "variant": "a", "version": 1,
    ...          "latency_ms": 1.0, "prediction": 2.5}]
    >>> [(s.variant, s.rows, s.value_mean) for s in summarize_variants(rows)]
    [('a', 1, 2.5)]
    """
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row.get("variant")), int(row.get("version") or 0)), []).append(row)
    return [
        _summary(variant, version, group, labels)
        for (variant, version), group in sorted(groups.items())
    ]


def compare_shadow(
    rows: Iterable[Mapping[str, Any]], *, tolerance: float = 1e-6
) -> ShadowComparison:
    """Pair shadow rows with the rows that answered callers and measure agreement.

    Each shadow row is paired with the row the caller got (same ``request_id`` and
    ``row``); the report gives the **agreement rate** (same label; for regressors,
    within ``tolerance``), the largest and mean probability or value differences, and
    both sides' latency.  Rows without a partner are counted, not guessed.  Shadow
    latency is the shadow model's own scoring time (it runs after the answer); the
    served latency is validation + prediction + capture hand-off.

    Parameters
    ----------
    rows
        Captured rows of one model (any variants; non-shadow rows are "served").
    tolerance
        Regressors: two values agree when they differ by at most
        ``tolerance * max(1, |served value|)``.

    Examples
    --------
    >>> rows = [
    ...     {"request_id": "r", "row": 0, "variant": "champion", "version": 1,
    ...      "latency_ms": 2.0, "prediction": 10.0},
    ...     {"request_id": "r", "row": 0, "variant": "shadow", "version": 2,
    ...      "latency_ms": 0.5, "prediction": 10.5},
    ... ]
    >>> c = compare_shadow(rows)
    >>> c.agreement_rate, c.max_value_diff, c.shadow_latency_p50_ms
    (0.0, 0.5, 0.5)
    """
    served: dict[tuple[str, int], Mapping[str, Any]] = {}
    shadow: dict[tuple[str, int], Mapping[str, Any]] = {}
    for row in rows:
        (shadow if row.get("variant") == SHADOW else served)[_key(row)] = row
    pairs = [(served[key], shadow[key]) for key in shadow.keys() & served.keys()]
    regression = _is_regression(row for pair in pairs for row in pair)
    agree = 0
    value_diffs: list[float] = []
    probability_diffs: list[float] = []
    for left, right in pairs:
        a, b = left.get("prediction"), right.get("prediction")
        if regression and isinstance(a, int | float) and isinstance(b, int | float):
            diff = abs(float(a) - float(b))
            value_diffs.append(diff)
            agree += diff <= tolerance * max(1.0, abs(float(a)))
            continue
        agree += a == b
        pa, pb = left.get("probabilities") or {}, right.get("probabilities") or {}
        if pa and pb:
            probability_diffs.append(max(abs(float(pa[c]) - float(pb.get(c, 0.0))) for c in pa))
    served_rows = list(served.values())
    shadow_rows = list(shadow.values())

    def stat(values: list[float], fn: Any) -> float | None:
        return round(float(fn(values)), 6) if values else None

    return ShadowComparison(
        served_versions=tuple(sorted({int(r.get("version") or 0) for r in served_rows})),
        shadow_versions=tuple(sorted({int(r.get("version") or 0) for r in shadow_rows})),
        paired_rows=len(pairs),
        unpaired_served_rows=len(served) - len(pairs),
        unpaired_shadow_rows=len(shadow) - len(pairs),
        agreement_rate=round(agree / len(pairs), 6) if pairs else None,
        tolerance=tolerance if regression else None,
        max_probability_diff=stat(probability_diffs, max),
        mean_probability_diff=stat(probability_diffs, np.mean),
        max_value_diff=stat(value_diffs, max),
        mean_value_diff=stat(value_diffs, np.mean),
        served_latency_p50_ms=_percentile(_request_latencies(served_rows), 50),
        served_latency_p99_ms=_percentile(_request_latencies(served_rows), 99),
        shadow_latency_p50_ms=_percentile(_request_latencies(shadow_rows), 50),
        shadow_latency_p99_ms=_percentile(_request_latencies(shadow_rows), 99),
    )


def _split_test(requests_a: int, requests_b: int, share_b: float) -> float | None:
    total = requests_a + requests_b
    if total == 0 or not 0 < share_b < 1:
        return None
    expected_b = total * share_b
    expected_a = total - expected_b
    statistic = (requests_a - expected_a) ** 2 / expected_a + (
        requests_b - expected_b
    ) ** 2 / expected_b
    return chi2_sf(statistic, 1)


def _two_proportion(
    a_hits: int, a_n: int, b_hits: int, b_n: int
) -> tuple[float | None, float | None]:
    pooled = (a_hits + b_hits) / (a_n + b_n)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / a_n + 1 / b_n))
    if spread == 0:
        return None, None
    z = (b_hits / b_n - a_hits / a_n) / spread
    return z, 2 * normal_sf(abs(z))


def _mean_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, float | None]:
    if len(a) < 2 or len(b) < 2:
        return None, None
    spread = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    if spread == 0:
        return None, None
    z = (float(np.mean(b)) - float(np.mean(a))) / spread
    return z, 2 * normal_sf(abs(z))


def compare_ab(
    rows: Iterable[Mapping[str, Any]],
    labels: Mapping[tuple[str, int], Any] | None = None,
    *,
    expected_share_b: float | None = None,
    alpha: float = 0.05,
) -> AbComparison:
    """Compare arms ``a`` and ``b``: split, latency, prediction mix, and metrics with labels.

    Each arm is summarized (requests, rows, latency, prediction mix) and the traffic
    split is checked against ``expected_share_b``: a sample-ratio mismatch means
    assignment is broken and the comparison cannot be trusted.  With labels, the arms'
    metrics are compared: accuracy with a two-proportion z-test for classifiers, mean
    absolute error with a z-test on the errors for regressors.

    Parameters
    ----------
    rows
        Captured rows (only variants ``a`` and ``b`` are used).
    labels
        Ground truth by ``(request_id, row)``; without it no metric is compared.
    expected_share_b
        The configured weight of arm ``b`` (``FLYWHEEL_AB_WEIGHT``), for the
        sample-ratio check.
    alpha
        Significance level of the metric test.

    Raises
    ------
    InvalidInputError
        No row of either arm.

    Examples
    --------
    >>> rows = [{"request_id": f"r{i}", "row": 0, "variant": "ab"[i % 2], "version": 1 + i % 2,
    ...          "latency_ms": 1.0, "prediction": "yes"} for i in range(40)]
    >>> labels = {(f"r{i}", 0): "yes" if i % 2 or i % 4 == 0 else "no" for i in range(40)}
    >>> c = compare_ab(rows, labels, expected_share_b=0.5)
    >>> c.difference.metric, c.difference.a, c.difference.b, c.sample_ratio_mismatch
    ('accuracy', 0.5, 1.0, False)
    """
    arm_rows: dict[str, list[Mapping[str, Any]]] = {arm: [] for arm in ARMS}
    for row in rows:
        if row.get("variant") in arm_rows:
            arm_rows[str(row["variant"])].append(row)
    if not any(arm_rows.values()):
        raise InvalidInputError("no captured rows of A/B arms 'a' or 'b'", field="variant")
    versions = {
        arm: int(group[0].get("version") or 0) if group else 0 for arm, group in arm_rows.items()
    }
    arms = {arm: _summary(arm, versions[arm], group, labels) for arm, group in arm_rows.items()}
    total = arms["a"].requests + arms["b"].requests
    observed = round(arms["b"].requests / total, 6) if total else None
    split_p = (
        _split_test(arms["a"].requests, arms["b"].requests, expected_share_b)
        if expected_share_b is not None
        else None
    )
    mismatch = split_p is not None and split_p < SRM_P_VALUE
    difference = _difference(arm_rows, labels, alpha) if labels else None
    if mismatch:
        verdict = "sample ratio mismatch: assignment is broken, do not trust the comparison"
    elif difference is None:
        verdict = "no labelled rows in both arms: compare after feedback arrives"
    elif not difference.significant:
        verdict = f"no significant difference in {difference.metric} (alpha {alpha})"
    else:
        better = _better(difference)
        verdict = f"arm {better} is better on {difference.metric} (p={difference.p_value:.3g})"
    return AbComparison(
        arms=arms,
        expected_share_b=expected_share_b,
        observed_share_b=observed,
        split_p_value=None if split_p is None else round(split_p, 6),
        sample_ratio_mismatch=mismatch,
        difference=difference,
        verdict=verdict,
    )


def _better(difference: ArmDifference) -> str:
    lower_is_better = difference.metric == "mae"
    b_wins = difference.difference < 0 if lower_is_better else difference.difference > 0
    return "b" if b_wins else "a"


def _difference(
    arm_rows: Mapping[str, Sequence[Mapping[str, Any]]],
    labels: Mapping[tuple[str, int], Any],
    alpha: float,
) -> ArmDifference | None:
    labelled = {
        arm: [(row.get("prediction"), labels[_key(row)]) for row in group if _key(row) in labels]
        for arm, group in arm_rows.items()
    }
    if not labelled["a"] or not labelled["b"]:
        return None
    regression = _is_regression(row for group in arm_rows.values() for row in group)
    if regression:
        errors = {
            arm: [abs(float(p or 0.0) - float(t)) for p, t in pairs]
            for arm, pairs in labelled.items()
        }
        z, p = _mean_difference(errors["a"], errors["b"])
        a, b, metric = float(np.mean(errors["a"])), float(np.mean(errors["b"])), "mae"
    else:
        hits = {arm: sum(p == t for p, t in pairs) for arm, pairs in labelled.items()}
        n = {arm: len(pairs) for arm, pairs in labelled.items()}
        z, p = _two_proportion(hits["a"], n["a"], hits["b"], n["b"])
        a, b, metric = hits["a"] / n["a"], hits["b"] / n["b"], "accuracy"
    return ArmDifference(
        metric=metric,
        a=round(a, 6),
        b=round(b, 6),
        difference=round(b - a, 6),
        z=None if z is None else round(z, 4),
        p_value=None if p is None else round(p, 6),
        significant=p is not None and p < alpha,
    )


class VariantComparison(Frozen):
    """Everything :func:`compare_variants` found in a window of captured rows."""

    model: str
    rows: int
    variants: list[VariantSummary]
    shadow: ShadowComparison | None = None
    ab: AbComparison | None = None


def compare_variants(
    model: str,
    rows: Sequence[Mapping[str, Any]],
    labels: Mapping[tuple[str, int], Any] | None = None,
    *,
    expected_share_b: float | None = None,
) -> VariantComparison:
    """Summaries of every variant, plus the shadow and A/B comparisons that apply.

    Examples
    --------
    >>> rows = [{"request_id": "r", "row": 0, "variant": "champion", "version": 1,
    ...          "latency_ms": 1.0, "prediction": "yes"}]
    >>> c = compare_variants("churn", rows)
    >>> (c.rows, c.shadow, c.ab)
    (1, None, None)
    """
    variants = {str(row.get("variant")) for row in rows}
    return VariantComparison(
        model=model,
        rows=len(rows),
        variants=summarize_variants(rows, labels),
        shadow=compare_shadow(rows) if SHADOW in variants else None,
        ab=compare_ab(rows, labels, expected_share_b=expected_share_b)
        if variants & set(ARMS)
        else None,
    )


_PARTITION = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/")


def partition_hour(key: str) -> datetime | None:
    """The UTC hour a capture object's key is partitioned under (``None``: not a capture key).

    Examples
    --------
    >>> partition_hour("capture/model=m/version=1/date=2025-03-10/hour=07/x.jsonl.gz")
    datetime.datetime(2025, 3, 10, 7, 0, tzinfo=datetime.timezone.utc)
    """
    found = _PARTITION.search(key)
    if found is None:
        return None
    return datetime.fromisoformat(f"{found.group(1)}T{found.group(2)}:00:00+00:00")


#: A prediction shift counts only when its χ² p-value is below this: PSI over deciles
#: on a few dozen rows exceeds the usual 0.2 limit in most samples that did not move.
PREDICTION_ALPHA = 0.01


class PredictionShift(Frozen):
    """How far one variant's predictions moved from another's on the same traffic."""

    psi: float | None
    reference_rows: int
    current_rows: int
    basis: str  # scores | labels | reference | insufficient
    p_value: float | None = None
    """χ² test that both sides' bin counts come from one distribution: a PSI above a
    limit on a few dozen rows is often sampling noise, which this tells apart."""


def row_score(row: Mapping[str, Any]) -> float | None:
    """The number a row's prediction is judged by (as the ``PredictionScore`` metric).

    Regressors: the value; binary classifiers: the probability of the second class;
    multi-class: the top probability; without probabilities: ``None``.

    Examples
    --------
    >>> row_score({"prediction": "yes", "probabilities": {"no": 0.3, "yes": 0.7}})
    0.7
    >>> row_score({"prediction": 2.5}) is None, row_score({"prediction": "x"}) is None
    (False, True)
    """
    prediction = row.get("prediction")
    if isinstance(prediction, int | float) and not isinstance(prediction, bool):
        return float(prediction)
    probabilities = row.get("probabilities")
    if isinstance(probabilities, Mapping) and probabilities:
        values = [float(v) for v in probabilities.values()]
        return values[1] if len(values) == 2 else max(values)
    return None


def prediction_shift(
    reference: Sequence[Mapping[str, Any]],
    current: Sequence[Mapping[str, Any]],
    *,
    bins: int = 10,
    min_rows: int = 50,
) -> PredictionShift:
    """PSI of ``current``'s predictions against ``reference``'s (e.g. canary vs champion).

    Scores are binned on the reference's deciles (fewer bins when scores repeat);
    classifiers without probabilities compare label shares.  Under ``min_rows`` on
    either side there is no verdict (``psi`` is ``None``).

    Examples
    --------
    >>> same = [{"prediction": float(i % 10)} for i in range(100)]
    >>> prediction_shift(same, same).psi
    0.0
    >>> moved = [{"prediction": float(i % 10) + 5} for i in range(100)]
    >>> prediction_shift(same, moved).psi > 1
    True
    """
    if len(reference) < min_rows or len(current) < min_rows:
        return PredictionShift(
            psi=None, reference_rows=len(reference), current_rows=len(current), basis="insufficient"
        )
    ref_scores = [s for s in map(row_score, reference) if s is not None]
    cur_scores = [s for s in map(row_score, current) if s is not None]
    if len(ref_scores) >= min_rows and len(cur_scores) >= min_rows:
        ref = np.asarray(ref_scores, dtype=np.float64)
        cur = np.asarray(cur_scores, dtype=np.float64)
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
        ref_counts = np.bincount(
            np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1
        )
        cur_counts = np.bincount(
            np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1
        )
        basis = "scores"
    else:
        labels = sorted({str(r.get("prediction")) for r in (*reference, *current)})
        index = {label: i for i, label in enumerate(labels)}
        ref_counts = np.bincount(
            [index[str(r.get("prediction"))] for r in reference], minlength=len(labels)
        )
        cur_counts = np.bincount(
            [index[str(r.get("prediction"))] for r in current], minlength=len(labels)
        )
        basis = "labels"
    value = psi(ref_counts, cur_counts)
    return PredictionShift(
        psi=round(max(value, 0.0), 6),
        reference_rows=len(reference),
        current_rows=len(current),
        basis=basis,
        p_value=chi_square_homogeneity(ref_counts, cur_counts).p_value,
    )


def prediction_shift_from_reference(
    reference: NumericProfile, current: Sequence[Mapping[str, Any]], *, min_rows: int = 50
) -> PredictionShift:
    """PSI of ``current``'s scores against a reference profile's prediction deciles.

    ``reference`` is :attr:`ReferenceProfile.predictions
    <flywheel.drift.profile.ReferenceProfile.predictions>`: the version's scores on
    its holdout rows, profiled at training.  Rows without a score (classifiers
    without probabilities) are left out; under ``min_rows`` scored rows there is no
    verdict (``psi`` is ``None``).

    Examples
    --------
    >>> from flywheel.drift.profile import NumericProfile
    >>> holdout = NumericProfile.build(np.linspace(0, 1, 200), bins=10, cells=0)
    >>> alike = [{"prediction": float(i % 100) / 100} for i in range(100)]
    >>> prediction_shift_from_reference(holdout, alike).psi < 0.05
    True
    >>> high = [{"prediction": 0.95} for _ in range(100)]
    >>> prediction_shift_from_reference(holdout, high).psi > 1
    True
    """
    return prediction_shift_of_scores(
        reference, [s for s in map(row_score, current) if s is not None], min_rows=min_rows
    )


def prediction_shift_of_scores(
    reference: NumericProfile, scores: Sequence[float], *, min_rows: int = 50
) -> PredictionShift:
    """:func:`prediction_shift_from_reference` for scores already taken from their rows."""
    if len(scores) < min_rows or reference.count < min_rows:
        return PredictionShift(
            psi=None,
            reference_rows=reference.count,
            current_rows=len(scores),
            basis="insufficient",
        )
    counts = reference.histogram(np.asarray(scores, dtype=np.float64))
    holdout = np.asarray(reference.counts)
    value = psi(holdout, counts)
    return PredictionShift(
        psi=round(max(value, 0.0), 6),
        reference_rows=reference.count,
        current_rows=len(scores),
        basis="reference",
        p_value=chi_square_homogeneity(holdout, counts).p_value,
    )
