"""``flywheel prompts``: prompt versions under the registry's governance (ADR 78).

``register FILE`` validates a prompt spec, stores it and asks for its approval;
``list``, ``show NAME [--version N]`` and ``diff NAME A B`` read; ``approve``,
``reject``, ``promote`` and ``rollback`` move it through the same lifecycle, approval
rules and audit trail as a model. Approving a version starts its promotion workflow (a
canary, judged by the prompt's alarms); ``promote`` and ``rollback`` change the champion
by hand, never while a canary runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path  # noqa: TC003 (typer reads the annotations at run time)
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

if TYPE_CHECKING:
    from flywheel.llm.catalog import PromptDiff
    from flywheel.llm.gate import SideSummary
    from flywheel.workflows.records import PromptEvaluationDoc

prompts_app = typer.Typer(
    help="Prompts: versioned, approved and audited like models.", no_args_is_help=True
)

PromptName = Annotated[str, typer.Argument(help="Prompt name.")]
VersionNumber = Annotated[int, typer.Argument(help="Version number.", min=1)]
Reason = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why (required; recorded in the audit trail).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@prompts_app.command("register")
def prompts_register(
    spec: Annotated[Path, typer.Argument(help="Prompt spec (YAML or JSON).")],
    reason: Reason = None,
) -> None:
    """Validate a prompt spec, store it, register a version and ask for its approval."""
    from flywheel.cli.app import _fail, _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        if not spec.is_file():
            raise _fail(f"prompt file {spec} does not exist")
        done = _sdk().register_prompt(spec, reason=reason)
        v = done.version
        head = "registered" if done.created else "unchanged: the latest version holds this spec;"
        console.print(
            f"{head} {v.name} v{v.version} ({v.status}), sha256 {v.artifact.sha256[:12]}…, "
            f"{done.spec.provider} {done.spec.model_id}",
            highlight=False,
            soft_wrap=True,
        )
        evaluation = done.spec.evaluation
        if evaluation is not None and evaluation.sha256 is not None:
            console.print(
                f"evaluation set: {evaluation.items} items, sha256 {evaluation.sha256[:12]}… "
                "(the promotion workflow's gate answers it before the canary)",
                highlight=False,
                soft_wrap=True,
            )
        if done.approval_id and v.status == "pending_approval":
            console.print(
                f"approval {done.approval_id} waits for someone else: "
                f"flywheel prompts approve {v.name} {v.version} -r REASON",
                highlight=False,
                soft_wrap=True,
            )

    run()


@prompts_app.command("list")
def prompts_list(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    page_token: Annotated[str | None, typer.Option()] = None,
) -> None:
    """List registered prompts."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        page = _sdk().list_prompts(limit=limit, page_token=page_token)
        table = Table("prompt", "latest", "champion", "challenger", "created by")
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

    run()


@prompts_app.command("show")
def prompts_show(
    name: PromptName,
    version: Annotated[
        str | None, typer.Option(help="A version number or alias; all versions by default.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Show a prompt's versions, or one version with its spec (SHA-256 verified)."""
    from flywheel.cli.app import _sdk, console, handle_errors, version_label, write_listing

    @handle_errors
    def run() -> None:
        sdk = _sdk()
        if version is not None:
            found = sdk.prompt(name, version)
            evaluation = sdk.prompt_evaluation(name, found.version.version)
            body = {
                "version": found.version.model_dump(mode="json"),
                "spec": found.spec.model_dump(mode="json"),
                "evaluation": evaluation.model_dump(mode="json") if evaluation else None,
            }
            if as_json:
                sys.stdout.write(json.dumps(body, indent=2) + "\n")
                return
            import yaml

            _BlockDumper = _block_dumper()  # noqa: N806
            v = found.version
            console.print(
                f"{name} v{v.version} {v.status}, sha256 {v.artifact.sha256}, "
                f"registered by {v.created_by} at {v.created_at:%Y-%m-%d %H:%M:%S}",
                highlight=False,
                soft_wrap=True,
            )
            spec = found.spec.model_dump(mode="json", exclude_none=True)
            sys.stdout.write(yaml.dump(spec, Dumper=_BlockDumper, sort_keys=False,
                                       allow_unicode=True))  # fmt: skip
            sys.stdout.write("\n".join(evaluation_lines(evaluation)) + "\n")
            return
        model = sdk.get_prompt(name)
        versions = sdk.list_versions(name, limit=100).items
        if as_json:
            write_listing("prompt", model, versions)
            return
        table = Table(
            "version", "status", "provider", "model", "sha256", "created", "by", title=name
        )
        for v in versions:
            table.add_row(
                version_label(model, v.version),
                str(v.status),
                v.tags.get("provider", "-"),
                v.tags.get("model_id", "-"),
                v.artifact.sha256[:12],
                v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                v.created_by,
            )
        console.print(table)

    run()


def _block_dumper() -> type:
    import yaml

    class Dumper(yaml.SafeDumper):
        """Multi-line strings (templates, system prompts) as YAML literal blocks."""

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def evaluation_lines(doc: PromptEvaluationDoc | None) -> list[str]:
    """A version's evaluation gate as text: outcome and reason, then per evaluator the
    candidate's and the champion's figures, the paired interval and the verdict, the
    failed checks, the worst answers with their evidence, cost and latency."""
    if doc is None:
        return ["evaluation gate: not run yet (its promotion workflow runs it)"]
    lines = [
        f"evaluation gate: {doc.outcome} ({doc.evaluated_at:%Y-%m-%d %H:%M:%S}, "
        f"{doc.execution_id.rsplit(':', 1)[-1]})",
        f"  {doc.reason}",
    ]
    report = doc.report
    if report is None:
        return lines
    champion = f"v{report.champion}" if report.champion is not None else "none"
    lines.append(
        f"  {report.items} items, set sha256 {(doc.set_sha256 or '')[:12]}…, champion {champion}"
        + (
            f" ({report.champion_unanswered} items it could not answer: {report.champion_note})"
            if report.champion_unanswered
            else ""
        )
    )
    level = f"{report.policy.confidence:.0%}"
    lines.append(
        f"  {'evaluator':<14}{'candidate':>18}{'champion':>18}  difference [{level} interval]"
    )
    for s in report.evaluators:
        lines.append(
            f"  {s.evaluator:<14}{_side(s.candidate):>18}{_side(s.champion):>18}  "
            + (
                f"{s.difference:+.3f} [{s.interval.low:+.3f}, {s.interval.high:+.3f}] "
                f"on {s.paired_items}"
                if s.difference is not None and s.interval is not None
                else "-"
            )
            + ("" if s.passed else "  worse")
        )
    failed = [c.detail for c in report.checks if not c.passed]
    if failed:
        lines.append("  failed checks:")
        lines.extend(f"    - {detail}" for detail in failed)
    for s in report.evaluators:
        shown = [w for w in s.worst if not (w.verdict == "pass" and s.passed)]
        if not shown:
            continue
        lines.append(f"  worst answers ({s.evaluator}):")
        for w in shown:
            rival = f", champion {w.champion_score:.2f}" if w.champion_score is not None else ""
            lines.append(f"    - {w.item}: {w.score:.2f} {w.verdict}{rival}: {w.answer!r}")
            for e in w.evidence:
                said = "; ".join(
                    part
                    for part in (
                        e.note,
                        f"sentence {e.sentence!r}" if e.sentence else None,
                        f"words {', '.join(e.words)}" if e.words else None,
                    )
                    if part
                )
                if said:
                    lines.append(f"        {said}")
    calls = report.candidate_calls
    if calls.cost_per_call is not None:
        rival_calls = report.champion_calls
        theirs = (
            f" (champion {rival_calls.cost_per_call}, p95 {rival_calls.latency_p95_ms} ms)"
            if rival_calls is not None and rival_calls.cost_per_call is not None
            else ""
        )
        lines.append(
            f"  cost per call {calls.cost_per_call}, latency p95 {calls.latency_p95_ms} ms" + theirs
        )
        if calls.evaluation_cost:
            lines.append(
                f"  the evaluators' own calls cost {calls.evaluation_cost} "
                f"(the set's run in all: {calls.cost})"
            )
    return lines


def _side(summary: SideSummary | None) -> str:
    if summary is None:
        return "-"
    if summary.mean is None:
        return "not judged"
    return f"{summary.mean:.3f} ({summary.pass_rate or 0:.0%} pass)"


def diff_lines(diff: PromptDiff) -> list[str]:
    """The difference as text: template and system prompt diffs, then each changed field."""
    lines = [f"{diff.name}: v{diff.before} -> v{diff.after}"]
    if diff.empty:
        return [*lines, "no differences"]
    for title, hunk in (("template", diff.template), ("system", diff.system)):
        if hunk:
            lines.extend([f"{title}:", *(f"  {line}" for line in hunk)])
    if diff.changes:
        lines.append("parameters and fields:")
        lines.extend(f"  {c.field}: {_value(c.before)} -> {_value(c.after)}" for c in diff.changes)
    return lines


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@prompts_app.command("diff")
def prompts_diff(
    name: PromptName,
    before: Annotated[str, typer.Argument(help="A version number or alias.")],
    after: Annotated[str, typer.Argument(help="A version number or alias.")],
    as_json: AsJson = False,
) -> None:
    """What changed between two versions: template and system prompt (unified diff),
    provider, model, parameters, variables, output schema."""
    from flywheel.cli.app import _sdk, handle_errors

    @handle_errors
    def run() -> None:
        diff = _sdk().diff_prompts(name, before, after)
        if as_json:
            sys.stdout.write(diff.model_dump_json(indent=2) + "\n")
            return
        sys.stdout.write("\n".join(diff_lines(diff)) + "\n")

    run()


@prompts_app.command("approve")
def prompts_approve(name: PromptName, version: VersionNumber, reason: Reason = None) -> None:
    """Approve a prompt version (not one you registered); reason required."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        v = _sdk().approve_prompt(name, version, reason=reason or "")
        console.print(f"{name} v{v.version} is {v.status}")

    run()


@prompts_app.command("reject")
def prompts_reject(name: PromptName, version: VersionNumber, reason: Reason = None) -> None:
    """Reject a prompt version; reason required."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        v = _sdk().reject_prompt(name, version, reason=reason or "")
        console.print(f"{name} v{v.version} is {v.status}")

    run()


@prompts_app.command("promote")
def prompts_promote(name: PromptName, version: VersionNumber, reason: Reason = None) -> None:
    """Make an approved prompt version the champion now (no canary; refused while one
    runs); reason required."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        v = _sdk().promote_prompt(name, version, reason=reason or "")
        console.print(f"{name} champion is v{v.version}")

    run()


@prompts_app.command("rollback")
def prompts_rollback(name: PromptName, reason: Reason = None) -> None:
    """Champion back to the previous production version (refused while a canary runs);
    reason required."""
    from flywheel.cli.app import _sdk, console, handle_errors

    @handle_errors
    def run() -> None:
        v = _sdk().rollback_prompt(name, reason=reason or "")
        console.print(f"{name} champion is v{v.version} again")

    run()
