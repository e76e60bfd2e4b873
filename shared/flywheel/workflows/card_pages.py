"""A model card as Markdown (terminals, repositories) or as one self-contained HTML page.

The page needs nothing from the network and runs no script (inline CSS, importance bars
drawn as inline SVG, a Content Security Policy of ``default-src 'none'``); every value
that comes from users or data (names, reasons, config text) is escaped.

Examples
--------
>>> from flywheel.workflows.cards import CardOverview, ModelCard, TrainingData
>>> from flywheel.registry.models import ArtifactRef, Task
>>> card = ModelCard(
...     overview=CardOverview(model="churn", version=3, status="production", task=Task.REGRESSION,
...                           owner="<growth>", created_at="2026-01-01T00:00:00Z",
...                           created_by="ana"),
...     data=TrainingData(training_run_id="r1", artifact=ArtifactRef(
...         uri="memory://m.onnx", sha256="0" * 64, size_bytes=1)),
...     importance={"age": 2.0, "tenure": 1.0},
... )
>>> render_markdown(card).splitlines()[0]
'# Model card: churn v3'
>>> page = render_html(card)
>>> "&lt;growth&gt;" in page, "<growth>" in page, page.count('class="bar"')
(True, False, 2)
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from flywheel.drift.bias import BiasResult
    from flywheel.workflows.cards import CardEvaluation, ModelCard
    from flywheel.workflows.importance import ImportanceComparison

__all__ = ["render_html", "render_markdown"]

#: How many features the importance chart and table show.
IMPORTANCE_ROWS = 15
_BAR_COLOUR = "#1f6feb"
#: Each bias gap (a field of ``BiasResult``): how its limit reads, and the limit's field.
_GAPS = {
    "demographic_parity_difference": ("≤", "max_demographic_parity_difference"),
    "disparate_impact_ratio": ("≥", "min_disparate_impact_ratio"),
    "equal_opportunity_difference": ("≤", "max_equal_opportunity_difference"),
}


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _status_marks(card: ModelCard) -> tuple[str, ...]:
    return (card.overview.status, *card.overview.aliases)


def _status_line(card: ModelCard) -> str:
    """Task, classes, when and by whom it was registered."""
    o = card.overview
    task = str(o.task) + (f" ({', '.join(o.classes)})" if o.classes else "")
    return f"{task}; registered {o.created_at:%Y-%m-%d %H:%M} UTC by {o.created_by}"


def _history_summary(card: ModelCard) -> list[str]:
    """Who asked for approval and who decided, when (plain text)."""
    lines: list[str] = []
    asked = card.requested
    if asked is not None:
        who = asked.requested_by or asked.actor
        lines.append(f"approval requested by {who} at {asked.timestamp}")
    decided = card.decision
    if decided is not None:
        verb = "approved" if decided.action == "approved" else "rejected"
        reason = f": {decided.reason}" if decided.reason else ""
        lines.append(f"{verb} by {decided.actor} at {decided.timestamp}{reason}")
    elif asked is not None:
        lines.append("not decided yet")
    return lines


def _chain_line(card: ModelCard) -> str:
    chain = card.chain
    if chain is None:
        return "the audit chain was not verified for this card"
    if chain.ok:
        return f"audit chain intact ({chain.entries} entries; {chain.evidence})"
    return (
        f"audit chain BROKEN: {chain.problem} (run `flywheel audit verify {card.overview.model}`)"
    )


def _bias_gaps(bias: BiasResult) -> list[str]:
    """One line per measured gap: value, interval, limit."""
    limits = bias.policy.model_dump()
    lines = []
    for field, (sign, limit) in _GAPS.items():
        label = field.replace("_", " ")
        value = getattr(bias, field)
        if value is None:
            continue
        interval = bias.intervals.get(field)
        around = (
            f" ({bias.policy.confidence:.0%} interval {interval[0]:.3f} to {interval[1]:.3f})"
            if interval is not None
            else ""
        )
        lines.append(f"{label} {value:.3f}{around}, limit {sign} {limits[limit]:g}")
    return lines


def _declared_note(card: ModelCard) -> str:
    source = card.overview.declared_in
    if source == "version":
        return "as declared in the training config this version was trained with"
    if source == "config":
        return "from the model's current config (this version's training config declares none)"
    return "not declared: add owner, intended_use and limitations to the training config"


# -- Markdown ------------------------------------------------------------------------------------
# Backslash-escaped: what could start markup anywhere in a line (``_`` only off a word,
# where it cannot open emphasis; ``#`` only where it would start a heading).
_MD_SPECIAL = re.compile(r"[\\`*\[\]<>|]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])|^#")


def _md(text: object) -> str:
    """``text`` as inline Markdown: special characters escaped, on one line.

    Examples
    --------
    >>> print(_md("f1_macro <b>|_x_ # 1"))
    f1_macro \\<b\\>\\|\\_x\\_ # 1
    """
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), " ".join(str(text).split()))


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(card: ModelCard) -> str:
    """The card as Markdown (readable as plain text too).

    Examples
    --------
    >>> from flywheel.workflows.cards import CardOverview, ModelCard, TrainingData
    >>> from flywheel.registry.models import ArtifactRef, Task
    >>> card = ModelCard(
    ...     overview=CardOverview(model="m", version=1, status="candidate",
    ...                           task=Task.REGRESSION, intended_use="a | b",
    ...                           created_at="2026-01-01T00:00:00Z", created_by="ana"),
    ...     data=TrainingData(training_run_id="r1", artifact=ArtifactRef(
    ...         uri="memory://m.onnx", sha256="0" * 64, size_bytes=1)),
    ... )
    >>> [line for line in render_markdown(card).splitlines() if "Intended use" in line]
    ['| Intended use | a \\\\| b |']
    """
    o, d = card.overview, card.data
    marks = ", ".join(_status_marks(card))
    out = [
        f"# Model card: {_md(o.model)} v{o.version}",
        "",
        _md(f"{marks}; {_status_line(card)}"),
        "",
    ]
    out += ["## Overview", ""]
    out += _md_table(
        ("", ""),
        [
            ("Owner", _md(o.owner or "not declared")),
            ("Intended use", _md(o.intended_use or "not declared")),
            ("Description", _md(o.description or "-")),
        ],
    )
    out += [f"Owner, intended use and limitations: {_md(_declared_note(card))}.", ""]

    out += ["## Training data and lineage", ""]
    facts = [
        ("Dataset", f"{_md(d.dataset or 'unknown')} (SHA-256 `{d.dataset_sha256 or 'n/a'}`)"),
        ("Feature view", _md(d.feature_view) if d.feature_view else None),
        ("Code version", _md(d.code_version or "not recorded")),
        ("Estimator", _md(d.estimator or "unknown")),
        ("Hyperparameters", _md(_hyperparameters(card))),
        ("Seed, holdout", f"{_num(d.random_seed)}, {_share(d.test_size)}"),
        ("Training run", _md(_run_line(card))),
        ("Parent runs", _md(_parents(card))),
        ("Libraries", _md(_params(d.library_versions)) or "not recorded"),
        ("Model artifact", f"{_md(d.artifact.uri)} (SHA-256 `{d.artifact.sha256}`)"),
        ("Input features", _md(_feature_list(card))),
        ("Not known", _md(", ".join(d.unknown)) if d.unknown else None),
    ]
    out += _md_table(("", ""), [(k, v) for k, v in facts if v is not None])

    out += ["## Holdout metrics", ""]
    header, rows = _metrics_rows(card)
    out += _md_table(header, [(_md(name), *cells) for name, *cells in rows])
    evaluation = card.evaluation
    out += _md_groups(card, evaluation)
    if evaluation is not None and evaluation.gate:
        out += ["## Gate checks at evaluation", ""]
        out += _md_table(
            ("check", "passed", "detail"),
            [
                (_md(c.name), "yes" if c.passed else "**no**", _md(c.detail))
                for c in evaluation.gate
            ],
        )

    out += ["## ONNX parity", "", _md(_parity_line(card)), ""]

    out += ["## Global importance (mean |SHAP| on the holdout)", ""]
    if card.importance:
        top = max(card.importance.values()) or 1.0
        out += _md_table(
            ("rank", "feature", "mean \\|SHAP\\|", ""),
            [
                (str(i), _md(name), _num(value), "█" * max(1, round(20 * value / top)))
                for i, (name, value) in enumerate(card.importance.items(), start=1)
                if i <= IMPORTANCE_ROWS
            ],
        )
    else:
        out += ["Not recorded for this version.", ""]
    comparison = evaluation.importance if evaluation is not None else None
    if comparison is not None:
        out += [_md(_comparison_line(comparison)), ""]
        if comparison.features:
            out += _md_table(
                ("feature", "rank", "champion's rank", "change"),
                [
                    (_md(f.feature), _num(f.candidate_rank), _num(f.champion_rank), f.movement)
                    for f in comparison.features
                ],
            )

    out += ["## Limitations", ""]
    out += [f"- {_md(item)}" for item in o.limitations] or ["Not declared."]
    out += [""]

    out += ["## Approval history (from the audit chain)", ""]
    out += [f"- {_md(line)}" for line in _history_summary(card)]
    out += [
        "",
        *_md_table(
            ("seq", "when", "action", "by", "reason"),
            [
                (str(e.seq), _md(e.timestamp), _md(e.action), _md(e.actor), _md(e.reason or ""))
                for e in card.history
            ],
        ),
    ]
    out += [_md(_chain_line(card)) + ".", ""]
    if card.generated_at is not None:
        out += [f"Generated by Flywheel at {card.generated_at:%Y-%m-%d %H:%M:%S} UTC.", ""]
    return "\n".join(out)


def _md_groups(card: ModelCard, evaluation: CardEvaluation | None) -> list[str]:
    bias = evaluation.bias if evaluation is not None else None
    if bias is None:
        return ["## Per-group metrics", "", _group_absence(card, evaluation), ""]
    out = [
        f"## Per-group metrics: {_md(bias.attribute)} (favorable: {_md(bias.favorable)})",
        "",
        _md(_group_intro(card, bias)) + (": within limits." if bias.passed else ": limits broken."),
        "",
    ]
    out += _md_table(
        ("group", "rows", "selection rate", "true positive rate", "false positive rate"),
        [
            (
                _md(g.group) + ("" if g.included else " (too few rows)"),
                str(g.rows),
                _rate(g.selection_rate),
                _rate(g.true_positive_rate),
                _rate(g.false_positive_rate),
            )
            for g in bias.groups
        ],
    )
    out += [f"- {_md(line)}" for line in _bias_gaps(bias)]
    out += [f"- **violation**: {_md(v)}" for v in bias.violations] or ["- within limits"]
    return [*out, ""]


def _group_intro(card: ModelCard, bias: BiasResult) -> str:
    how = ""
    if card.bias_gated is not None:
        how = ", gated" if card.bias_gated else ", reported (the gate does not check it)"
    return f"On the holdout ({bias.rows} rows){how}"


def _group_absence(card: ModelCard, evaluation: CardEvaluation | None) -> str:
    if evaluation is None:
        return (
            f"Not measured: no approval request of {card.overview.model} holds this version's "
            "evaluation (it was not trained by the training workflow)."
        )
    return (
        "Not measured at evaluation: the model config named no protected attribute "
        "(gate.bias or monitoring.bias)."
    )


def _metrics_rows(card: ModelCard) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and rows: each metric of this version, and the champion's on the same holdout."""
    evaluation = card.evaluation
    champion = evaluation.champion if evaluation is not None else None
    rows: list[tuple[str, ...]]
    if champion is not None and champion.comparable:
        header: tuple[str, ...] = ("metric", "this version", f"champion v{champion.version}")
        rows = [(n, _num(v), _num(champion.metrics.get(n))) for n, v in card.metrics.items()]
    else:
        header = ("metric", "this version")
        rows = [(n, _num(v)) for n, v in card.metrics.items()]
    holdout = evaluation.holdout_rows if evaluation is not None else None
    if holdout is None and card.parity is not None:
        holdout = card.parity.rows
    rows.append(("holdout rows", _num(holdout), *[""] * (len(header) - 2)))
    return header, rows


def _comparison_line(comparison: ImportanceComparison) -> str:
    source = (
        "re-explained on this version's holdout"
        if comparison.champion_source == "holdout"
        else "as registered with it, from its own holdout"
    )
    return (
        f"Against champion v{comparison.champion_version} at evaluation (its importance "
        f"{source}): {comparison.details()}."
    )


def _parity_line(card: ModelCard) -> str:
    p = card.parity
    if p is None:
        return "Not recorded for this version."
    agreement = (
        f", labels agree on {p.label_agreement:.2%}" if p.label_agreement is not None else ""
    )
    verdict = "passed" if p.passed else "FAILED"
    note = f" ({p.note})" if p.note else ""
    return (
        f"{verdict}: ONNX against the trained model on {p.rows} holdout rows in {p.precision}, "
        f"max |Δ| {p.max_abs_diff:.2e}, p99 |Δ| {p.p99_abs_diff:.2e}{agreement}{note}"
    )


def _params(values: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))


def _hyperparameters(card: ModelCard) -> str:
    configured = _params(card.data.hyperparameters) or "defaults"
    search = card.data.search
    if not search:
        return configured
    best = search.get("best_params")
    tuned = _params(best) if isinstance(best, dict) else "n/a"
    score = search.get("best_mean_score")
    scored = f", {search.get('metric')} {score:.4g}" if isinstance(score, float) else ""
    return (
        f"{configured}; tuned by {search.get('method')} search over {search.get('trials')} "
        f"trials ({search.get('folds')}-fold CV{scored}): {tuned}"
    )


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%} held out"


def _run_line(card: ModelCard) -> str:
    run = card.data.run
    if run is None:
        return f"{card.data.training_run_id} (not in the run log)"
    search = f"; searched {len(card.data.parent_runs) - 1} trials" if run.search else ""
    return (
        f"{run.run_id}: started {run.started_at:%Y-%m-%d %H:%M:%S} UTC by {run.actor} "
        f"(trigger {run.trigger}), {run.duration_seconds:.1f} s{search}"
    )


def _parents(card: ModelCard) -> str:
    first, *trials = card.data.parent_runs or (card.data.training_run_id,)
    if not trials:
        return first
    return f"{first}, and its {len(trials)} search trials ({trials[0]} to {trials[-1]})"


def _feature_list(card: ModelCard) -> str:
    features = card.data.features
    shown = ", ".join(f"{f.name} ({f.dtype})" for f in features[:12])
    return f"{len(features)}: {shown}" + (", ..." if len(features) > 12 else "")


# -- HTML ----------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
color:#1f2328;background:#fff}
header,main,footer{max-width:1000px;margin:0 auto;padding:16px 24px}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:22px 0 6px}
.status{color:#57606a}.pill{display:inline-block;padding:2px 8px;border-radius:10px;
background:#ddf4ff;color:#0969da;font-weight:600;margin-right:4px}
.ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}
.muted{color:#57606a}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}
th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content auto;gap:3px 14px;margin:6px 0 12px}
dt{color:#57606a}dd{margin:0;overflow-wrap:anywhere}code{font-size:12px}
svg{display:block;max-width:100%;height:auto}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(card: ModelCard) -> str:
    """The card as one self-contained HTML document (UTF-8 text).

    Examples
    --------
    >>> from flywheel.workflows.cards import CardOverview, ModelCard, TrainingData
    >>> from flywheel.registry.models import ArtifactRef, Task
    >>> card = ModelCard(
    ...     overview=CardOverview(model="m", version=1, status="candidate",
    ...                           task=Task.REGRESSION, limitations=("<b>not</b> for kids",),
    ...                           created_at="2026-01-01T00:00:00Z", created_by="ana"),
    ...     data=TrainingData(training_run_id="r1", artifact=ArtifactRef(
    ...         uri="memory://m.onnx", sha256="0" * 64, size_bytes=1)),
    ... )
    >>> page = render_html(card)
    >>> page.startswith("<!doctype html>"), "<li>&lt;b&gt;not&lt;/b&gt; for kids</li>" in page
    (True, True)
    """
    o = card.overview
    title = f"Model card: {o.model} v{o.version}"
    pills = "".join(f'<span class="pill">{_e(mark)}</span>' for mark in _status_marks(card))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="status">{pills} {_e(_status_line(card))}</p></header>',
        "<main>",
        _html_overview(card),
        _html_data(card),
        _html_metrics(card),
        _html_groups(card),
        _html_gate(card.evaluation),
        f'<section id="parity"><h2>ONNX parity</h2><p>{_e(_parity_line(card))}</p></section>',
        _html_importance(card),
        _html_limitations(card),
        _html_history(card),
        "</main>",
        '<footer class="muted">Generated by Flywheel'
        + (f" at {card.generated_at:%Y-%m-%d %H:%M:%S} UTC" if card.generated_at else "")
        + " from the registry, the audit chain and the model config.</footer>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _dl(items: Iterable[tuple[str, str | None]]) -> str:
    """A definition list; values are already escaped HTML."""
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items if v is not None)
    return f"<dl>{rows}</dl>"


def _table(
    header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Collection[int] = ()
) -> str:
    """A table; cells are already escaped HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_overview(card: ModelCard) -> str:
    o = card.overview
    return (
        '<section id="overview"><h2>Overview</h2>'
        + _dl(
            [
                ("Owner", _e(o.owner or "not declared")),
                ("Intended use", _e(o.intended_use or "not declared")),
                ("Description", _e(o.description or "-")),
            ]
        )
        + f'<p class="muted">Owner, intended use and limitations: {_e(_declared_note(card))}.</p>'
        + "</section>"
    )


def _html_data(card: ModelCard) -> str:
    d = card.data
    code = f"<code>{_e(d.dataset_sha256)}</code>" if d.dataset_sha256 else "n/a"
    return (
        '<section id="data"><h2>Training data and lineage</h2>'
        + _dl(
            [
                ("Dataset", f"{_e(d.dataset or 'unknown')}<br>SHA-256 {code}"),
                ("Feature view", _e(d.feature_view) if d.feature_view else None),
                ("Code version", _e(d.code_version or "not recorded")),
                ("Estimator", _e(d.estimator or "unknown")),
                ("Hyperparameters", _e(_hyperparameters(card))),
                ("Seed, holdout", _e(f"{_num(d.random_seed)}, {_share(d.test_size)}")),
                ("Training run", _e(_run_line(card))),
                ("Parent runs", _e(_parents(card))),
                ("Libraries", _e(_params(d.library_versions) or "not recorded")),
                (
                    "Model artifact",
                    f"{_e(d.artifact.uri)}<br>SHA-256 <code>{_e(d.artifact.sha256)}</code>",
                ),
                ("Input features", _e(_feature_list(card))),
                ("Not known", _e(", ".join(d.unknown)) if d.unknown else None),
            ]
        )
        + "</section>"
    )


def _html_metrics(card: ModelCard) -> str:
    header, rows = _metrics_rows(card)
    cells = [tuple(_e(c) for c in row) for row in rows]
    return (
        '<section id="metrics"><h2>Holdout metrics</h2>'
        + _table(header, cells, numeric=set(range(1, len(header))))
        + "</section>"
    )


def _html_groups(card: ModelCard) -> str:
    evaluation = card.evaluation
    bias = evaluation.bias if evaluation is not None else None
    if bias is None:
        return (
            '<section id="groups"><h2>Per-group metrics</h2>'
            f"<p>{_e(_group_absence(card, evaluation))}</p></section>"
        )
    rows = [
        (
            _e(g.group) + ("" if g.included else ' <span class="muted">(too few rows)</span>'),
            str(g.rows),
            _rate(g.selection_rate),
            _rate(g.true_positive_rate),
            _rate(g.false_positive_rate),
        )
        for g in bias.groups
    ]
    verdict = (
        '<span class="pill ok">within limits</span>'
        if bias.passed
        else '<span class="pill bad">limits broken</span>'
    )
    items = "".join(f"<li>{_e(line)}</li>" for line in _bias_gaps(bias))
    items += "".join(f"<li><strong>violation</strong>: {_e(v)}</li>" for v in bias.violations)
    return (
        f'<section id="groups"><h2>Per-group metrics: {_e(bias.attribute)} '
        f"(favorable: {_e(bias.favorable)})</h2>"
        f"<p>{verdict} {_e(_group_intro(card, bias))}.</p>"
        + _table(
            ("group", "rows", "selection rate", "true positive rate", "false positive rate"),
            rows,
            numeric={1, 2, 3, 4},
        )
        + f"<ul>{items}</ul></section>"
    )


def _html_gate(evaluation: CardEvaluation | None) -> str:
    if evaluation is None or not evaluation.gate:
        return ""
    rows = [
        (
            _e(c.name),
            '<span class="pill ok">passed</span>'
            if c.passed
            else '<span class="pill bad">failed</span>',
            _e(c.detail),
        )
        for c in evaluation.gate
    ]
    return (
        '<section id="gate"><h2>Gate checks at evaluation</h2>'
        + _table(("check", "result", "detail"), rows)
        + "</section>"
    )


def _importance_svg(importance: dict[str, float]) -> str:
    """Horizontal bars, largest first: one ``<g class="bar">`` per feature."""
    shown = list(importance.items())[:IMPORTANCE_ROWS]
    top = max((v for _, v in shown), default=0.0) or 1.0
    label_w, bar_w, value_w, row_h = 230, 360, 90, 22
    width, height = label_w + bar_w + value_w, row_h * len(shown) + 8
    bars = []
    for i, (name, value) in enumerate(shown):
        y = 4 + i * row_h
        length = max(1.0, bar_w * value / top)
        label = name if len(name) <= 32 else name[:31] + "…"
        bars.append(
            f'<g class="bar" data-feature="{_e(name)}"><title>{_e(name)}: {value:.6g}</title>'
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{_e(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row_h - 6}" '
            f'fill="{_BAR_COLOUR}"></rect>'
            f'<text x="{label_w + length + 6:.1f}" y="{y + 15}" font-size="12">'
            f"{value:.4g}</text></g>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="mean absolute SHAP value per feature">{"".join(bars)}</svg>'
    )


def _html_importance(card: ModelCard) -> str:
    evaluation = card.evaluation
    comparison = evaluation.importance if evaluation is not None else None
    heading = '<section id="importance"><h2>Global importance (mean |SHAP| on the holdout)</h2>'
    if not card.importance:
        body = "<p>Not recorded for this version.</p>"
    else:
        more = len(card.importance) - IMPORTANCE_ROWS
        body = _importance_svg(card.importance) + (
            f'<p class="muted">and {more} more features.</p>' if more > 0 else ""
        )
    return heading + body + _html_comparison(comparison) + "</section>"


def _html_comparison(comparison: ImportanceComparison | None) -> str:
    if comparison is None:
        return ""
    text = f"<p>{_e(_comparison_line(comparison))}</p>"
    if not comparison.features:
        return text
    rows = [
        (_e(f.feature), _num(f.candidate_rank), _num(f.champion_rank), _e(f.movement))
        for f in comparison.features
    ]
    return text + _table(("feature", "rank", "champion's rank", "change"), rows, numeric={1, 2})


def _html_limitations(card: ModelCard) -> str:
    items = "".join(f"<li>{_e(item)}</li>" for item in card.overview.limitations)
    body = f"<ul>{items}</ul>" if items else "<p>Not declared.</p>"
    return f'<section id="limitations"><h2>Limitations</h2>{body}</section>'


def _html_history(card: ModelCard) -> str:
    summary = "".join(f"<li>{_e(line)}</li>" for line in _history_summary(card))
    rows = [
        (
            str(e.seq),
            _e(e.timestamp),
            _e(e.action),
            _e(e.actor),
            _e(e.reason or ""),
            f"<code>{_e(e.hash[:12])}</code>",
        )
        for e in card.history
    ]
    chain = card.chain
    state = "ok" if chain is not None and chain.ok else "bad"
    return (
        '<section id="history"><h2>Approval history (from the audit chain)</h2>'
        f"<ul>{summary}</ul>"
        + _table(("seq", "when", "action", "by", "reason", "hash"), rows, numeric={0})
        + f'<p><span class="pill {state}">{_e(_chain_line(card))}</span></p></section>'
    )
