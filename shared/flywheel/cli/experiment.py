"""``flywheel experiment``: shadow and A/B experiments, kept in the registry (ADR 75).

``start NAME --shadow VERSION`` or ``--ab VERSION [--weight 0.2] [--salt S]``; ``status
NAME [--json]`` (the experiment and its comparison report); ``stop NAME -r REASON``;
``promote-winner NAME -r REASON [--version N]`` (the promotion workflow rolls it out).
``NAME`` is a model or a prompt; a prompt's report counts the LLM gateway's captured
calls per variant (calls, errors, latency, tokens, cost) and the A/B split.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

if TYPE_CHECKING:
    from flywheel.llm.comparison import PromptComparison
    from flywheel.serving.experiments import Experiment

experiment_app = typer.Typer(
    help="Shadow and A/B experiments (registry state, audited).", no_args_is_help=True
)

ModelName = Annotated[str, typer.Argument(help="Model or prompt name.")]
Reason = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why (recorded in the audit trail).")
]


def describe(experiment: Experiment) -> str:
    """One line: what runs (or ran), against which champion, since when."""
    what = (
        f"shadow of v{experiment.version}"
        if experiment.kind == "shadow"
        else f"A/B: v{experiment.version} takes {experiment.weight:.0%} of keys "
        f"(salt {experiment.salt})"
    )
    line = (
        f"{experiment.id}: {what} against champion v{experiment.control}, "
        f"{experiment.status} since {experiment.started_at:%Y-%m-%d %H:%M} UTC "
        f"(by {experiment.started_by})"
    )
    if not experiment.running:
        line += f"; stopped by {experiment.stopped_by}: {experiment.stop_reason}"
        if experiment.winner is not None:
            line += f" (winner v{experiment.winner}, {experiment.outcome})"
    return line


def render_prompt(report: PromptComparison) -> list[Table | str]:
    """A prompt's comparison as a table and lines (what ``status`` prints for a prompt)."""
    table = Table(title=f"{report.prompt}: {report.rows} captured calls by variant")
    for column in (
        "variant", "version", "calls", "errors", "error rate", "p50 ms", "p99 ms",
        "tokens in / out", "cost", "cost per call", "invalid / repaired",
    ):  # fmt: skip
        table.add_column(column)
    for v in report.variants:
        table.add_row(
            v.variant,
            str(v.version),
            str(v.calls),
            str(v.errors),
            _cell(v.error_rate),
            _cell(v.latency_p50_ms),
            _cell(v.latency_p99_ms),
            f"{v.input_tokens} / {v.output_tokens}",
            str(v.cost),
            _cell(None if v.cost_per_call is None else f"{v.cost_per_call:.6g}"),
            f"{v.invalid_outputs} / {v.repaired}",
        )
    out: list[Table | str] = [table]
    split = report.split
    if split is not None:
        line = (
            f"arm b got {_cell(split.observed_share_b)} of calls "
            f"({split.calls_a} a, {split.calls_b} b)"
        )
        if split.expected_share_b is not None:
            line += f", expected {split.expected_share_b} (p={_cell(split.split_p_value)})"
        if split.sample_ratio_mismatch:
            line += ": sample ratio mismatch, assignment is broken"
        out.append(line)
    out.append(f"not compared: {report.not_compared}")
    return out


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@experiment_app.command("start")
def start(
    name: ModelName,
    shadow: Annotated[
        int | None, typer.Option("--shadow", min=1, help="Version that scores in shadow.")
    ] = None,
    ab: Annotated[
        int | None, typer.Option("--ab", min=1, help="Approved version for arm b.")
    ] = None,
    weight: Annotated[
        float | None, typer.Option(help="A/B: share of assignment keys in arm b (0.5).")
    ] = None,
    salt: Annotated[
        str | None, typer.Option(help="A/B: hash salt (default: the experiment's id).")
    ] = None,
    reason: Reason = None,
) -> None:
    """Start a shadow or A/B experiment of a version against the champion."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        started = _sdk().start_experiment(
            name, shadow=shadow, ab=ab, weight=weight, salt=salt, reason=reason
        )
        console.print(describe(started), highlight=False, soft_wrap=True)

    run()


@experiment_app.command("status")
def status(
    name: ModelName,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The latest experiment and the comparison of its variants since it started."""
    from flywheel.cli.app import _sdk, console, handle_errors
    from flywheel.cli.serving import render
    from flywheel.llm.comparison import PromptComparison

    @handle_errors
    def run() -> None:
        report = _sdk().experiment_report(name)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "experiment": report.experiment.model_dump(mode="json"),
                        "comparison": report.comparison.model_dump(mode="json"),
                    },
                    indent=2,
                )
            )
            return
        console.print(describe(report.experiment), highlight=False, soft_wrap=True)
        comparison = report.comparison
        prompt = isinstance(comparison, PromptComparison)
        if not comparison.rows:
            console.print(f"no captured {'calls' if prompt else 'predictions'} since it started")
            return
        items = (
            render_prompt(comparison)
            if isinstance(comparison, PromptComparison)
            else render(comparison)
        )
        for item in items:
            console.print(item)

    run()


@experiment_app.command("stop")
def stop(name: ModelName, reason: Reason = None) -> None:
    """Stop the experiment; the inference function (or the LLM gateway) drops it."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        stopped = _sdk().stop_experiment(name, reason=reason or "")
        console.print(describe(stopped), highlight=False, soft_wrap=True)

    run()


@experiment_app.command("promote-winner")
def promote_winner(
    name: ModelName,
    reason: Reason = None,
    version: Annotated[
        int | None,
        typer.Option(min=1, help="The winner, if you decide (default: the report's verdict)."),
    ] = None,
) -> None:
    """Stop the experiment and have the promotion workflow roll its winner out."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        done = _sdk().promote_winner(name, reason=reason or "", version=version)
        if done.promotion is None:
            console.print(f"{name}: champion v{done.winner} won; nothing to promote")
            return
        console.print(
            f"{name}: v{done.winner} won; the promotion workflow rolls it out "
            f"(event {done.promotion.get('event_id', '?')}, requested by "
            f"{done.promotion.get('requested_by', '?')})",
            highlight=False,
            soft_wrap=True,
        )

    run()
