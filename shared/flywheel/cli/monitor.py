"""``flywheel monitor``: the reports the monitors and the training runs' data checks wrote.

``flywheel monitor reports NAME`` lists them (newest first); ``flywheel monitor open
NAME [--run ID]`` downloads one HTML report to a local file, prints its path and opens
it in the browser (``--no-browser`` to skip).
"""

from __future__ import annotations

import tempfile
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Callable

    from flywheel.monitoring.reports import ReportIndex

ModelName = Annotated[str, typer.Argument(help="Model (or prompt) name.")]
monitor_app = typer.Typer(
    help="Drift and performance reports of the monitors.", no_args_is_help=True
)

KindOption = Annotated[
    Literal["drift", "performance", "data", "quality"] | None,
    typer.Option("--kind", help="Only drift, performance, data validation or LLM quality reports."),
]


def _index() -> ReportIndex:
    """Reports in the deployment's artifacts bucket (the local runtime's by default)."""
    from flywheel.composition import AwsPlatform, environment_settings
    from flywheel.local.server import connect
    from flywheel.monitoring.settings import MonitoringSettings

    settings = connect(environment_settings(MonitoringSettings))
    return AwsPlatform(settings).report_index(settings.reports_prefix)


def _cli(command: Callable[[], None]) -> None:
    """Run ``command`` with the CLI's console and error handling (one line, exit 1).

    ``flywheel.cli.app`` registers this module, so it is imported here, at run time.
    """
    from flywheel.cli.app import handle_errors

    handle_errors(command)()


def _print(*args: Any, **kwargs: Any) -> None:
    from flywheel.cli.app import console

    console.print(*args, **kwargs)


@monitor_app.command("reports")
def reports(
    name: ModelName,
    kind: KindOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many.")] = 20,
) -> None:
    """List a model's monitoring reports, newest first."""
    _cli(lambda: _list(name, kind, limit))


def _known(name: str) -> None:
    """Fail (one line, exit 1) for a model the registry does not know."""
    from flywheel.cli.app import _sdk

    _sdk().get_model(name)


def _list(
    name: str, kind: Literal["drift", "performance", "data", "quality"] | None, limit: int
) -> None:
    _known(name)
    entries = _index().list(name, kind=kind)
    if not entries:
        _print(f"no monitoring reports for {name} yet")
        return
    table = Table("run", "kind", "html", "json", title=f"reports of {name}")
    for entry in entries[:limit]:
        table.add_row(entry.run_id, entry.kind, entry.html_key or "-", entry.json_key or "-")
    _print(table)


@monitor_app.command("open")
def open_report(
    name: ModelName,
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: the newest).")] = None,
    kind: KindOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to save the HTML page.")
    ] = None,
    browser: Annotated[bool, typer.Option(help="Open the page in the web browser.")] = True,
) -> None:
    """Download a monitoring report's HTML page, print its path and open it."""
    _cli(lambda: _open(name, run, kind, output, browser=browser))


def _open(
    name: str,
    run: str | None,
    kind: Literal["drift", "performance", "data", "quality"] | None,
    output: Path | None,
    *,
    browser: bool,
) -> None:
    _known(name)
    index = _index()
    entry = index.find(name, run_id=run, kind=kind)
    page = index.html(entry)
    if output is None:
        output = Path(tempfile.gettempdir()) / f"flywheel-{name}-{entry.kind}-{entry.run_id}.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(page)
    _print(f"{entry.kind} report {entry.run_id} of {name}: {output}", highlight=False)
    if browser:
        webbrowser.open(output.resolve().as_uri())
