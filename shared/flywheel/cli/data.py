"""``flywheel data validate CONFIG``: check a training set before it trains (CI for data).

CONFIG is a model config (``flywheel models configure``; its ``data:`` policy applies) or a
training config (``flywheel train``; the default policy applies). The data is the config's
source, or ``--data FILE``. The previous training set's profile comes from the registry
(the champion's, else the latest version's) when one is reachable; otherwise only the
checks that need no reference run, and the output says so. Exit 1 when an expectation
that is not a warning fails.
"""

from __future__ import annotations

import json
from pathlib import Path  # noqa: TC003 (typer reads the annotations at run time)
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

if TYPE_CHECKING:
    from flywheel.training.datasets import Dataset
    from flywheel.training.validation import DataValidationReport
    from flywheel.workflows.config import ModelConfig
    from flywheel.workflows.data_checks import Reference

data_app = typer.Typer(help="Check training data before it trains.", no_args_is_help=True)

_STYLE = {"passed": "green", "failed": "bold red", "warning": "yellow", "skipped": "dim"}


@data_app.command("validate")
def validate(
    config: Annotated[Path, typer.Argument(help="Model or training config (YAML, JSON, TOML).")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Check this .csv/.parquet instead of the source.")
    ] = None,
    reference: Annotated[
        bool, typer.Option(help="Compare with the registered model's previous training set.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a training set against its schema and the previous training set's profile."""
    from flywheel.cli.app import EXIT_FAILURE, handle_errors

    def run() -> None:
        report = _validate(config, data, use_registry=reference)
        _print(report, as_json=as_json)
        if not report.passed:
            raise typer.Exit(EXIT_FAILURE)

    handle_errors(run)()


def _model_config(path: Path) -> ModelConfig:
    """A model config, or a training config wrapped in one with the default data policy."""
    from flywheel.errors import ConfigError
    from flywheel.training.config import _read_mapping, load_config
    from flywheel.workflows.config import (
        GatePolicy,
        ModelConfig,
        load_model_config,
        metrics_for,
    )

    if not path.is_file():
        raise ConfigError(f"config: file {path} does not exist", field="config")
    if "training" in _read_mapping(path):
        return load_model_config(path)
    training = load_config(path)
    gate = GatePolicy(metric=metrics_for(training.task)[0])
    return ModelConfig(name=training.model, training=training, gate=gate)


def _dataset(config: ModelConfig, data: Path | None) -> tuple[Dataset, dict[str, str]]:
    from flywheel.errors import ConfigError
    from flywheel.training.datasets import load_dataset, parse_source, read_source
    from flywheel.training.validation import load_checked

    dataset_config = config.training.dataset
    source = str(data) if data is not None else dataset_config.source
    if data is None and dataset_config.feature_view is not None:
        raise ConfigError(
            "dataset.feature_view: check the joined table with --data FILE", field="--data"
        )
    try:
        kind, _, file_format = parse_source(source)
    except ValueError as err:
        raise ConfigError(f"--data: {err}", field="--data") from None
    if kind == "sklearn":
        return load_dataset(source, features=dataset_config.features, task=config.training.task), {}
    if dataset_config.target is None:
        raise ConfigError("dataset.target: name the target column", field="dataset.target")
    fetch = None
    if kind == "s3":
        from flywheel.cli.app import _sdk

        fetch = _sdk().fetch
    assert file_format is not None
    return load_checked(
        read_source(source, fetch=fetch),
        file_format=file_format,
        source=source,
        target=dataset_config.target,
        features=dataset_config.features,
        task=config.training.task,
        types=config.training.declared_types,
    )


def _reference(name: str, *, use_registry: bool) -> Reference:
    """The registered model's previous training set, or why there is none (never starts the
    local runtime)."""
    from flywheel.composition import environment_settings
    from flywheel.errors import FlywheelError
    from flywheel.local.server import is_running
    from flywheel.settings import Settings
    from flywheel.workflows.data_checks import Reference, previous_reference

    if not use_registry:
        return Reference(None, "--no-reference")
    settings = environment_settings(Settings)
    local = settings.backend == "local" and settings.endpoint_url is None
    if local and not is_running(settings.local_port):
        return Reference(None, "no registry reachable (the local runtime is not running)")
    from flywheel.cli.app import _sdk

    try:
        sdk = _sdk()
        return previous_reference(sdk.registry, sdk.artifacts, name)
    except FlywheelError as err:
        return Reference(None, f"the registry could not be read ({err})")


def _validate(config_path: Path, data: Path | None, *, use_registry: bool) -> DataValidationReport:
    from flywheel.workflows.data_checks import validate_for_model

    config = _model_config(config_path)
    dataset, problems = _dataset(config, data)
    reference = _reference(config.name, use_registry=use_registry)
    return validate_for_model(dataset, config, reference, type_problems=problems)


def _print(report: DataValidationReport, *, as_json: bool) -> None:
    from flywheel.cli.app import console

    if as_json:
        document = {**report.model_dump(mode="json"), "passed": report.passed}
        typer.echo(json.dumps(document, indent=2))
        return
    table = Table(
        "expectation",
        "status",
        "observed",
        "threshold",
        title=f"data validation of {report.model}: {report.dataset_id} ({report.rows:,} rows)",
    )
    for result in report.results:
        status = (
            "warning"
            if result.status == "failed" and result.severity == "warning"
            else result.status
        )
        table.add_row(
            result.name, f"[{_STYLE[status]}]{status}[/]", result.observed, result.threshold
        )
    console.print(table)
    console.print(f"reference: {report.reference or 'none'}", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(report.summary(), highlight=False, soft_wrap=True)
