"""The local lifecycle demo behind ``flywheel demo``.

Runs against whatever backend the SDK was built with (by default the local moto
server), so everything it writes can be inspected afterwards with the CLI.
"""

from __future__ import annotations

import html
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from rich.console import Console

    from flywheel.sdk import Flywheel

DEMO_MODEL = "breast-cancer-demo"
APPROVER = "ana.approver@example.com"
ONCALL = "oncall@example.com"

CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": {
        "model": DEMO_MODEL,
        "task": "classification",
        "dataset": {"source": "sklearn:breast_cancer"},
        "estimator": "logistic_regression",
        "hyperparameters": {"C": 1.0, "max_iter": 500},
        "seed": 42,
        "description": "baseline: scaled logistic regression",
    },
    "challenger": {
        "model": DEMO_MODEL,
        "task": "classification",
        "dataset": {"source": "sklearn:breast_cancer"},
        "estimator": "hist_gradient_boosting",
        "hyperparameters": {"max_iter": 60, "learning_rate": 0.1},
        "seed": 42,
        "description": "challenger: histogram gradient boosting",
    },
}


@dataclass
class DemoRun:
    stages: list[tuple[str, float, str]] = field(default_factory=list)

    @contextmanager
    def stage(self, console: Console, name: str) -> Iterator[list[str]]:
        notes: list[str] = []
        started = time.perf_counter()
        with console.status(name):
            yield notes
        elapsed = time.perf_counter() - started
        self.stages.append((name, elapsed, "; ".join(notes)))
        console.print(f"[green]✓[/] {name} [dim]({elapsed:.2f}s)[/] {'; '.join(notes)}")


def _sample_records(count: int = 3) -> list[dict[str, float]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    return [
        {name: float(value) for name, value in zip(names, row, strict=True)}
        for row in data.data[:count]
    ]


def run_demo(fw: Flywheel, *, console: Console, report_dir: Path) -> bool:
    """Train two versions, approve and promote them, predict, roll back, verify the trail."""
    from flywheel.sdk import Flywheel as Sdk

    approver = Sdk(registry=fw.registry, artifacts=fw.artifacts, fetch=fw.fetch, actor=APPROVER)
    oncall = Sdk(registry=fw.registry, artifacts=fw.artifacts, fetch=fw.fetch, actor=ONCALL)
    run = DemoRun()
    total = time.perf_counter()
    versions: dict[str, int] = {}
    predictions: dict[str, Any] = {}

    for label in ("baseline", "challenger"):
        with run.stage(console, f"train {label} ({CONFIGS[label]['estimator']})") as notes:
            report = fw.train_from_dict(CONFIGS[label], reason=f"demo {label}")
            v = report.version
            versions[label] = v.version
            parity = v.parity
            notes.append(
                f"v{v.version} {v.status}, accuracy {v.metrics.get('accuracy', 0):.3f}, "
                f"parity {parity.precision if parity else '-'} "
                f"max|Δ| {parity.max_abs_diff if parity else 0:.1e}"
            )
        with run.stage(console, f"approve and promote v{versions[label]}") as notes:
            approver.approve(DEMO_MODEL, versions[label], reason=f"{label} reviewed: metrics OK")
            approver.promote(DEMO_MODEL, versions[label], reason=f"release {label}")
            notes.append(f"champion = v{versions[label]}, approved by {APPROVER}")

    records = _sample_records()
    with run.stage(console, "predict with the champion") as notes:
        result = fw.predict(DEMO_MODEL, records)
        predictions["champion"] = result.__dict__
        notes.append(f"v{result.version} → {result.predictions}")

    with run.stage(console, "roll back") as notes:
        restored = oncall.rollback(DEMO_MODEL, reason="demo: practise a rollback")
        result = fw.predict(DEMO_MODEL, records)
        predictions["after_rollback"] = result.__dict__
        notes.append(f"champion = v{restored.version}, predictions {result.predictions}")

    with run.stage(console, "verify the audit trail") as notes:
        report_ = fw.verify(DEMO_MODEL)
        notes.append(
            f"{'OK' if report_.ok else 'BROKEN'}: {report_.entries_checked} entries, "
            f"head {report_.head}"
        )

    elapsed = time.perf_counter() - total
    table = Table("stage", "seconds", "result", title=f"flywheel demo: {elapsed:.1f}s")
    for name, seconds, notes_text in run.stages:
        table.add_row(name, f"{seconds:.2f}", notes_text)
    console.print(table)
    path = write_report(fw, run, predictions, report_dir)
    console.print(f"run report: {path}")
    console.print(
        f"next: [bold]flywheel models show {DEMO_MODEL}[/], "
        f"[bold]flywheel audit show {DEMO_MODEL}[/], [bold]flywheel audit verify {DEMO_MODEL}[/]"
    )
    return report_.ok


def write_report(fw: Flywheel, run: DemoRun, predictions: dict[str, Any], report_dir: Path) -> Path:
    """Write the run report (HTML and JSON): stages, versions and every audit entry."""
    report_dir.mkdir(parents=True, exist_ok=True)
    entries = fw.audit_entries(DEMO_MODEL)
    versions = fw.list_versions(DEMO_MODEL, limit=100).items
    data = {
        "stages": [{"name": n, "seconds": s, "result": r} for n, s, r in run.stages],
        "versions": [v.model_dump(mode="json") for v in versions],
        "audit": [e.model_dump(mode="json") for e in entries],
        "predictions": predictions,
    }
    (report_dir / "demo.json").write_text(json.dumps(data, indent=2))
    esc = html.escape
    rows_stages = "".join(
        f"<tr><td>{esc(n)}</td><td>{s:.2f}</td><td>{esc(r)}</td></tr>" for n, s, r in run.stages
    )
    rows_audit = "".join(
        f"<tr><td>{e.seq}</td><td>{esc(e.timestamp)}</td><td>{esc(e.actor)}</td>"
        f"<td>{esc(str(e.action))}</td><td>{e.version or ''}</td><td>{esc(e.reason or '')}</td>"
        f"<td><code>{e.hash[:16]}</code></td></tr>"
        for e in entries
    )
    rows_versions = "".join(
        f"<tr><td>{v.version}</td><td>{esc(str(v.status))}</td>"
        f"<td>{esc(json.dumps({k: round(x, 4) for k, x in v.metrics.items()}))}</td>"
        f"<td><code>{v.artifact.sha256[:16]}</code></td></tr>"
        for v in versions
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flywheel demo run</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}</style></head>
<body><h1>Flywheel demo run</h1>
<h2>Stages</h2><table><tr><th>stage</th><th>seconds</th><th>result</th></tr>{rows_stages}</table>
<h2>Versions of {esc(DEMO_MODEL)}</h2>
<table><tr><th>version</th><th>status</th><th>metrics</th><th>sha256</th></tr>{rows_versions}</table>
<h2>Audit trail</h2><table><tr><th>seq</th><th>when</th><th>actor</th><th>action</th>
<th>version</th><th>reason</th><th>hash</th></tr>{rows_audit}</table></body></html>
"""
    path = report_dir / "demo.html"
    path.write_text(page)
    return path
