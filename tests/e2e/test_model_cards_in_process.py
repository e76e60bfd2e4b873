"""Model cards of real versions: trained, evaluated, approved and promoted by the synthesized
workflows on the local runtime (in process), as Markdown and as a page in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.local.lifecycle import APPROVER, MODEL, OPERATOR, InProcessDriver, Lifecycle
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from flywheel.workflows.card_pages import render_html, render_markdown
from flywheel.workflows.cards import ModelCard

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "flywheel-tests",
    "POWERTOOLS_METRICS_NAMESPACE": "FlywheelTests",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
SECTIONS = ("overview", "data", "metrics", "groups", "gate", "parity", "importance",
            "limitations", "history")  # fmt: skip


@pytest.fixture(scope="module")
def life() -> Iterator[Lifecycle]:
    """breast-cancer as the demo runs it: v1 trained on request, approved through the API and
    promoted by the promotion workflow; v2 trained on a second request, waiting for approval."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as env:
        for key, value in AWS_ENV.items():
            env.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "FLYWHEEL_ENDPOINT_URL"):
            env.delenv(key, raising=False)
        with mock_aws(config=MOTO_CONFIG), LocalRuntime() as runtime:
            life = Lifecycle(InProcessDriver(runtime))
            life.seed()
            arn, _, approval_id = life.train_until_approval(
                lambda: life.request_retrain("first model of breast-cancer")
            )
            status, body = life.approve(approval_id, "holdout metrics and parity reviewed")
            assert status == 200, body
            life.wait(arn)
            promotion = life.wait_for_new_execution("promotion", 0)
            assert life.wait(promotion["executionArn"])[0] == "SUCCEEDED"
            life.train_until_approval(lambda: life.request_retrain("new labels", caller=APPROVER))
            yield life


def _card(life: Lifecycle, version: int | None = None) -> ModelCard:
    card: ModelCard = life.sdk(OPERATOR).model_card(MODEL, version)
    return card


def test_the_champions_card_says_who_owns_it_what_it_learnt_from_and_who_approved_it(
    life: Lifecycle,
) -> None:
    # When the card is asked for without a version
    card = _card(life)

    # Then it is the champion's, with what the training config declared
    champion = life.sdk(OPERATOR).get_version(MODEL, 1)
    assert (card.overview.version, card.overview.status, card.overview.aliases) == (
        1, "production", ("champion",),
    )  # fmt: skip
    assert card.overview.owner == "ml-platform-team"
    assert card.overview.intended_use is not None
    assert "fine-needle aspirate" in card.overview.intended_use
    assert len(card.overview.limitations) == 2
    assert card.overview.declared_in == "version"
    # training data and lineage: the immutable snapshot, its digest, the run that trained it
    assert card.data.dataset == champion.lineage.dataset_id
    assert card.data.dataset is not None
    assert "/training-sets/breast-cancer/" in card.data.dataset
    assert card.data.dataset_sha256 == champion.lineage.dataset_sha256
    assert card.data.run is not None
    assert card.data.run.run_id == champion.lineage.training_run_id
    assert card.data.run.trigger == "manual"
    assert card.data.parent_runs == (champion.lineage.training_run_id,)
    assert card.data.hyperparameters == {"C": 1.0, "max_iter": 1000}
    # the evaluation it was approved on: metrics, per-group metrics, gate checks, parity
    assert card.metrics == champion.metrics
    assert card.evaluation is not None
    assert card.evaluation.candidate.metrics == pytest.approx(champion.metrics)
    bias = card.evaluation.bias
    assert bias is not None
    assert bias.attribute == "mean radius"
    assert [g.group for g in bias.groups] == ["<= 14", "> 14"]
    assert sum(g.rows for g in bias.groups) == card.evaluation.holdout_rows
    assert card.bias_gated is False  # the demo's config watches the attribute, the gate does not
    assert [c.name for c in card.evaluation.gate] == ["parity", "minimum.accuracy", "champion"]
    assert card.evaluation.importance is None  # the first model had no champion
    assert card.parity is not None
    assert card.parity.passed
    assert list(card.importance) == list(champion.importance)
    assert len(card.importance) == 30
    # and the approval history, from the audit chain, which verifies
    assert [e.action for e in card.history] == [
        "version_registered", "approval_requested", "approved", "canary_started", "promoted",
    ]  # fmt: skip
    assert card.requested is not None
    assert card.requested.requested_by == OPERATOR  # who asked for the run, not the workflow
    assert card.decision is not None
    assert (card.decision.actor, card.decision.reason) == (
        APPROVER, "holdout metrics and parity reviewed",
    )  # fmt: skip
    assert card.chain is not None
    assert card.chain.ok
    assert "signed by the audit writer" in card.chain.evidence


def test_the_markdown_card_has_every_section_with_the_facts_in_it(life: Lifecycle) -> None:
    text = render_markdown(_card(life, 1))

    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Overview",
        "## Training data and lineage",
        "## Holdout metrics",
        "## Per-group metrics: mean radius (favorable: benign)",
        "## Gate checks at evaluation",
        "## ONNX parity",
        "## Global importance (mean |SHAP| on the holdout)",
        "## Limitations",
        "## Approval history (from the audit chain)",
    ]
    assert text.startswith("# Model card: breast-cancer v1\n\nproduction, champion; classification")
    assert "| Owner | ml-platform-team |" in text
    assert f"- approved by {APPROVER} at " in text
    assert "audit chain intact (" in text
    # every table row has as many cells as its header (escaped names cannot break a table)
    for block in re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.MULTILINE):
        rows = block.strip().splitlines()
        widths = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, rows


def test_a_candidates_card_compares_its_importance_with_the_champions(life: Lifecycle) -> None:
    card = _card(life, 2)

    assert card.overview.status == "pending_approval"
    assert card.decision is None
    assert card.requested is not None
    assert card.requested.requested_by == APPROVER
    assert card.evaluation is not None
    comparison = card.evaluation.importance
    assert comparison is not None
    # same data, same seed: the same model, so every top feature keeps its rank
    assert (comparison.champion_version, comparison.champion_source) == (1, "holdout")
    assert comparison.rank_correlation == pytest.approx(1.0)
    assert [f.feature for f in comparison.features] == list(card.importance)[:5]
    text = render_markdown(card)
    assert "| metric | this version | champion v1 |" in text
    assert "Against champion v1 at evaluation (its importance re-explained on this version" in text
    assert "- not decided yet" in text


@pytest.mark.chromium
@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install -y chromium)"
)
def test_the_html_card_renders_in_headless_chromium_with_nothing_from_the_network(
    life: Lifecycle, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    page = tmp_path / "card.html"
    page.write_text(render_html(_card(life, 2)), encoding="utf-8")
    flags = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
        "--v=0", "--window-size=1100,3000",
        # any request for a host fails (and a failed load is logged on the console)
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ]  # fmt: skip

    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    shot = tmp_path / "card.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip

    # Every section is in the rendered document, with its heading
    for section in SECTIONS:
        assert re.search(rf'<section id="{section}"><h2>', dom.stdout), section
    # the importance chart drew its 15 bars, and the rank comparison is a table
    assert dom.stdout.count('<g class="bar"') == 15
    assert dom.stdout.count("<rect") == 15
    assert "champion's rank" in dom.stdout
    # Nothing was loaded or blocked: no console message at all from the page
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page.read_text())
    assert "<script" not in page.read_text()
    # A real screenshot (PNG signature, not a blank few bytes)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000
