"""Model cards built from in-memory records: where each fact comes from, and that nothing a
user or a dataset supplies can turn into markup (HTML or Markdown)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from flywheel.composition import InMemoryPlatform
from flywheel.drift.bias import bias_report
from flywheel.registry.models import FeatureSpec, InputSchema, ModelVersion
from flywheel.workflows.card_pages import render_html, render_markdown
from flywheel.workflows.cards import ModelCard, build_card
from flywheel.workflows.config import parse_model_config
from flywheel.workflows.importance import compare_importance
from flywheel.workflows.records import ApprovalDoc
from flywheel.workflows.state import GateCheck, ModelScore
from tests.factories import version_draft

HOSTILE = '<script>alert("x")</script>'
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


class _Page(HTMLParser):
    """Tags and text of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _registered(platform: InMemoryPlatform, **training: Any) -> ModelVersion:
    """A version whose training config, feature names and importance carry ``HOSTILE``."""
    draft = version_draft(
        name="churn",
        input_schema=InputSchema(
            features=(FeatureSpec(name=HOSTILE), FeatureSpec(name="tenure | months"))
        ),
        importance={HOSTILE: 0.7, "tenure | months": 0.2},
        description=f"churn {HOSTILE}",
    )
    lineage = draft.lineage.model_copy(update={"training_config": training})
    version = platform.registry.register(
        draft.model_copy(update={"lineage": lineage}), actor=f"ana {HOSTILE}"
    )
    platform.registry.request_approval("churn", version.version, actor="workflow")
    return platform.registry.approve("churn", version.version, actor="bo", reason=HOSTILE)


def _approval(version: ModelVersion, **summary: Any) -> ApprovalDoc:
    return ApprovalDoc(
        approval_id="a1",
        model="churn",
        version=version.version,
        artifact_sha256=version.artifact.sha256,
        artifact_uri=version.artifact.uri,
        task_token="secret-token",
        execution_id="e1",
        requested_by="ana",
        requested_at=NOW,
        expires_at=NOW,
        summary=summary,
    )


def _hostile_card(*, bias_checked: bool = False) -> ModelCard:
    platform = InMemoryPlatform()
    version = _registered(
        platform,
        owner=HOSTILE,
        intended_use=f"ranks | customers {HOSTILE}",
        limitations=[HOSTILE, "*not* for `minors` [link](http://example.com)"],
        hyperparameters={HOSTILE: 1},
    )
    groups = [HOSTILE] * 40 + ["b|c"] * 40
    bias = bias_report(groups, ["1"] * 50 + ["0"] * 30, favorable="1", attribute=HOSTILE)
    summary = {
        "candidate": ModelScore(metrics={"accuracy": 0.9}, bias=bias).model_dump(mode="json"),
        "champion": None,
        "gate": [
            GateCheck(name=name, passed=False, detail=HOSTILE).model_dump()
            for name in (HOSTILE, "bias")[: 2 if bias_checked else 1]
        ],
        "importance": compare_importance(
            version.importance, {"tenure | months": 1.0, HOSTILE: 0.5}, champion_version=1
        ).model_dump(mode="json"),
    }
    return build_card(
        platform.registry.get_model("churn"),
        version,
        entries=platform.registry.audit.entries("churn"),
        approval=_approval(version, **summary),
        now=NOW,
    )


def test_group_metrics_are_marked_gated_only_when_the_gate_checked_them() -> None:
    reported, gated = _hostile_card(), _hostile_card(bias_checked=True)

    assert (reported.bias_gated, gated.bias_gated) == (False, True)
    assert "On the holdout (80 rows), reported (the gate does not check it): limits broken." in (
        render_markdown(reported)
    )
    assert "On the holdout (80 rows), gated: limits broken." in render_markdown(gated)


def test_the_html_card_escapes_every_user_supplied_value() -> None:
    page = render_html(_hostile_card())
    parser = _Page()
    parser.feed(page)

    # No element came from the data: only the page's own tags, and no script at all
    assert "script" not in parser.tags
    assert set(parser.tags) <= {
        "html", "head", "meta", "title", "style", "body", "header", "h1", "p", "span", "main",
        "section", "h2", "dl", "dt", "dd", "br", "code", "table", "thead", "tr", "th", "tbody",
        "td", "ul", "li", "strong", "svg", "g", "text", "rect", "footer",
    }  # fmt: skip
    # and each hostile value is shown as text, wherever it was (owner, limitations, feature
    # names and their bars, group names, gate checks, the approver's reason, the registrant)
    text = "".join(parser.text)
    assert text.count(HOSTILE) >= 10
    assert "<script>alert" not in page
    assert 'data-feature="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"' in page
    # nothing is fetched: a policy that forbids it, and no external reference
    assert "default-src 'none'" in page
    assert not re.search(r"(?:src|href)=", page)
    assert "secret-token" not in page


def test_the_markdown_card_escapes_markup_and_keeps_tables_whole() -> None:
    text = render_markdown(_hostile_card())

    assert "<script>" not in text
    assert r"\<script\>alert" in text
    assert r"\*not\* for \`minors\` \[link\](http://example.com)" in text
    assert "| Intended use | ranks \\| customers \\<script\\>" in text
    for block in re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.MULTILINE):
        rows = block.strip().splitlines()
        assert len({len(re.split(r"(?<!\\)\|", row)) for row in rows}) == 1, rows
    assert "secret-token" not in text


def test_owner_and_intended_use_come_from_the_version_else_from_the_current_config() -> None:
    platform = InMemoryPlatform()
    version = _registered(platform)  # trained with a config that declared nothing
    config = parse_model_config(
        {
            "name": "churn",
            "training": {
                "task": "classification",
                "dataset": {"source": "sklearn:breast_cancer"},
                "estimator": "logistic_regression",
                "owner": "growth",
                "limitations": "synthetic data only",
            },
            "gate": {"metric": "accuracy"},
        }
    )
    model = platform.registry.get_model("churn")
    entries = platform.registry.audit.entries("churn")

    bare = build_card(model, version, entries=entries)
    from_config = build_card(model, version, entries=entries, config=config)

    assert (bare.overview.owner, bare.overview.declared_in) == (None, None)
    assert "not declared: add owner, intended_use and limitations" in render_markdown(bare)
    assert from_config.overview.owner == "growth"
    assert from_config.overview.limitations == ("synthetic data only",)
    assert from_config.overview.declared_in == "config"
    assert "from the model's current config" in render_markdown(from_config)


def test_an_approval_for_other_bytes_is_not_this_versions_evaluation() -> None:
    platform = InMemoryPlatform()
    version = _registered(platform)
    summary = {"candidate": ModelScore(metrics={"accuracy": 0.5}).model_dump(mode="json")}
    other = _approval(version, **summary).model_copy(update={"artifact_sha256": "f" * 64})

    card = build_card(
        platform.registry.get_model("churn"),
        version,
        entries=platform.registry.audit.entries("churn"),
        approval=other,
    )

    assert card.evaluation is None
    assert "Not measured: no approval request of churn holds" in render_markdown(card)


@pytest.mark.parametrize("as_html", [False, True])
def test_a_version_without_importance_or_parity_says_so(as_html: bool) -> None:
    platform = InMemoryPlatform()
    version = platform.registry.register(version_draft(name="churn"), actor="ana")
    card = build_card(
        platform.registry.get_model("churn"),
        version,
        entries=platform.registry.audit.entries("churn"),
    )

    page = render_html(card) if as_html else render_markdown(card)

    assert page.count("Not recorded for this version.") == 2  # parity and importance
    assert "Not declared." in page  # limitations
    assert "the audit chain was not verified for this card" in page
