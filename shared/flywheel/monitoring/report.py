"""A self-contained HTML drift report: verdicts, thresholds and one chart per feature.

The page needs nothing from the network (inline CSS and SVG, a Content Security
Policy of ``default-src 'none'``, no scripts), so it opens from S3, an email
attachment or ``flywheel drift report`` the same way.  Numeric features show
the reference and current distributions as densities over a shared range (from
the profiles' fine grids); categorical features show the shares of the most
frequent categories side by side.  The :class:`~flywheel.drift.scorer.DriftResult`
JSON is embedded in a ``<script type="application/json">`` block for tools.

Examples
--------
>>> from flywheel.drift.profile import build_profile
>>> from flywheel.drift.scorer import observe_window, score_window
>>> rng = np.random.default_rng(0)
>>> ref = build_profile(rng.normal(size=(2000, 1)), ["x"])
>>> window = observe_window(ref, rng.normal(0.5, size=(500, 1)))
>>> page = render_html(score_window(ref, window), ref, window)
>>> page.startswith("<!doctype html>"), page.count("<svg")
(True, 1)
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import numpy as np

from flywheel.drift.statistics import Verdict

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from numpy.typing import NDArray

    from flywheel.drift.attribution import AttributionDrift
    from flywheel.drift.bias import BiasResult
    from flywheel.drift.profile import CategoricalProfile, NumericProfile, ReferenceProfile
    from flywheel.drift.scorer import DriftResult, FeatureDrift, PredictionDrift
    from flywheel.monitoring.performance import PerformanceResult

__all__ = ["render_html", "render_performance_html"]

DISPLAY_BINS = 40
TOP_CATEGORIES = 12
_W, _H = 560, 190
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 14, 34
_REF_COLOUR = "#9aa5b1"
_CUR_COLOUR = "#1f6feb"
_DRIFT_COLOUR = "#d1242f"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
color:#1f2328;background:#fff}
header,main,footer{max-width:1100px;margin:0 auto;padding:16px 24px}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:4px 0 6px}
.verdict{display:inline-block;padding:6px 12px;border-radius:6px;font-weight:600}
.drift{background:#ffebe9;color:#a40e26}.no_drift{background:#dafbe1;color:#116329}
.insufficient_data,.disabled{background:#eaeef2;color:#57606a}
table{border-collapse:collapse;width:100%;margin:8px 0 20px;font-size:13px}
th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.features{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px}
article{border:1px solid #d0d7de;border-radius:8px;padding:12px}
article.drifted{border-color:#ff8182}
.meta{color:#57606a;font-size:12px;margin:2px 0 6px}
svg{display:block;max-width:100%;height:auto}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;border-radius:2px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:8px 0 20px}
dt{color:#57606a}dd{margin:0}
.bar{display:block;height:6px;margin:1px 0;border-radius:2px;min-width:1px}
"""


def render_html(
    result: DriftResult,
    reference: ReferenceProfile,
    window: ReferenceProfile,
    *,
    title: str | None = None,
    bias: BiasResult | None = None,
    performance: PerformanceResult | None = None,
) -> str:
    """The drift report as one HTML document (UTF-8 text).

    Parameters
    ----------
    result
        The scored window.
    reference, window
        The profiles that were compared (for the charts).
    title
        Page heading; defaults to the result's ``model`` label.
    bias, performance
        Optional sections for the same window.

    Examples
    --------
    >>> from flywheel.drift.profile import build_profile
    >>> from flywheel.drift.scorer import observe_window, score_window
    >>> ref = build_profile(np.arange(500.0).reshape(-1, 1), ["x"])
    >>> window = observe_window(ref, {"x": np.arange(100.0)})
    >>> 'data-feature=' in render_html(score_window(ref, window), ref, window)
    True
    """
    name = title or " ".join(v for k, v in result.labels.items() if k in ("model", "version"))
    heading = f"Drift report{(' — ' + name) if name else ''}"
    parts = [
        *_document_start(heading),
        _summary_line(result),
        _attribution_line(result.attribution_drift),
        _labels(result.labels),
        "</header><main>",
        '<section id="summary"><h2>Features</h2>',
        _feature_table(result),
        "</section>",
        '<section id="thresholds"><h2>Policy</h2>',
        _policy_table(result),
        "</section>",
    ]
    if result.prediction_drift is not None:
        parts.append(_prediction_section(result.prediction_drift))
    if result.attribution_drift is not None:
        parts.append(_attribution_section(result.attribution_drift))
    if performance is not None:
        parts.append(_performance_section(performance))
    if bias is not None:
        parts.append(_bias_section(bias))
    parts.append('<section id="charts"><h2>Distributions</h2><div class="features">')
    for feature in result.features:
        parts.append(_feature_card(feature, reference, window))
    parts.append("</div></section></main>")
    parts.append(
        '<footer class="meta">Generated by Flywheel. Reference: '
        f"{result.reference_rows:,} rows; window: {result.current_rows:,} rows.</footer>"
    )
    parts.append(_embedded_json("drift-result", result.to_json()))
    parts.append("</body></html>")
    return "\n".join(parts)


def render_performance_html(
    performance: PerformanceResult,
    *,
    bias: BiasResult | None = None,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """The performance (and bias) report of one monitoring window as one HTML document.

    Same page rules as :func:`render_html`: no script, no external resource; the
    performance result (and the bias result) is embedded as JSON for tools.

    Examples
    --------
    >>> from flywheel.monitoring.performance import (
    ...     PerformancePolicy, evaluate_performance, measure_window)
    >>> from flywheel.registry.models import Task
    >>> window = measure_window(Task.CLASSIFICATION, ["a", "b", None], ["a", "a", "b"])
    >>> result = evaluate_performance(window, {"accuracy": 0.9},
    ...                               PerformancePolicy(metric="accuracy", min_value=0.8,
    ...                                                 min_labels=1))
    >>> page = render_performance_html(result, title="churn v3")
    >>> 'id="performance"' in page, "degraded" in page
    (True, True)
    """
    heading = f"Performance report{(' — ' + title) if title else ''}"
    parts = [*_document_start(heading), _labels(labels or {}), "</header><main>"]
    parts.append(_performance_section(performance))
    if bias is not None:
        parts.append(_bias_section(bias))
    parts.append("</main>")
    w = performance.window
    parts.append(
        '<footer class="meta">Generated by Flywheel. Window: '
        f"{w.predictions:,} predictions, {w.labelled:,} labelled.</footer>"
    )
    parts.append(_embedded_json("performance-result", performance.model_dump_json()))
    if bias is not None:
        parts.append(_embedded_json("bias-result", bias.model_dump_json()))
    parts.append("</body></html>")
    return "\n".join(parts)


def _document_start(heading: str) -> list[str]:
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(heading)}</title><style>{_CSS}</style></head><body>",
        "<header>",
        f"<h1>{_e(heading)}</h1>",
    ]


def _embedded_json(element_id: str, text: str) -> str:
    # \u003c etc. keep the JSON inert inside <script> whatever the names in it hold.
    payload = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{element_id}">{payload}</script>'


# --- header and tables -------------------------------------------------------------------


def _summary_line(result: DriftResult) -> str:
    if result.verdict is Verdict.INSUFFICIENT_DATA:
        text = "Not enough data to score any feature."
    else:
        text = (
            f"{'Dataset drift detected' if result.drift_detected else 'No dataset drift'}: "
            f"{result.drifted_features} of {result.scored_features} features drifted "
            f"({result.share_drifted:.0%}; threshold {result.policy.drift_share:.0%})."
        )
    return f'<p class="verdict {result.verdict.value}" id="dataset-verdict">{_e(text)}</p>'


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in sorted(labels.items()))
    return f"<dl>{rows}</dl>"


def _feature_table(result: DriftResult) -> str:
    head = (
        "<tr><th>Feature</th><th>Kind</th><th>Verdict</th><th>Method</th><th>Score</th>"
        "<th>Threshold</th><th>PSI</th><th>KS p</th><th>Wasserstein</th><th>JS</th>"
        "<th>Rows (ref / cur)</th><th>Missing (ref / cur)</th></tr>"
    )
    rows = []
    for f in result.features:
        s = f.statistics
        rows.append(
            "<tr>"
            f'<td><a href="#feature-{_anchor(f.feature)}">{_e(f.feature)}</a></td>'
            f"<td>{f.kind}</td>"
            f'<td><span class="verdict {f.verdict.value}">{_verdict_text(f.verdict)}</span></td>'
            f"<td>{_e(f.method.value if f.method else '—')}</td>"
            f'<td class="num">{_num(f.score)}</td><td class="num">{_num(f.threshold)}</td>'
            f'<td class="num">{_num(s.psi)}</td><td class="num">{_num(s.ks_p_value)}</td>'
            f'<td class="num">{_num(s.wasserstein)}</td>'
            f'<td class="num">{_num(s.jensen_shannon)}</td>'
            f'<td class="num">{f.reference_rows:,} / {f.current_rows:,}</td>'
            f'<td class="num">{f.reference_missing_rate:.1%} / {f.current_missing_rate:.1%}'
            + (' <span class="verdict drift">gaps moved</span>' if f.missing_rate_drifted else "")
            + "</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _policy_table(result: DriftResult) -> str:
    p = result.policy
    items = [
        ("KS p-value (numeric, small samples)", f"drift if p < {p.ks_p_value:g}"),
        (
            "χ² / z p-value (categorical or ≤ 5 levels, small)",
            f"drift if p < {p.chi_square_p_value:g}",
        ),
        ("Wasserstein / reference std (numeric, large)", f"drift if ≥ {p.wasserstein:g}"),
        ("Jensen-Shannon distance (categorical, large)", f"drift if ≥ {p.jensen_shannon:g}"),
        ("PSI (when chosen)", f"drift if ≥ {p.psi:g}"),
        (
            "Large sample",
            f"> {p.large_sample_rows:,} rows in the {p.sample_size_basis.value} sample",
        ),
        ("Dataset drift", f"≥ {p.drift_share:.0%} of scored features drifted"),
        ("Minimum rows per feature", f"{p.min_rows:,}"),
    ]
    for feature, override in sorted(p.features.items()):
        bits = []
        if override.method is not None:
            bits.append(f"method {override.method.value}")
        if override.threshold is not None:
            bits.append(f"threshold {override.threshold:g}")
        if not override.enabled:
            bits.append("disabled")
        items.append((f"Override: {feature}", ", ".join(bits) or "—"))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>"


def _prediction_section(drift: PredictionDrift) -> str:
    verdict = "moved" if drift.drifted else "stable"
    return (
        '<section id="predictions"><h2>Predictions</h2>'
        f'<p class="verdict {"drift" if drift.drifted else "no_drift"}">'
        f"{verdict}: the window's scores against the holdout's, PSI {_num(drift.psi)} "
        f"(limit {_num(drift.threshold)}), χ² p {drift.p_value:.2g} "
        f"(moved needs p &lt; {drift.alpha:g})</p>"
        f'<p class="meta">{drift.window_rows:,} scored rows in the window, '
        f"{drift.holdout_rows:,} in the holdout</p></section>"
    )


def _attribution_line(drift: AttributionDrift | None) -> str:
    if drift is None or drift.ndcg is None:
        return ""
    text = (
        f"{'Attribution drift' if drift.drifted else 'No attribution drift'}: importance "
        f"ranking NDCG {drift.ndcg:.3f} (drift if < {drift.threshold:g})."
    )
    verdict = "drift" if drift.drifted else "no_drift"
    return f'<p class="verdict {verdict}" id="attribution-verdict">{_e(text)}</p>'


def _attribution_section(drift: AttributionDrift) -> str:
    """The live importance ranking against training's, feature by feature (ADR 73)."""
    head = '<section id="attributions"><h2>Attributions</h2>'
    if drift.ndcg is None:
        return (
            f'{head}<p class="verdict insufficient_data">not measured: '
            f"{_e(drift.reason or 'no reason given')}</p></section>"
        )
    verdict = "changed" if drift.drifted else "stable"
    how = f"{drift.method}, mean |SHAP| in {drift.space}"
    if drift.approximate and drift.error_bound is not None:
        how += f", sampled: each value within ±{_num(drift.error_bound)}"
    top = max([max(f.baseline, f.live) for f in drift.features] + [1e-300])
    rows = "".join(
        f"<tr><td>{_e(f.feature)}</td>"
        f'<td class="num">{f.baseline_rank} → {f.live_rank}</td>'
        f'<td class="num">{_num(f.baseline)}</td><td class="num">{_num(f.live)}</td>'
        f'<td class="num">{"+" if f.change > 0 else ""}{_num(f.change)}</td>'
        f'<td style="width:30%"><span class="bar" style="width:{100 * f.baseline / top:.1f}%;'
        f'background:{_REF_COLOUR}"></span><span class="bar" style="width:'
        f"{100 * f.live / top:.1f}%;background:"
        f'{_DRIFT_COLOUR if drift.drifted else _CUR_COLOUR}"></span></td></tr>'
        for f in drift.features
    )
    return (
        f"{head}"
        f'<p class="verdict {"drift" if drift.drifted else "no_drift"}">'
        f"{verdict}: the window's importance ranking against training's, NDCG "
        f"{drift.ndcg:.3f} (drift if &lt; {drift.threshold:g})</p>"
        f'<p class="meta">{drift.sample_rows:,} of {drift.window_rows:,} captured rows '
        f"explained (seed {drift.seed}; {_e(how)}); gains are the training importance, "
        "ranked by the window's</p>"
        "<table><tr><th>Feature</th><th>Rank (training → window)</th>"
        "<th>Mean |SHAP|, training</th><th>Mean |SHAP|, window</th><th>Change</th>"
        f"<th>training / window</th></tr>{rows}</table></section>"
    )


def _performance_section(result: PerformanceResult) -> str:
    w = result.window
    rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="num">{_num(value)}</td></tr>'
        for name, value in sorted(w.metrics.items())
    )
    reasons = "".join(f"<li>{_e(r)}</li>" for r in result.reasons)
    return (
        '<section id="performance"><h2>Performance</h2>'
        f'<p class="verdict {"drift" if result.degraded else "no_drift"}">'
        f"{_e(result.verdict.value.replace('_', ' '))}: {_e(result.metric)} "
        f"{_num(result.value)} vs baseline {_num(result.baseline)}</p>"
        f'<p class="meta">{w.labelled:,} labelled of {w.predictions:,} predictions '
        f"({w.label_coverage:.1%} coverage)</p>"
        f"{f'<ul>{reasons}</ul>' if reasons else ''}"
        f"<table><tr><th>Metric</th><th>Window</th></tr>{rows}</table></section>"
    )


def _bias_section(result: BiasResult) -> str:
    head = (
        "<tr><th>Group</th><th>Rows</th><th>Selection rate</th><th>Labelled</th>"
        "<th>TPR</th><th>FPR</th><th>In gaps</th></tr>"
    )
    rows = "".join(
        f'<tr><td>{_e(g.group)}</td><td class="num">{g.rows:,}</td>'
        f'<td class="num">{g.selection_rate:.3f}</td><td class="num">{g.labelled:,}</td>'
        f'<td class="num">{_num(g.true_positive_rate)}</td>'
        f'<td class="num">{_num(g.false_positive_rate)}</td>'
        f"<td>{'yes' if g.included else 'too small'}</td></tr>"
        for g in result.groups
    )
    level = f"{result.policy.confidence:.0%}"

    def gap(label: str, field: str) -> str:
        interval = result.intervals.get(field)
        around = f" ({level} interval {interval[0]:.3f} to {interval[1]:.3f})" if interval else ""
        return f"{label} {_num(getattr(result, field))}{around}"

    gaps = ", ".join(
        (
            gap("demographic parity difference", "demographic_parity_difference"),
            gap("disparate impact ratio", "disparate_impact_ratio"),
            gap("equal opportunity difference", "equal_opportunity_difference"),
        )
    )
    violations = "".join(f"<li>{_e(v)}</li>" for v in result.violations)
    return (
        f'<section id="bias"><h2>Bias: {_e(result.attribute)} '
        f"(favorable: {_e(result.favorable)})</h2>"
        f'<p class="verdict {"no_drift" if result.passed else "drift"}">'
        f"{'passes' if result.passed else 'fails'} the bias policy: {_e(gaps)}</p>"
        f"{f'<ul>{violations}</ul>' if violations else ''}"
        f"<table>{head}{rows}</table></section>"
    )


# --- charts ------------------------------------------------------------------------------


def _feature_card(
    feature: FeatureDrift, reference: ReferenceProfile, window: ReferenceProfile
) -> str:
    name = feature.feature
    if feature.kind == "numeric":
        chart = _numeric_chart(name, reference.numeric[name], window.numeric[name], feature)
    else:
        chart = _categorical_chart(
            name, reference.categorical[name], window.categorical[name], feature
        )
    if feature.method is not None:
        rule = "<" if feature.method.uses_p_value else "≥"
        detail = (
            f"{feature.method.value}: {_num(feature.score)} (drift if {rule} "
            f"{_num(feature.threshold)}); {feature.reference_rows:,} reference rows, "
            f"{feature.current_rows:,} current rows"
        )
    else:
        detail = f"{feature.reference_rows:,} reference rows, {feature.current_rows:,} current rows"
    if feature.new_categories:
        detail += "; new categories: " + ", ".join(feature.new_categories)
    drifted = " drifted" if feature.drifted else ""
    return (
        f'<article id="feature-{_anchor(name)}" class="feature{drifted}">'
        f"<h2>{_e(name)} "
        f'<span class="verdict {feature.verdict.value}">{_verdict_text(feature.verdict)}</span>'
        f'</h2><p class="meta">{_e(detail)}</p>{chart}'
        f'<p class="legend meta"><span style="background:{_REF_COLOUR}"></span>reference'
        f'<span style="background:{_colour(feature)}"></span>current</p></article>'
    )


def _cdf_points(profile: NumericProfile) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(x, F(x)) at the profile's finest boundaries, closed at its min and max."""
    fine = profile.fine_histogram()
    if fine is not None and profile.grid is not None:
        inner = profile.grid.grid().boundaries()
        counts = fine.astype(np.float64)
    else:
        inner = np.asarray(profile.edges, dtype=np.float64)
        counts = np.asarray(profile.counts, dtype=np.float64)
    lo = profile.minimum if profile.minimum is not None else inner[0] if inner.size else 0.0
    hi = profile.maximum if profile.maximum is not None else inner[-1] if inner.size else 1.0
    x = np.concatenate(([min(lo, inner[0]) if inner.size else lo], inner, [hi]))
    x = np.maximum.accumulate(x)
    cdf = np.concatenate(([0.0], np.cumsum(counts))) / max(counts.sum(), 1.0)
    return x, cdf


def _numeric_chart(
    name: str, ref: NumericProfile, cur: NumericProfile, feature: FeatureDrift
) -> str:
    if ref.count == 0 or cur.count == 0:
        return _empty_chart("no values to chart")
    rx, rc = _cdf_points(ref)
    cx, cc = _cdf_points(cur)
    lo = min(_quantile(rx, rc, 0.005), _quantile(cx, cc, 0.005))
    hi = max(_quantile(rx, rc, 0.995), _quantile(cx, cc, 0.995))
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        lo, hi = (lo - 0.5, lo + 0.5) if math.isfinite(lo) else (0.0, 1.0)
    bounds = np.linspace(lo, hi, DISPLAY_BINS + 1)
    ref_share = np.diff(np.interp(bounds, rx, rc))
    cur_share = np.diff(np.interp(bounds, cx, cc))
    top = max(float(ref_share.max()), float(cur_share.max()), 1e-12)
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    bar = plot_w / DISPLAY_BINS
    shapes = []
    for i, share in enumerate(ref_share):
        height = plot_h * share / top
        shapes.append(
            f'<rect x="{_LEFT + i * bar:.1f}" y="{_TOP + plot_h - height:.1f}" '
            f'width="{max(bar - 1, 0.5):.1f}" height="{height:.1f}" fill="{_REF_COLOUR}"/>'
        )
    points = []
    for i, share in enumerate(cur_share):
        y = _TOP + plot_h - plot_h * share / top
        points.append(f"{_LEFT + i * bar:.1f},{y:.1f} {_LEFT + (i + 1) * bar:.1f},{y:.1f}")
    shapes.append(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{_colour(feature)}" '
        'stroke-width="2"/>'
    )
    outside_ref = float(np.interp(lo, rx, rc) + 1 - np.interp(hi, rx, rc))
    outside_cur = float(np.interp(lo, cx, cc) + 1 - np.interp(hi, cx, cc))
    note = f"outside the chart: reference {outside_ref:.1%}, current {outside_cur:.1%}"
    ticks = [lo + (hi - lo) * t for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return _svg(
        name,
        f"Densities of {name}: reference bars, current line",
        shapes,
        [f"{t:.4g}" for t in ticks],
        f"{top:.1%}",
        note,
        ticks=True,
    )


def _quantile(x: NDArray[np.float64], cdf: NDArray[np.float64], q: float) -> float:
    keep = np.concatenate(([True], np.diff(cdf) > 0))  # strictly increasing for interp
    return float(np.interp(q, cdf[keep], x[keep]))


def _categorical_chart(
    name: str, ref: CategoricalProfile, cur: CategoricalProfile, feature: FeatureDrift
) -> str:
    rf, cf = ref.frequencies(), cur.frequencies()
    keys = sorted(set(rf) | set(cf), key=lambda k: (-max(rf.get(k, 0.0), cf.get(k, 0.0)), k))
    if not keys:
        return _empty_chart("no values to chart")
    shown = keys[:TOP_CATEGORIES]
    bars: list[tuple[str, float, float]] = [(k, rf.get(k, 0.0), cf.get(k, 0.0)) for k in shown]
    if len(keys) > TOP_CATEGORIES:
        rest = keys[TOP_CATEGORIES:]
        bars.append(
            (
                f"other ({len(rest)})",
                sum(rf.get(k, 0.0) for k in rest),
                sum(cf.get(k, 0.0) for k in rest),
            )
        )
    top = max(max(r, c) for _, r, c in bars) or 1.0
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    slot = plot_w / len(bars)
    width = max(min(slot * 0.4, 28.0), 1.0)
    shapes = []
    labels = []
    for i, (key, r, c) in enumerate(bars):
        x0 = _LEFT + i * slot + slot / 2 - width
        for offset, share, colour in ((0.0, r, _REF_COLOUR), (width, c, _colour(feature))):
            height = plot_h * share / top
            shapes.append(
                f'<rect x="{x0 + offset:.1f}" y="{_TOP + plot_h - height:.1f}" '
                f'width="{width:.1f}" height="{height:.1f}" fill="{colour}">'
                f"<title>{_e(key)}: {share:.1%}</title></rect>"
            )
        labels.append(key if len(key) <= 12 else key[:11] + "…")
    return _svg(
        name,
        f"Category shares of {name}: reference and current",
        shapes,
        labels,
        f"{top:.1%}",
        "",
        ticks=False,
    )


def _svg(
    name: str,
    description: str,
    shapes: Iterable[str],
    x_labels: list[str],
    y_top: str,
    note: str,
    *,
    ticks: bool,
) -> str:
    """An SVG chart; ``ticks`` spreads ``x_labels`` over the axis, else one per slot."""
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    axis_y = _TOP + plot_h
    texts = []
    last = len(x_labels) - 1
    for i, label in enumerate(x_labels):
        anchor = "middle"
        if ticks:
            x = _LEFT + plot_w * i / max(last, 1)
            anchor = "start" if i == 0 else "end" if i == last else "middle"
        else:
            x = _LEFT + plot_w * (i + 0.5) / len(x_labels)
        texts.append(
            f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="{anchor}" font-size="10">'
            f"{_e(label)}</text>"
        )
    if note:
        texts.append(
            f'<text x="{_LEFT}" y="{_H - 4}" font-size="10" fill="#57606a">{_e(note)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-feature="{_e(name)}" '
        f'viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img">'
        f"<title>{_e(description)}</title>"
        f'<line x1="{_LEFT}" y1="{axis_y}" x2="{_W - _RIGHT}" y2="{axis_y}" stroke="#8c959f"/>'
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{axis_y}" stroke="#8c959f"/>'
        f'<text x="{_LEFT - 4}" y="{_TOP + 8}" text-anchor="end" font-size="10">{_e(y_top)}</text>'
        f'<text x="{_LEFT - 4}" y="{axis_y}" text-anchor="end" font-size="10">0</text>'
        f"{''.join(shapes)}{''.join(texts)}</svg>"
    )


def _empty_chart(message: str) -> str:
    return f'<p class="meta">{_e(message)}</p>'


def _colour(feature: FeatureDrift) -> str:
    return _DRIFT_COLOUR if feature.drifted else _CUR_COLOUR


def _verdict_text(verdict: Verdict) -> str:
    return verdict.value.replace("_", " ")


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3g}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"


def _anchor(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
