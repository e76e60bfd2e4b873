"""``flywheel stage``: promote a registered version from one stage's registry to another's.

``flywheel stage promote NAME VERSION --from dev --to prod`` copies it (bytes re-verified
in the target), registers it there as a candidate and asks for its approval; both
trails name each other's entry. ``flywheel stage verify-promotion NAME --from dev --to
prod`` verifies both trails and follows every reference between them (ADR 65).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Callable

    from flywheel.sdk import Flywheel
    from flywheel.workflows.stage_promotion import PromotionOutcome

stage_app = typer.Typer(
    help="Stages: promote model versions from one stage to another.", no_args_is_help=True
)

ModelName = Annotated[str, typer.Argument(help="Model name.")]
FromStage = Annotated[str, typer.Option("--from", help="The stage the version is registered in.")]
ToStage = Annotated[str, typer.Option("--to", help="The stage to promote it into.")]
ToRoleArn = Annotated[
    str | None,
    typer.Option(
        "--to-role-arn",
        envvar="FLYWHEEL_TO_ROLE_ARN",
        help="The target stage's promotion role (another account): assumed first.",
    ),
]
#: ``verify-promotion``'s exit code when a trail or a cross-reference is broken.
EXIT_BROKEN = 3


def _cli(command: Callable[[], None]) -> None:
    from flywheel.cli.app import handle_errors

    handle_errors(command)()


def _stages(source: str, target: str, role_arn: str | None) -> tuple[Flywheel, Flywheel]:
    from flywheel.cli.app import STATE
    from flywheel.errors import InvalidInputError
    from flywheel.sdk import Flywheel

    if source == target:
        raise InvalidInputError("to: a stage cannot promote to itself", field="to")
    return (
        Flywheel.for_stage(source, actor=STATE.actor),
        Flywheel.for_stage(target, role_arn=role_arn, actor=STATE.actor, target=True),
    )


def _table(done: PromotionOutcome) -> Table:
    table = Table(title=f"{done.name}: {done.source_stage} → {done.target_stage}")
    table.add_column("")
    table.add_column(done.source_stage)
    table.add_column(done.target_stage)
    table.add_row("version", str(done.source_version), str(done.version.version))
    table.add_row("status there", "(unchanged)", str(done.version.status))
    table.add_row(
        "artifact sha256",
        done.version.artifact.sha256[:16] + "…",
        done.version.artifact.sha256[:16] + "… (re-hashed from the copy)",
    )
    table.add_row(
        "audit entry",
        f"#{done.out_entry.seq} {done.out_entry.action} → {done.target_stage} #{done.in_entry.seq}",
        f"#{done.in_entry.seq} {done.in_entry.action} ← {done.source_stage} version "
        f"{done.source_version}",
    )
    return table


@stage_app.command("promote")
def promote(
    name: ModelName,
    version: Annotated[int, typer.Argument(help="Version number in the source stage.", min=1)],
    source: FromStage,
    target: ToStage,
    role_arn: ToRoleArn = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Copy a version into another stage: a candidate there, waiting for its approval."""

    def run() -> None:
        from flywheel.cli.app import console

        dev, prod = _stages(source, target, role_arn)
        done = dev.promote_to_stage(
            name, version, target=prod, from_stage=source, to_stage=target, reason=reason
        )
        if as_json:
            typer.echo(json.dumps({
                "model": name, "from": {"stage": source, "version": version,
                                        "entry": done.out_entry.model_dump(mode="json")},
                "to": {"stage": target, "version": done.version.version,
                       "status": str(done.version.status),
                       "entry": done.in_entry.model_dump(mode="json")},
                "done": [str(step) for step in done.done],
            }))  # fmt: skip
            return
        console.print(_table(done))
        if not done.done:
            console.print("already promoted: nothing to do")
        console.print(
            f"{target} version {done.version.version} waits for approval there: "
            f"flywheel approve {name} {done.version.version} -r REASON (as {target}'s approver)"
        )

    _cli(run)


@stage_app.command("verify-promotion")
def verify_promotion(
    name: ModelName, source: FromStage, target: ToStage, role_arn: ToRoleArn = None
) -> None:
    """Verify both trails and every reference between them; exit code 3 if one is broken."""

    def run() -> None:
        from flywheel.cli.app import console, err_console

        dev, prod = _stages(source, target, role_arn)
        problems: list[str] = []
        for stage, sdk in ((source, dev), (target, prod)):
            report = sdk.verify(name)
            problems.extend(f"{stage}: {p.message}" for p in report.problems)
        check = dev.verify_promotions(name, target=prod, from_stage=source, to_stage=target)
        problems.extend(check.problems)
        for number, landed in check.promotions:
            console.print(f"{source} version {number} → {target} version {landed}")
        if problems:
            for problem in problems:
                err_console.print(f"[bold red]broken:[/] {problem}", soft_wrap=True)
            raise typer.Exit(EXIT_BROKEN)
        console.print(
            f"both trails intact; {len(check.promotions)} promotion(s) of {name} from "
            f"{source} to {target}, each named by both trails"
        )

    _cli(run)
