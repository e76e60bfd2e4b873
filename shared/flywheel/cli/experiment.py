"""``flywheel experiment``: shadow and A/B experiments, kept in the registry (ADR 75).

``start NAME --shadow VERSION`` or ``--ab VERSION [--weight 0.2] [--salt S]``; ``status
NAME [--json]`` (the experiment and its comparison report); ``stop NAME -r REASON``;
``promote-winner NAME -r REASON [--version N]`` (the promotion workflow rolls it out).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from flywheel.serving.experiments import Experiment

experiment_app = typer.Typer(
    help="Shadow and A/B experiments (registry state, audited).", no_args_is_help=True
)

ModelName = Annotated[str, typer.Argument(help="Model name.")]
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
    """The model's latest experiment and the comparison of its variants since it started."""
    from flywheel.cli.app import _sdk, console, handle_errors
    from flywheel.cli.serving import render

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
        if not report.comparison.rows:
            console.print("no captured predictions since it started")
            return
        for item in render(report.comparison):
            console.print(item)

    run()


@experiment_app.command("stop")
def stop(name: ModelName, reason: Reason = None) -> None:
    """Stop the model's experiment; the inference function drops it."""
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
