"""``flywheel runs``: every training and search trial, listed and compared.

``flywheel runs list NAME [--trials] [--json]`` prints a model's runs, newest first;
``flywheel runs compare RUN RUN... [--model NAME] [--json]`` lines runs up by parameter
and metric, rows that differ in bold.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

if TYPE_CHECKING:
    from pydantic import JsonValue

    from flywheel.runs.models import Run, RunComparison

runs_app = typer.Typer(help="Experiment runs: trainings and search trials.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _cell(value: JsonValue | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _metrics(run: Run) -> str:
    return ", ".join(f"{k} {_cell(v)}" for k, v in sorted(run.metrics.items())) or "-"


def list_table(name: str, runs: list[Run]) -> Table:
    """A model's runs as one table (what ``runs list`` prints)."""
    table = Table(title=f"{name}: {len(runs)} run(s), newest first")
    # Run ids are what `runs compare` takes: never wrapped or cut.
    table.add_column("run", no_wrap=True, min_width=max(len(r.run_id) for r in runs))
    for column in ("kind", "started (UTC)", "seconds", "estimator", "version", "trials"):
        table.add_column(column)
    table.add_column("metrics")
    for run in runs:
        searched = run.search or {}
        table.add_row(
            run.run_id,
            str(run.kind),
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{run.duration_seconds:.2f}",
            run.estimator,
            _cell(run.version),
            _cell(searched.get("trials")),
            run.error or _metrics(run),
        )
    return table


def compare_table(comparison: RunComparison) -> Table:
    """Runs as columns; facts, parameters and metrics as rows; differing rows in bold."""
    table = Table(title=f"{len(comparison.runs)} runs")
    table.add_column("")
    for run in comparison.runs:
        table.add_column(run.run_id)
    differing = comparison.differing()
    facts: list[tuple[str, list[str]]] = [
        ("model", [r.model for r in comparison.runs]),
        ("kind", [str(r.kind) for r in comparison.runs]),
        ("started (UTC)", [r.started_at.strftime("%Y-%m-%d %H:%M:%S") for r in comparison.runs]),
        ("seconds", [f"{r.duration_seconds:.2f}" for r in comparison.runs]),
        ("estimator", [r.estimator for r in comparison.runs]),
        ("dataset sha256", [r.dataset_sha256[:12] for r in comparison.runs]),
        ("code", [_cell(r.code_version) for r in comparison.runs]),
        ("version", [_cell(r.version) for r in comparison.runs]),
    ]
    for label, cells in facts:
        table.add_row(label, *cells)
    table.add_section()
    for name, values in comparison.parameters.items():
        style = "bold" if name in differing else None
        table.add_row(name, *(_cell(v) for v in values), style=style)
    table.add_section()
    for name, metrics in comparison.metrics.items():
        style = "bold" if name in differing else None
        table.add_row(name, *(_cell(v) for v in metrics), style=style)
    return table


@runs_app.command("list")
def runs_list(
    name: Annotated[str, typer.Argument(help="Model name.")],
    trials: Annotated[bool, typer.Option("--trials", help="Each search's trials too.")] = False,
    as_json: AsJson = False,
) -> None:
    """A model's runs, newest first: parameters, metrics, duration, version."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        runs = _sdk().runs(name, trials=trials)
        if as_json:
            typer.echo(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
            return
        if not runs:
            console.print(f"no runs of {name!r} recorded")
            return
        console.print(list_table(name, runs))

    run()


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.", metavar="RUN...")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model the runs belong to.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Runs side by side: what differs in their parameters and metrics."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        comparison = _sdk().compare_runs(*run_ids, model=model)
        if as_json:
            typer.echo(comparison.model_dump_json(indent=2))
            return
        console.print(compare_table(comparison))

    run()
