"""``flywheel``: train, govern, audit and use models from the shell.

Every failure is one line on stderr and a non-zero exit code; nothing is written
when a command fails.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from flywheel.cli import features as features_cli
from flywheel.cli.costs import cost_app
from flywheel.cli.data import data_app
from flywheel.cli.experiment import experiment_app
from flywheel.cli.monitor import monitor_app
from flywheel.cli.prompts import prompts_app
from flywheel.cli.runs import runs_app
from flywheel.cli.serving import serving_app
from flywheel.cli.stage import stage_app
from flywheel.errors import FlywheelError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from flywheel.registry.models import Model, ModelVersion
    from flywheel.sdk import ChangeResult, Flywheel

app = typer.Typer(
    name="flywheel",
    help="Serverless MLOps for AWS: train, govern, audit and serve ONNX models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Registered models and versions.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
local_app = typer.Typer(help="The local AWS stand-in (moto server).", no_args_is_help=True)
schema_app = typer.Typer(help="Feature schemas of training data.", no_args_is_help=True)
project_app = typer.Typer(help="A team's project file (flywheel.yaml).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(audit_app, name="audit")
app.add_typer(local_app, name="local")
app.add_typer(schema_app, name="schema")
app.add_typer(project_app, name="project")
app.add_typer(features_cli.app, name="features")
app.add_typer(data_app, name="data")
app.add_typer(monitor_app, name="monitor")
app.add_typer(serving_app, name="serving")
app.add_typer(experiment_app, name="experiment")
app.add_typer(runs_app, name="runs")
app.add_typer(stage_app, name="stage")
app.add_typer(prompts_app, name="prompts")
app.add_typer(cost_app, name="cost")

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound="Callable[..., Any]")

EXIT_FAILURE = 1
EXIT_TAMPERED = 3

Reason = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why (required; recorded in the audit trail).")
]
ModelName = Annotated[str, typer.Argument(help="Model name.")]
VersionNumber = Annotated[int, typer.Argument(help="Version number.", min=1)]


class _State:
    actor: str | None = None
    sdk: Flywheel | None = None


STATE = _State()


def _sdk() -> Flywheel:
    if STATE.sdk is None:
        from flywheel.sdk import Flywheel

        STATE.sdk = Flywheel.connect(actor=STATE.actor)
    return STATE.sdk


def version_label(model: Model, version: int) -> str:
    """``3 champion``: a version number with the aliases that point at it."""
    marks = [str(alias) for alias, number in model.aliases.items() if number == version]
    return f"{version} {' '.join(marks)}".strip()


def write_listing(key: str, record: Model, versions: Sequence[ModelVersion]) -> None:
    """``--json`` of a ``show`` command: the registry record under ``key`` and its versions."""
    listing = {
        key: record.model_dump(mode="json"),
        "versions": [v.model_dump(mode="json") for v in versions],
    }
    sys.stdout.write(json.dumps(listing, indent=2) + "\n")


def _fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _first_validation_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "input"
    return f"{where}: {first.get('msg', 'invalid value')}"


def handle_errors(func: F) -> F:
    """Turn domain and validation errors into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FlywheelError as exc:
            raise _fail(str(exc)) from None
        except ValidationError as exc:
            raise _fail(_first_validation_problem(exc)) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main_options(
    actor: Annotated[
        str | None,
        typer.Option(help="Who is acting (default: $FLYWHEEL_ACTOR, then the OS user)."),
    ] = None,
) -> None:
    STATE.actor = actor
    STATE.sdk = None


# -- training ------------------------------------------------------------------------------------
@app.command()
@handle_errors
def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML, JSON or TOML).")],
    reason: Annotated[str | None, typer.Option("--reason", "-r")] = None,
) -> None:
    """Train, convert to ONNX with a parity check, register a candidate and request approval."""
    if not config.is_file():
        raise _fail(f"config file {config} does not exist")
    with console.status("training") as status:
        report = _sdk().train(config, reason=reason, progress=status.update)
    v = report.version
    console.print(
        f"registered [bold]{v.name}[/] version [bold]{v.version}[/] ({v.status}); "
        f"artifact sha256 {v.artifact.sha256[:12]}…, {v.artifact.size_bytes:,} bytes"
    )
    view = v.lineage.feature_view
    if view is not None:
        console.print(
            f"trained from feature view [bold]{view.name}[/] v{view.version} "
            f"({', '.join(view.features)}): {view.rows_without_features:,} of "
            f"{view.entity_rows:,} entity rows saw no feature value and were left out"
        )
    search = v.lineage.search
    if search is not None:
        console.print(
            f"{search['method']} search: {search['trials']} trial(s) of {search['folds']}-fold "
            f"cross-validation ({search['stopped']}); best trial {search['best_trial']}, "
            f"{search['metric']} {search['best_mean_score']:.4f}, {search['best_params']}"
        )
    if report.run is not None:
        console.print(f"run [bold]{report.run.run_id}[/] (flywheel runs list {v.name})")
    _print_metrics(v.metrics, v.parity.model_dump() if v.parity else {})


def _print_metrics(metrics: dict[str, float], parity: dict[str, Any]) -> None:
    table = Table("metric", "value", title="holdout")
    for key, value in sorted(metrics.items()):
        table.add_row(key, f"{value:.4f}")
    for key in ("precision", "label_agreement", "max_abs_diff", "p99_abs_diff", "passed"):
        if key in parity and parity[key] is not None:
            table.add_row(f"parity.{key}", str(parity[key]))
    console.print(table)


@app.command()
@handle_errors
def register(
    name: ModelName,
    onnx: Annotated[Path, typer.Option("--onnx", help="The ONNX model file.")],
    schema: Annotated[
        Path, typer.Option("--schema", help="Features, task, outputs and classes (YAML/JSON).")
    ],
    reference: Annotated[
        Path, typer.Option("--reference", help="A sample of inputs (CSV or Parquet).")
    ],
    expected: Annotated[
        Path | None,
        typer.Option("--expected", help="The model's outputs on the sample, to check parity."),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r")] = None,
) -> None:
    """Register an ONNX model trained elsewhere: validate, run, profile, request approval."""
    with console.status("checking") as status:
        report = _sdk().register_onnx(
            name,
            onnx,
            schema=schema,
            reference=reference,
            expected=expected,
            reason=reason,
            progress=status.update,
        )
    v = report.version
    imported = v.lineage.imported
    console.print(
        f"registered [bold]{v.name}[/] version [bold]{v.version}[/] ({v.status}); "
        f"artifact sha256 {v.artifact.sha256[:12]}…, {v.artifact.size_bytes:,} bytes"
    )
    rows = imported.reference_rows if imported is not None else 0
    checked = "parity checked" if v.parity is not None else "no expected outputs: parity unchecked"
    console.print(
        f"imported: reference profile from {rows:,} sample rows, {checked}; "
        "training data, code and seed unknown (not reproducible)",
        highlight=False,
    )
    if v.parity is not None:
        _print_metrics(v.metrics, v.parity.model_dump())


@app.command()
@handle_errors
def reproduce(name: ModelName, version: VersionNumber) -> None:
    """Re-train a version from its lineage and report whether results match."""
    with console.status(f"re-training {name} v{version}"):
        report = _sdk().reproduce(name, version)
    table = Table("check", "result")
    for key, value in report.model_dump().items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    console.print(table)
    if not report.reproduced:
        raise typer.Exit(EXIT_FAILURE)


# -- schemas -------------------------------------------------------------------------------------
@schema_app.command("infer")
@handle_errors
def schema_infer(
    source: Annotated[str, typer.Argument(help="A .csv or .parquet file, or s3://bucket/key.")],
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="The label column (left out).")
    ] = None,
) -> None:
    """Print the features: block training would infer from a table, for review."""
    from flywheel.training.schema_inference import features_yaml, summarize

    fetch = (lambda uri: _sdk().fetch(uri)) if source.startswith("s3://") else None
    summaries = summarize(source, target=target, fetch=fetch)
    typer.echo(features_yaml(summaries, source=source), nl=False)


# -- governance ----------------------------------------------------------------------------------
@app.command()
@handle_errors
def retrain(
    name: ModelName,
    reason: Reason = None,
    code_version: Annotated[
        str | None,
        typer.Option("--code-version", help="The git commit the run is for (its lineage)."),
    ] = None,
) -> None:
    """Ask for a training run of a configured model (you will not approve its candidate)."""
    receipt = _sdk().retrain(name, reason=reason or "", code_version=code_version)
    console.print(
        f"training of {receipt.get('model_name', name)} requested by "
        f"{receipt.get('requested_by', '?')} (event {receipt.get('event_id', '?')}); "
        "the candidate will wait for another approver",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
@handle_errors
def approve(name: ModelName, version: VersionNumber, reason: Reason = None) -> None:
    """Approve a version that is pending approval."""
    v = _sdk().approve(name, version, reason=reason or "")
    console.print(f"{v.name} v{v.version} is now {v.status}")


@app.command()
@handle_errors
def reject(name: ModelName, version: VersionNumber, reason: Reason = None) -> None:
    """Reject a candidate or a version pending approval."""
    v = _sdk().reject(name, version, reason=reason or "")
    console.print(f"{v.name} v{v.version} is now {v.status}")


@app.command()
@handle_errors
def promote(name: ModelName, version: VersionNumber, reason: Reason = None) -> None:
    """Make an approved version the champion (the previous champion is archived)."""
    done = _sdk().promote(name, version, reason=reason or "")
    status = done.version.status
    console.print(f"{name} v{version} is now champion ({status}); {_live(name, done)}")


@app.command()
@handle_errors
def rollback(name: ModelName, reason: Reason = None) -> None:
    """Point the champion back at the previous production version."""
    done = _sdk().rollback(name, reason=reason or "")
    console.print(f"{name} champion is v{done.version.version} again; {_live(name, done)}")


def _live(name: str, done: ChangeResult) -> str:
    if done.lambda_version is None:
        return f"no inference function is deployed for {name}: only the registry changed"
    return f"alias live serves Lambda version {done.lambda_version} alone"


# -- reads ---------------------------------------------------------------------------------------
@models_app.command("list")
@handle_errors
def models_list(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    page_token: Annotated[str | None, typer.Option()] = None,
) -> None:
    """List registered models."""
    page = _sdk().list_models(limit=limit, page_token=page_token)
    table = Table("model", "latest", "champion", "challenger", "created by")
    for m in page.items:
        table.add_row(
            m.name,
            str(m.latest_version),
            str(m.champion or "-"),
            str(m.challenger or "-"),
            m.created_by,
        )
    console.print(table)
    if page.next_token:
        console.print(f"next page: --page-token {page.next_token}")


@models_app.command("show")
@handle_errors
def models_show(
    name: ModelName,
    version: Annotated[
        str | None, typer.Option(help="A version number or alias; all versions by default.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model's versions, or one version in full."""
    sdk = _sdk()
    if version is not None:
        v = sdk.get_version(name, version)
        if as_json:
            sys.stdout.write(v.model_dump_json(indent=2) + "\n")
            return
        console.print_json(v.model_dump_json())
        return
    model = sdk.get_model(name)
    versions = sdk.list_versions(name, limit=100).items
    if as_json:
        write_listing("model", model, versions)
        return
    table = Table(
        "version", "status", "metrics", "parity", "top features", "created", "by", title=name
    )
    for v in versions:
        metrics = ", ".join(f"{k}={val:.3f}" for k, val in sorted(v.metrics.items())[:3])
        parity = f"{v.parity.precision} max|Δ|={v.parity.max_abs_diff:.1e}" if v.parity else "-"
        # Global importance: mean |SHAP| on the holdout, largest first (ADR 71).
        top = ", ".join(f"{k} {val:.3g}" for k, val in list(v.importance.items())[:3]) or "-"
        table.add_row(
            version_label(model, v.version),
            str(v.status),
            metrics,
            parity,
            top,
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            v.created_by,
        )
    console.print(table)


@models_app.command("card")
@handle_errors
def models_card(
    name: ModelName,
    version: Annotated[
        str | None,
        typer.Option(help="A version number or alias (default: the champion, else the latest)."),
    ] = None,
    as_html: Annotated[
        bool, typer.Option("--html", help="A self-contained HTML page instead of Markdown.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the card to this file, not to stdout."),
    ] = None,
) -> None:
    """A version's model card: owner and intended use, training data and lineage, holdout
    and per-group metrics, ONNX parity, global importance, limitations, approval history."""
    from flywheel.workflows.card_pages import render_html, render_markdown

    card = _sdk().model_card(name, version)
    text = render_html(card) if as_html else render_markdown(card)
    if output is not None:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as err:
            raise _fail(f"output: cannot write {output}: {err.strerror or err}") from None
        console.print(
            f"model card of {name} v{card.overview.version}: {output}",
            highlight=False,
            soft_wrap=True,
        )
    elif not as_html and console.is_terminal:
        from rich.markdown import Markdown

        console.print(Markdown(text))
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if card.chain is not None and not card.chain.ok:
        raise _fail(
            f"the audit chain of {name} does not verify ({card.chain.problem}): the card's "
            f"approval history cannot be trusted; see `flywheel audit verify {name}`",
            EXIT_TAMPERED,
        )


@models_app.command("configure")
@handle_errors
def models_configure(
    name: ModelName,
    config: Annotated[
        Path, typer.Argument(help="Model config: training, gate, retraining, approval.")
    ],
    reason: Reason = None,
) -> None:
    """Store a model's workflow config (what the training workflow runs); audited."""
    if not config.is_file():
        raise _fail(f"config file {config} does not exist")
    stored = _sdk().configure_model(name, config, reason=reason)
    gate = stored.config.gate
    console.print(
        f"{name}: config revision {stored.revision} (sha256 {stored.sha256[:12]}…); "
        f"gate {gate.metric} {'>=' if gate.prefers_higher else '<='} champion "
        f"{'+' if gate.prefers_higher else '-'} {gate.min_improvement}, "
        f"cooldown {stored.config.retraining.cooldown_minutes:g} min"
    )


# -- audit ---------------------------------------------------------------------------------------
@audit_app.command("show")
@handle_errors
def audit_show(
    name: ModelName,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Print a model's audit trail."""
    entries = _sdk().audit_entries(name)
    if as_json:
        for e in entries:
            sys.stdout.write(e.model_dump_json() + "\n")
        return
    table = Table("seq", "when", "actor", "action", "version", "reason", "hash", title=name)
    for e in entries:
        table.add_row(
            str(e.seq),
            e.timestamp,
            e.actor,
            str(e.action),
            str(e.version or "-"),
            e.reason or "",
            e.hash[:12],
        )
    console.print(table)


@audit_app.command("verify")
@handle_errors
def audit_verify(
    name: ModelName,
    anchor: Annotated[
        str | None,
        typer.Option(help="A head recorded earlier (SEQ:HASH from `flywheel audit head`)."),
    ] = None,
) -> None:
    """Check the hash chain; exit code 3 and the first broken entry when it was tampered with."""
    from flywheel.audit.models import ChainHead

    try:
        expected = ChainHead.parse(anchor, name) if anchor else None
    except (ValueError, ValidationError):
        raise _fail("--anchor must look like SEQ:HASH (64 hex digits)") from None
    report = _sdk().verify(name, anchor=expected)
    if report.ok:
        head = report.head
        console.print(
            f"[green]OK[/] {name}: {report.entries_checked} entries, chain intact"
            + (f", head {head}" if head else ""),
            highlight=False,
        )
        console.print(f"{report.evidence}; registry matches the trail", highlight=False)
        return
    for problem in report.problems:
        err_console.print(f"[red]BROKEN[/] entry {problem.seq}: {problem.kind}: {problem.message}")
    raise typer.Exit(EXIT_TAMPERED)


@audit_app.command("anchor")
@handle_errors
def audit_anchor() -> None:
    """Copy every chain's signed head to the anchors bucket now (the scheduled job's work)."""
    outcomes = _sdk().anchor()
    tampered = [o for o in outcomes if o.result == "tampered"]
    for o in outcomes:
        note = f" ({o.problem})" if o.problem else ""
        console.print(f"{o.stream}: {o.result} at entry {o.seq}{note}", highlight=False)
    if tampered:
        raise typer.Exit(EXIT_TAMPERED)


@audit_app.command("head")
@handle_errors
def audit_head(name: ModelName) -> None:
    """Print the chain head (SEQ:HASH); keep it elsewhere to detect truncation later."""
    head = _sdk().audit_head(name)
    if head is None:
        raise _fail(f"model {name!r} has no audit entries")
    sys.stdout.write(f"{head}\n")


@audit_app.command("champion-at")
@handle_errors
def audit_champion_at(
    name: ModelName,
    when: Annotated[str, typer.Argument(help="ISO 8601 time, e.g. 2026-01-31T12:00:00Z.")],
) -> None:
    """Which version was champion at a given time, replayed from the audit trail."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"{when!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    sdk = _sdk()
    sdk.get_model(name)
    version = sdk.registry.champion_at(name, moment)
    sys.stdout.write(f"{version if version is not None else 'none'}\n")


# -- inference -----------------------------------------------------------------------------------
@app.command()
@handle_errors
def predict(
    name: ModelName,
    input_file: Annotated[
        str, typer.Option("--input", "-i", help="JSON file with a record or a list; - for stdin.")
    ] = "-",
    version: Annotated[str, typer.Option(help="Version number or alias.")] = "champion",
) -> None:
    """Score records locally with the registered ONNX model (SHA-256 verified)."""
    raw = sys.stdin.read() if input_file == "-" else _read_file(input_file)
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"input is not valid JSON (line {exc.lineno})") from None
    if isinstance(payload, dict) and "records" in payload:
        payload = payload["records"]
    records = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(r, dict) for r in records):
        raise InvalidInputError("each record must be a JSON object of feature: value")
    result = _sdk().predict(name, records, version=version)
    sys.stdout.write(json.dumps(result.__dict__) + "\n")


@app.command()
@handle_errors
def serve(
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m", help="Model to serve (repeat); default: all with a champion."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8080,
    canary_weight: Annotated[
        float, typer.Option(help="Share of requests for the challenger (canary).", min=0, max=1)
    ] = 0.1,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Run the challenger in shadow, not as a canary.")
    ] = False,
    functions_dir: Annotated[
        Path | None, typer.Option(help="The functions/ code asset (default: ./functions).")
    ] = None,
) -> None:
    """Serve POST /v1/models/{name}/predict on localhost through the real Lambda handler.

    Each model's champion takes the traffic, the challenger (if any) a canary share
    (alias weights, as in AWS), or a shadow copy of every request with --shadow. A
    running experiment (flywheel experiment start) applies as it does in AWS.
    """
    from flywheel.local.api_gateway import make_server
    from flywheel.local.serving import build_gateway

    gateway, routes = build_gateway(
        _sdk(),
        models=models or None,
        canary_weight=canary_weight,
        shadow=shadow,
        functions_dir=functions_dir,
    )
    if not routes:
        raise _fail("no model has a champion yet: promote a version first")
    server = make_server(gateway, host, port)
    address = f"http://{host}:{server.server_address[1]}"
    experiments = _sdk().platform.experiments()
    for name, targets in routes.items():
        split = ", ".join(
            f"v{t.version} {t.weight:.0%}" + (" +shadow" if t.environment else "") for t in targets
        )
        found = experiments.current(name)
        running = (
            f"; experiment {found.id}: {found.kind} of v{found.version}"
            if found is not None and found.running
            else ""
        )
        console.print(f"POST {address}/v1/models/{name}/predict  ({split}{running})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.server_close()


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        raise InvalidInputError(f"cannot read {path}") from None


# -- local runtime -------------------------------------------------------------------------------
@local_app.command("start")
def local_start() -> None:
    """Start the local moto server (commands start it on demand anyway)."""
    from flywheel.local import server
    from flywheel.settings import Settings

    settings = Settings()
    console.print(
        f"moto server at {server.ensure_running(settings.local_port, settings.local_home)}"
    )
    api_url = server.control(settings.local_port, "/resources").get("api_url")
    if api_url:
        console.print(f"REST API at {api_url} (SigV4 with credentials from the local IAM/STS)")


@local_app.command("stop")
def local_stop() -> None:
    """Stop the local moto server; local state is discarded."""
    from flywheel.local import server
    from flywheel.settings import Settings

    stopped = server.stop(Settings().local_home)
    console.print("stopped" if stopped else "no local server was running")


@local_app.command("notifications")
@handle_errors
def local_notifications(
    as_json: Annotated[
        bool, typer.Option("--json", help="The records as the runtime keeps them.")
    ] = False,
) -> None:
    """What the stage's notifications topic received (alarm and event notifications):
    the local runtime records each message, since moto sends no email."""
    from flywheel.local import server
    from flywheel.local.runtime import readable
    from flywheel.settings import Settings

    settings = Settings()
    if settings.backend != "local":
        raise _fail("notifications are recorded by the local runtime; unset FLYWHEEL_BACKEND")
    if not server.is_running(settings.local_port):
        raise _fail(f"no local runtime answers on port {settings.local_port}; run flywheel demo")
    found = server.control(settings.local_port, "/notifications")["notifications"]
    if as_json:
        console.print_json(data=found)
        return
    if not found:
        console.print("no notifications yet")
    for notice in found:
        console.rule(f"{notice['time']}  {notice['topic']}  {notice['detail_type']}", align="left")
        # soft_wrap: a long command stays one line, ready to copy
        console.print(readable(notice["message"]), highlight=False, markup=False, soft_wrap=True)


# -- projects ------------------------------------------------------------------------------------
ProjectFile = Annotated[Path, typer.Argument(help="The project file.")]


@project_app.command("check")
@handle_errors
def project_check(path: ProjectFile = Path("flywheel.yaml")) -> None:
    """Validate a project file and every model config it names (what synth checks)."""
    from flywheel.project import load_project

    project = load_project(path).project
    stages = ", ".join(
        f"{s.name} ({len(project.models_in(s.name))} model(s))" for s in project.stages
    )
    console.print(f"{path}: project {project.project} is valid; stages {stages}", highlight=False)


@project_app.command("apply")
@handle_errors
def project_apply(
    path: ProjectFile = Path("flywheel.yaml"),
    stage: Annotated[str, typer.Option(help="The stage whose models' configs to store.")] = "dev",
    reason: Reason = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would change; store nothing.")
    ] = False,
    retrain_changed: Annotated[
        bool,
        typer.Option(
            "--retrain-changed", help="Ask for a training run of each model whose config changed."
        ),
    ] = False,
    code_version: Annotated[
        str | None,
        typer.Option(help="The commit the configs come from (the runs' lineage records it)."),
    ] = None,
) -> None:
    """Store the workflow config of each model the project serves in a stage (what CI runs
    after a deploy): only those that changed; audited as ``model_configured``. With
    ``--retrain-changed``, a changed config also starts a training run of its model."""
    from flywheel.project import load_project
    from flywheel.sdk import Flywheel

    loaded = load_project(path)
    try:
        loaded.project.stage(stage)
    except KeyError as err:
        raise _fail(f"stage: {err.args[0]}") from None
    aws = os.environ.get("FLYWHEEL_BACKEND") == "aws"
    sdk = Flywheel.for_stage(stage) if aws else _sdk()
    changes = sdk.apply_project(loaded, stage, reason=reason or "", dry_run=dry_run)
    for change in changes:
        digest = f" sha256 {change.sha256[:12]}…" if change.sha256 else ""
        revision = f" revision {change.revision}" if change.revision is not None else ""
        console.print(f"{change.model}: {change.action}{revision}{digest}", highlight=False)
    stored = [c.model for c in changes if c.action in ("configured", "changed")]
    verb = "would store" if dry_run else "stored"
    console.print(f"{stage}: {verb} {len(stored)} config(s) of {len(changes)}", highlight=False)
    if retrain_changed and not dry_run:
        for name in stored:
            receipt = sdk.retrain(
                name, reason=f"config changed: {reason}", code_version=code_version
            )
            console.print(f"{name}: training run asked for ({receipt['event_id']})",
                          highlight=False)  # fmt: skip


@project_app.command("ci")
@handle_errors
def project_ci(
    path: ProjectFile = Path("flywheel.yaml"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a CI file is out of date.")
    ] = False,
) -> None:
    """Write the CI files the project file's `ci` asks for (GitHub Actions workflows)."""
    from flywheel.project import load_project
    from flywheel.project.ci import stale_files, write_ci_files

    project = load_project(path).project
    root = path.parent
    if project.ci is not None and project.ci.provider == "codepipeline":
        console.print(
            "ci: codepipeline: FlywheelPipeline is synthesized from this file and updates "
            "itself; no CI files to write",
            highlight=False,
        )
        return
    if check:
        stale = stale_files(project, root)
        if stale:
            raise _fail(f"{', '.join(stale)} out of date with {path}: run `flywheel project ci`")
        console.print(f"CI files are up to date with {path}", highlight=False)
        return
    for written in write_ci_files(project, root):
        console.print(f"wrote {written}", highlight=False)


@app.command()
@handle_errors
def init(
    folder: Annotated[Path, typer.Argument(help="A new (or empty) folder for the project.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Project name (default: the folder's name).")
    ] = None,
    model: Annotated[str, typer.Option(help="The first model's name.")] = "iris",
    ci: Annotated[
        str,
        typer.Option(
            "--ci", help="CI/CD: github (Actions workflows), codepipeline (CDK Pipelines), none."
        ),
    ] = "github",
) -> None:
    """Scaffold a project a team owns: flywheel.yaml, a model, cdk.json, tests, CI, README."""
    from flywheel.project.scaffold import Scaffold, scaffold

    project = name or folder.resolve().name.lower().replace("-", "")[:12]
    written = scaffold(
        folder,
        Scaffold(
            project=project,
            model=model,
            flywheel_requirement=_requirement(),
            ci=ci,  # type: ignore[arg-type]  # scaffold() refuses anything else, in one line
        ),
    )
    console.print(f"wrote {len(written)} files to {folder}; next: see {folder / 'README.md'}")


def _requirement() -> str:
    """How this Flywheel was installed, as a requirement line (a path, a URL, a wheel)."""
    from importlib import metadata

    try:
        direct = metadata.distribution("flywheel-mlops").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    url = json.loads(direct).get("url") if direct else None
    return f"flywheel-mlops[local] @ {url}" if url else "flywheel-mlops[local]"


@app.command()
@handle_errors
def demo(
    report_dir: Annotated[Path, typer.Option(help="Where to write the run report.")] = Path(
        "reports"
    ),
    project: Annotated[
        Path | None,
        typer.Option(help="A team's project file: run its own models instead of the example."),
    ] = None,
    stage: Annotated[str, typer.Option(help="The project's stage to run locally.")] = "dev",
) -> None:
    """The whole lifecycle on the local runtime (no AWS account): train → approve → canary
    → serve → drift → retrain, through the very workflows the CDK app synthesizes.

    With ``--project``, the project's own models: onboard → train → approve → promote →
    predict → audit verify. The demo starts from a clean slate: a local runtime already
    running (an earlier demo, say) is restarted and its state discarded."""

    from flywheel.local import server
    from flywheel.local.lifecycle import MODEL, ServerDriver, run_demo
    from flywheel.settings import Settings

    settings = Settings()
    if settings.backend != "local":
        raise _fail("the demo runs on the local runtime; unset FLYWHEEL_BACKEND")
    if project is not None:
        from flywheel.project import load_project

        loaded = load_project(project)
        try:
            loaded.project.stage(stage)
        except KeyError as err:
            raise _fail(f"stage: {err.args[0]}") from None
        os.environ["FLYWHEEL_PROJECT"] = str(project.resolve())
        os.environ["FLYWHEEL_LOCAL_STAGE"] = stage
        _project_demo(settings, loaded, stage)
        return
    started = time.perf_counter()
    if server.is_running(settings.local_port):
        console.print("restarting the running local runtime: the demo starts from a clean slate")
    with console.status("starting the local runtime (synthesize, provision)"):
        try:
            server.restart(settings.local_port, settings.local_home)
        except RuntimeError as err:
            raise _fail(str(err)) from None
    console.print(
        f"[green]✓[/] local runtime on {server.endpoint(settings.local_port)} "
        f"[dim]({time.perf_counter() - started:.1f}s)[/]"
    )
    with console.status("running") as status:

        def progress(message: str) -> None:
            if message.startswith("✓"):
                console.print(f"[green]✓[/]{message[1:]}", highlight=False)
            else:
                status.update(message)

        run = run_demo(ServerDriver(settings.local_port), progress=progress, report_dir=report_dir)
    table = Table("stage", "seconds", "result", title=f"flywheel demo: {MODEL}")
    for step in run.stages:
        table.add_row(step.name, f"{step.seconds:.2f}", step.result)
    console.print(table)
    total = time.perf_counter() - started
    console.print(
        f"total {total:.1f}s; run report {report_dir / 'demo.html'}; audit chain "
        + ("[green]intact[/]" if run.verified else "[red]BROKEN[/]")
        + f" ({run.facts.get('audit_evidence', 'not checked')})",
        highlight=False,
    )
    card = run.facts.get("model_card")
    if card:
        console.print(f"model card of {MODEL} v{card['version']}: {card['html']}", soft_wrap=True)
    console.print(
        f"next: [bold]flywheel models show {MODEL}[/], [bold]flywheel models card {MODEL}[/], "
        f"[bold]flywheel audit show {MODEL}[/], [bold]flywheel audit verify {MODEL}[/], "
        "[bold]flywheel local stop[/]"
    )
    if not run.verified:
        raise typer.Exit(EXIT_FAILURE)


def _project_demo(settings: Any, project: Any, stage: str) -> None:
    from flywheel.local import server
    from flywheel.local.lifecycle import ServerDriver
    from flywheel.local.project_demo import run_project_demo

    started = time.perf_counter()
    with console.status("starting the local runtime (synthesize the project, provision)"):
        try:
            server.restart(settings.local_port, settings.local_home)
        except RuntimeError as err:
            raise _fail(str(err)) from None
    console.print(f"[green]✓[/] local runtime on {server.endpoint(settings.local_port)}")
    with console.status("running") as status:

        def progress(message: str) -> None:
            if message.startswith("✓"):
                console.print(f"[green]✓[/]{message[1:]}", highlight=False)
            else:
                status.update(message)

        driver = ServerDriver(settings.local_port)
        run = run_project_demo(driver, project, stage=stage, progress=progress)
    console.print(
        f"project {project.project.project} ({stage}): {len(run.stages)} steps in "
        f"{time.perf_counter() - started:.1f}s; audit "
        + ("[green]intact[/]" if run.verified else "[red]BROKEN[/]"),
        highlight=False,
    )
    if not run.verified:
        raise typer.Exit(EXIT_FAILURE)


def hoist_actor(argv: list[str]) -> list[str]:
    """``argv`` with ``--actor X`` / ``--actor=X`` moved before the subcommand.

    The option belongs to the ``flywheel`` group, so it works anywhere on the line.

    Examples
    --------
    >>> hoist_actor(["approve", "churn", "3", "--actor", "ana", "-r", "ok"])
    ['--actor', 'ana', 'approve', 'churn', '3', '-r', 'ok']
    >>> hoist_actor(["models", "list", "--actor=ana"])
    ['--actor=ana', 'models', 'list']
    """
    rest: list[str] = []
    hoisted: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            rest.extend(["--", *args])
            break
        if arg == "--actor":
            hoisted.extend([arg, next(args, "")])
        elif arg.startswith("--actor="):
            hoisted.append(arg)
        else:
            rest.append(arg)
    return hoisted + rest


def main() -> None:
    app(args=hoist_actor(sys.argv[1:]), prog_name="flywheel")
