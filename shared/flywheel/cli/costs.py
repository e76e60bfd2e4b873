"""``flywheel cost report``: what LLM calls and model serving cost over a period.

Per prompt (and per version and variant) and per team: calls, input and output tokens,
spend and cost per 1,000 calls, in the price table's currency, from the gateway's usage
counters. Per classic model version: requests, Lambda GB-seconds and an estimate at
Lambda's on-demand prices, from the inference functions' metrics; a model without
metrics in the period says so and shows no figures.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flywheel.llm.costs import LlmCostReport, UsageTotal
    from flywheel.sdk import CostReport
    from flywheel.serving.costs import ModelCostReport

cost_app = typer.Typer(help="What LLM calls and model serving cost.", no_args_is_help=True)

#: Amounts are shown to a millionth of the currency unit (calls cost fractions of a cent).
_SHOWN = Decimal("0.000001")


@cost_app.command("report")
def report(
    prompt: Annotated[str | None, typer.Option("--prompt", help="Only this prompt.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="Only this team tag.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="First UTC day, YYYY-MM-DD (default: this month's first)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Last UTC day, YYYY-MM-DD (default: today).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Spend, calls and tokens per prompt and team; requests, GB-seconds and an estimate
    per model version."""
    from flywheel.cli.app import _sdk, handle_errors

    @handle_errors
    def run() -> None:
        found = _sdk().cost_report(prompt=prompt, team=team, since=since, until=until)
        if as_json:
            sys.stdout.write(json.dumps(report_json(found), indent=2) + "\n")
            return
        sys.stdout.write("\n".join(report_lines(found, prompt=prompt, team=team)) + "\n")

    run()


def amount(value: Decimal | None) -> str:
    """An amount as shown: six decimals, ``-`` for none.

    Examples
    --------
    >>> amount(Decimal("0.0020666700")), amount(Decimal(12)), amount(None)
    ('0.002067', '12.000000', '-')
    """
    return "-" if value is None else format(value.quantize(_SHOWN), "f")


def _exact(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell: text left, figures right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _usage_cells(name: str, part: str, total: UsageTotal) -> list[str]:
    return [
        name,
        part,
        f"{total.calls:,}",
        f"{total.input_tokens:,}",
        f"{total.output_tokens:,}",
        amount(total.cost),
        amount(total.cost_per_1k_calls),
    ]


def _llm_lines(llm: LlmCostReport, *, prompt: str | None, team: str | None) -> list[str]:
    lines: list[str] = []
    header = ["prompt", "version", "calls", "input tokens", "output tokens",
              f"spend {llm.currency}", "per 1k calls"]  # fmt: skip
    wanted_prompts = team is None or prompt is not None
    wanted_teams = prompt is None or team is not None
    if wanted_prompts:
        if llm.prompts:
            rows = []
            for cost in llm.prompts:
                rows.append(_usage_cells(cost.prompt, "all", cost.total))
                rows.extend(_usage_cells("", v.label, v) for v in cost.variants)
            lines += [f"LLM calls by prompt, {llm.since} to {llm.until}", *_table(header, rows)]
        elif prompt is not None:
            lines.append(f"no calls of prompt {prompt} in this period")
        else:
            lines.append("no LLM calls in this period")
    if wanted_teams:
        if lines:
            lines.append("")
        if llm.teams:
            rows = []
            for team_cost in llm.teams:
                rows.append(_usage_cells(team_cost.team, "all", team_cost.total))
                rows.extend(_usage_cells("", p.label, p) for p in team_cost.prompts)
            lines += [
                f"LLM calls by team, {llm.since} to {llm.until}",
                *_table(["team", "prompt", *header[2:]], rows),
            ]
        elif team is not None:
            lines.append(f"no calls charged to team {team} in this period")
        else:
            lines.append("no LLM calls charged to a team in this period")
    return lines


def _model_lines(models: ModelCostReport) -> list[str]:
    lines = [f"Model serving (AWS Lambda), {models.since} to {models.until}"]
    if not models.models:
        return [*lines, "no inference functions in this deployment"]
    rows = []
    missing = []
    for model in models.models:
        if not model.has_metrics:
            missing.append(f"no serving metrics for {model.model} in this period")
            continue
        rows.append([model.model, "all", f"{model.requests:,}", f"{model.gb_seconds:,.1f}",
                     amount(model.cost), amount(_per_1k(model.cost, model.requests))])  # fmt: skip
        for v in model.versions:
            label = f"v{v.model_version}" if v.model_version is not None else "unpinned"
            rows.append([
                "", f"{label} (lambda {','.join(v.lambda_versions)})", f"{v.requests:,}",
                f"{v.gb_seconds:,.1f}", amount(v.cost), amount(v.cost_per_1k_requests),
            ])  # fmt: skip
    if rows:
        header = ["model", "version", "requests", "GB-seconds",
                  f"estimate {models.currency}", "per 1k requests"]  # fmt: skip
        lines += _table(header, rows)
        lines.append(
            f"estimate at on-demand prices ({models.prices}); free tier, SnapStart, "
            "provisioned concurrency, API Gateway and data transfer not included"
        )
    return lines + missing


def _per_1k(cost: Decimal, requests: int) -> Decimal | None:
    return cost * 1000 / requests if requests else None


def report_lines(found: CostReport, *, prompt: str | None, team: str | None) -> list[str]:
    """The report as text."""
    lines = _llm_lines(found.llm, prompt=prompt, team=team)
    if found.models is not None:
        lines += ["", *_model_lines(found.models)]
    return lines


def _usage_json(total: UsageTotal) -> dict[str, Any]:
    return {
        "calls": total.calls,
        "input_tokens": total.input_tokens,
        "output_tokens": total.output_tokens,
        "cost": _exact(total.cost),
        "cost_per_1k_calls": _exact(total.cost_per_1k_calls),
    }


def report_json(found: CostReport) -> dict[str, Any]:
    """The report as JSON: amounts as exact decimal strings."""
    llm = found.llm
    body: dict[str, Any] = {
        "since": llm.since.isoformat(),
        "until": llm.until.isoformat(),
        "llm": {
            "currency": llm.currency,
            "prompts": [
                {
                    "prompt": p.prompt,
                    **_usage_json(p.total),
                    "variants": [
                        {"version": v.version, "variant": v.variant, **_usage_json(v)}
                        for v in p.variants
                    ],
                }
                for p in llm.prompts
            ],
            "teams": [
                {
                    "team": t.team,
                    **_usage_json(t.total),
                    "prompts": [{"prompt": p.label, **_usage_json(p)} for p in t.prompts],
                }
                for t in llm.teams
            ],
        },
        "models": None,
    }
    models = found.models
    if models is not None:
        body["models"] = {
            "currency": models.currency,
            "prices": models.prices,
            "models": [
                {
                    "model": m.model,
                    "function": m.function,
                    "metrics": m.has_metrics,
                    "note": None
                    if m.has_metrics
                    else f"no serving metrics for {m.model} in this period",
                    "requests": m.requests if m.has_metrics else None,
                    "gb_seconds": _exact(m.gb_seconds) if m.has_metrics else None,
                    "cost": _exact(m.cost) if m.has_metrics else None,
                    "versions": [
                        {
                            "model_version": v.model_version,
                            "lambda_versions": list(v.lambda_versions),
                            "requests": v.requests,
                            "gb_seconds": _exact(v.gb_seconds),
                            "cost": _exact(v.cost),
                            "cost_per_1k_requests": _exact(v.cost_per_1k_requests),
                        }
                        for v in m.versions
                    ],
                }
                for m in models.models
            ],
        }
    return body
