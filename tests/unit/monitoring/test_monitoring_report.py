"""The HTML report is self-contained, shows every feature, and renders in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from flywheel.drift.attribution import compare_attributions
from flywheel.drift.bias import bias_report
from flywheel.drift.profile import build_profile
from flywheel.drift.scorer import observe_window, score_window
from flywheel.monitoring.performance import PerformancePolicy, evaluate_performance, measure_window
from flywheel.monitoring.report import render_html
from flywheel.registry.models import Task

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
HOSTILE = '<script>alert("x")</script>'


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def page() -> str:
    rng = np.random.default_rng(40)
    n = 4000
    x = np.column_stack(
        [
            rng.normal(size=n),
            rng.lognormal(size=n),
            rng.integers(0, 4, size=n),
            rng.choice(np.array(["eu", "us", "apac"], dtype=object), size=n),
        ]
    ).astype(object)
    names = ["amount", HOSTILE, "tier", "region"]
    reference = build_profile(x, names, categorical=["tier", "region"])
    current = np.column_stack(
        [
            rng.normal(0.5, size=600),
            rng.lognormal(size=600),
            rng.integers(0, 5, size=600),
            rng.choice(np.array(["eu", "us", "latam"], dtype=object), size=600),
        ]
    ).astype(object)
    window = observe_window(reference, current)
    result = score_window(reference, window, labels={"model": "churn", "version": "3"})
    attribution = compare_attributions(
        {"amount": 0.9, HOSTILE: 0.4, "tier": 0.2, "region": 0.1},
        {"amount": 0.1, HOSTILE: 0.5, "tier": 0.2, "region": 0.3},
        sample_rows=600,
        window_rows=600,
        method="tree_shap",
        space="log_odds",
    )
    result = result.model_copy(update={"attribution_drift": attribution})
    bias = bias_report(current[:, 3], rng.integers(0, 2, size=600), attribute="region")
    performance = evaluate_performance(
        measure_window(Task.CLASSIFICATION, rng.integers(0, 2, 600), rng.integers(0, 2, 600)),
        {"accuracy": 0.9},
        PerformancePolicy(metric="accuracy", max_relative_drop=0.05),
    )
    return render_html(result, reference, window, bias=bias, performance=performance)


def test_one_chart_per_feature_with_reference_and_current(page: str) -> None:
    parser = _Collector()
    parser.feed(page)

    charts = [attrs for tag, attrs in parser.tags if tag == "svg"]
    assert [c["data-feature"] for c in charts] == ["amount", HOSTILE, "tier", "region"]
    assert page.count('class="feature drifted"') >= 2  # amount and region at least
    assert "reference" in page
    assert "current" in page


def test_the_page_is_self_contained_and_escapes_names(page: str) -> None:
    assert "Content-Security-Policy" in page
    assert "default-src 'none'" in page
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page


def test_the_attribution_section_ranks_every_feature_against_training(page: str) -> None:
    section = page[page.index('<section id="attributions">') :]
    section = section[: section.index("</section>")]

    assert "changed: the window's importance ranking against training's, NDCG 0." in section
    assert "drift if &lt; 0.9" in section
    assert "600 of 600 captured rows explained (seed 0; tree_shap, mean |SHAP| in log_odds)" in (
        section
    )
    ranks = re.findall(r'<td class="num">(\d) → (\d)</td>', section)
    assert ranks == [("1", "4"), ("2", "1"), ("3", "3"), ("4", "2")]
    assert "&lt;script&gt;alert" in section
    assert 'id="attribution-verdict"' in page


def test_verdicts_thresholds_and_the_result_json_are_in_the_page(page: str) -> None:
    assert 'id="dataset-verdict"' in page
    assert "drift if p &lt; 0.05" in page
    assert "drift if ≥ 0.1" in page
    assert 'id="bias"' in page
    assert re.search(r"demographic parity difference [0-9.]+ \(90% interval [0-9.]+ to", page)
    assert 'id="performance"' in page
    payload = re.search(r'<script type="application/json" id="drift-result">(.*?)</script>', page)
    assert payload is not None
    document = json.loads(payload.group(1))
    assert document["verdict"] == "drift"
    assert document["features"][1]["feature"] == HOSTILE
    assert document["attribution_drift"]["drifted"] is True


@pytest.mark.chromium
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (apt-get install -y chromium)",
)
def test_the_report_renders_in_headless_chromium_without_console_errors(
    page: str, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1200,2400",
    ]

    dom = subprocess.run(
        [*flags, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    # The rendered DOM has the four charts, with their drawn shapes.
    assert dom.stdout.count("<svg") == 4
    assert dom.stdout.count("<rect") > 40
    assert "<polyline" in dom.stdout
    # The attribution table: one row per feature, two bars each (training and window).
    attributions = dom.stdout[dom.stdout.index('<section id="attributions">') :]
    assert attributions[: attributions.index("</section>")].count('class="bar"') == 8
    # No console messages at all (errors, CSP violations, failed loads) from the page.
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    # A real screenshot (PNG signature, not a blank few bytes).
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000
