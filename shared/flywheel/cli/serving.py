"""``flywheel serving compare``: shadow agreement and A/B arms from the captured predictions.

``flywheel serving compare NAME [--hours 24] [--ab-weight 0.5] [--json]`` reads the rows
the inference function captured for every version of ``NAME`` in the last hours and
prints one summary per variant, the shadow comparison (agreement rate, differences,
latency) when a shadow version ran, and the A/B comparison (traffic split check,
metrics with a significance test when labels arrived) when arms ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

if TYPE_CHECKING:
    from flywheel.serving.comparison import VariantComparison

serving_app = typer.Typer(help="Compare what the serving variants answered.", no_args_is_help=True)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(report: VariantComparison) -> list[Table | str]:
    """The report as rich tables and lines (what the command prints)."""
    out: list[Table | str] = []
    variants = Table(title=f"{report.model}: {report.rows} captured rows by variant")
    for column in ("variant", "version", "requests", "rows", "p50 ms", "p99 ms", "predictions"):
        variants.add_column(column)
    variants.add_column("labelled")
    variants.add_column("metrics")
    for summary in report.variants:
        mix = (
            ", ".join(f"{k} {v:.0%}" for k, v in summary.label_shares.items())
            if summary.label_shares
            else f"mean {_cell(summary.value_mean)} ± {_cell(summary.value_std)}"
        )
        variants.add_row(
            summary.variant,
            str(summary.version),
            str(summary.requests),
            str(summary.rows),
            _cell(summary.latency_p50_ms),
            _cell(summary.latency_p99_ms),
            mix,
            str(summary.labelled_rows),
            ", ".join(f"{k} {_cell(v)}" for k, v in summary.metrics.items()) or "-",
        )
    out.append(variants)
    if report.shadow is not None:
        s = report.shadow
        shadow = Table(title="shadow vs served (same request id and row)")
        shadow.add_column("measure")
        shadow.add_column("value")
        for label, value in (
            ("paired rows", s.paired_rows),
            ("agreement rate", s.agreement_rate),
            ("max |Δ probability|", s.max_probability_diff),
            ("mean |Δ probability|", s.mean_probability_diff),
            ("max |Δ value|", s.max_value_diff),
            ("mean |Δ value|", s.mean_value_diff),
            (
                "served latency p50 / p99 ms",
                f"{_cell(s.served_latency_p50_ms)} / {_cell(s.served_latency_p99_ms)}",
            ),
            (
                "shadow latency p50 / p99 ms",
                f"{_cell(s.shadow_latency_p50_ms)} / {_cell(s.shadow_latency_p99_ms)}",
            ),
            (
                "unpaired served / shadow rows",
                f"{s.unpaired_served_rows} / {s.unpaired_shadow_rows}",
            ),
        ):
            shadow.add_row(label, _cell(value))
        out.append(shadow)
    if report.ab is not None:
        ab = report.ab
        split = f"arm b got {_cell(ab.observed_share_b)} of requests" + (
            f" (expected {ab.expected_share_b}, p={_cell(ab.split_p_value)})"
            if ab.expected_share_b is not None
            else ""
        )
        out.append(split)
        if ab.difference is not None:
            d = ab.difference
            out.append(
                f"{d.metric}: a {_cell(d.a)}, b {_cell(d.b)}, b - a {_cell(d.difference)}, "
                f"p={_cell(d.p_value)}"
            )
        out.append(f"verdict: {ab.verdict}")
    return out


@serving_app.command("compare")
def compare(
    name: Annotated[str, typer.Argument(help="Model name.")],
    hours: Annotated[int, typer.Option(min=1, help="Whole hours back from now (UTC).")] = 24,
    ab_weight: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Configured share of arm b (split check)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Shadow agreement and A/B arm metrics from the captured predictions."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        report = _sdk().compare_variants(name, hours=hours, expected_share_b=ab_weight)
        if as_json:
            typer.echo(report.model_dump_json(indent=2))
            return
        if not report.rows:
            console.print(f"no captured predictions of {name!r} in the last {hours} hour(s)")
            return
        for item in render(report):
            console.print(item)

    run()
