"""``flywheel features``: list feature views, materialize one, show an entity's online values.

Failures are one line on stderr and exit code 1, as for every other command.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from flywheel.errors import FlywheelError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from flywheel.features.store import FeatureStore

app = typer.Typer(
    help="Feature views: offline (S3) and online (DynamoDB) stores.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)

ViewName = Annotated[str, typer.Argument(help="Feature view name.")]
ViewVersion = Annotated[
    int | None, typer.Option("--version", help="View version (default: the latest).", min=1)
]


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Domain and validation errors become one line on stderr and exit code 1."""
    try:
        yield
    except FlywheelError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "input"
        err_console.print(f"[bold red]error:[/] {where}: {first.get('msg')}", highlight=False)
        raise typer.Exit(1) from None


def _store() -> FeatureStore:
    """The feature store of the deployment (the local runtime's by default)."""
    from flywheel.composition import AwsPlatform, environment_settings
    from flywheel.local.server import connect
    from flywheel.settings import Settings

    return AwsPlatform(connect(environment_settings(Settings))).feature_store()


def _when(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_views(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered feature views (latest versions)."""
    with _one_line_errors():
        views = _store().list_views()
    if as_json:
        sys.stdout.write(json.dumps([v.model_dump(mode="json") for v in views], indent=2) + "\n")
        return
    if not views:
        console.print("no feature views registered yet")
        return
    table = Table("view", "version", "entity", "features", "ttl", "transformation", "registered")
    for v in views:
        table.add_row(
            v.name,
            str(v.latest),
            f"{v.entity} ({v.join_key})",
            str(v.features),
            f"{v.ttl_seconds:g}s" if v.ttl_seconds is not None else "none",
            v.transformation,
            f"{v.registered_at:%Y-%m-%d %H:%M} by {v.registered_by}",
        )
    console.print(table)


@app.command("materialize")
def materialize(
    view: ViewName,
    version: ViewVersion = None,
    chunk_rows: Annotated[
        int, typer.Option(help="Rows per chunk (bounds memory).", min=100, max=1_000_000)
    ] = 10_000,
) -> None:
    """Copy rows ingested since the last run to the online store (resumable, idempotent)."""
    with _one_line_errors():
        report = _store().materialize(view, version=version, chunk_rows=chunk_rows)
    console.print(
        f"{report.view} v{report.version}: {report.rows_read:,} rows read in {report.chunks} "
        f"chunk(s) from {report.files} file(s); {report.written:,} written, "
        f"{report.unchanged:,} unchanged, {report.stale:,} older than online; "
        f"watermark at {report.watermark.rows:,} rows",
        highlight=False,
        soft_wrap=True,
    )


@app.command("show")
def show(
    view: ViewName,
    entity_id: Annotated[str, typer.Argument(help="Entity id (the view's join key value).")],
    version: ViewVersion = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an entity's online feature values (exit 1 when it has none, or they expired)."""
    with _one_line_errors():
        store = _store()
        result = store.online_features(view, [entity_id], version=version)
        if entity_id not in result.rows:
            state = "expired (older than the TTL)" if result.expired else "missing"
            raise _missing(view, entity_id, state)
    row = result.rows[entity_id]
    if as_json:
        body = {
            "view": result.view.name,
            "version": result.view.version,
            "entity_id": entity_id,
            "event_timestamp": _when(row.event_us),
            "created_timestamp": _when(row.created_us),
            "features": {n: row.values.get(n) for n in result.features},
        }
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return
    table = Table("feature", "value", title=f"{result.view} · {entity_id}")
    for name in result.features:
        table.add_row(name, repr(row.values.get(name)))
    console.print(table)
    console.print(f"event {_when(row.event_us)} UTC, created {_when(row.created_us)} UTC")


def _missing(view: str, entity_id: str, state: str) -> FlywheelError:
    from flywheel.features.store import EntityNotFoundError

    return EntityNotFoundError(
        f"entity {entity_id!r} has no online values in feature view {view!r} ({state}); "
        f"run `flywheel features materialize {view}` after ingesting its rows",
        field="entity_id",
    )
