"""`flywheel models card` on moto: the card of a version trained, approved and promoted
without the workflow, escaping, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from flywheel.cli.app import app

CONFIG = """\
name: cancer
training:
  task: classification
  dataset: {source: "sklearn:breast_cancer"}
  estimator: logistic_regression
  hyperparameters: {max_iter: 500}
  seed: 3
  owner: oncology-ml
  intended_use: "Second opinion <b>only</b> | never alone"
  limitations: one hospital's patients
gate: {metric: roc_auc}
approval: {allow_direct_approval: true}
"""


@pytest.fixture
def approved(deployed_sdk: Any, tmp_path: Path) -> dict[str, str]:
    """``cancer`` v1 trained by ops, approved by a lead and promoted (no workflow: the CLI
    path); returns the audit table's name."""
    from flywheel.composition import AwsPlatform
    from flywheel.sdk import Flywheel
    from flywheel.settings import Settings

    path = tmp_path / "cancer.model.yaml"
    path.write_text(CONFIG)
    deployed_sdk.configure_model("cancer", path, reason="onboard")
    config = deployed_sdk.model_config("cancer").config.training
    deployed_sdk.train(config, reason="first model")
    lead = Flywheel(AwsPlatform(Settings()), actor="lead@example.com")
    lead.approve("cancer", 1, reason="reviewed <the card>")
    deployed_sdk.promote("cancer", 1, reason="go live")
    return {"audit_table": Settings().audit_table}


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["models", "card", *args], catch_exceptions=False)


def test_models_card_prints_markdown_and_writes_html(
    approved: dict[str, str], tmp_path: Path
) -> None:
    shown = _cli("cancer")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("# Model card: cancer v1\n\nproduction, champion;")
    # user-supplied text is escaped: it renders as written, it does not become markup
    assert "| Intended use | Second opinion \\<b\\>only\\</b\\> \\| never alone |" in shown.stdout
    assert "- approved by lead@example.com at " in shown.stdout
    assert "reviewed \\<the card\\>" in shown.stdout
    # a version trained outside the workflow has no evaluation to show, and says so
    assert "Not measured: no approval request of cancer holds this version's evaluation" in (
        shown.stdout
    )

    target = tmp_path / "cards" / "cancer.html"
    written = _cli("cancer", "--version", "1", "--html", "--output", str(target))
    assert written.exit_code == 0, written.output
    assert str(target) in written.stdout
    page = target.read_text()
    assert page.startswith("<!doctype html>")
    assert "Second opinion &lt;b&gt;only&lt;/b&gt; | never alone" in page
    assert "<b>only</b>" not in page
    assert "<li>one hospital&#x27;s patients</li>" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nobody",), "nobody"),
        (("cancer", "--version", "7"), "7"),
        (("cancer", "--version", "latest"), "'latest' is neither a number nor an alias"),
        (("cancer", "--version", "challenger"), "no challenger"),
    ],
)
def test_an_unknown_model_or_version_is_one_line_and_exit_1(
    approved: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = _cli(*args)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_an_unwritable_output_is_one_line_and_exit_1(
    approved: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    result = _cli("cancer", "--output", str(blocker / "card.md"))

    assert result.exit_code == 1
    assert "output: cannot write" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_card_from_an_edited_chain_says_so_and_exits_3(
    approved: dict[str, str], tmp_path: Path
) -> None:
    # Given someone rewrote the approval's reason in the audit table
    dynamodb = boto3.client("dynamodb")
    items = dynamodb.scan(TableName=approved["audit_table"])["Items"]
    [approval] = [i for i in items if i.get("action", {}).get("S") == "approved"]
    dynamodb.update_item(
        TableName=approved["audit_table"],
        Key={"pk": approval["pk"], "seq": approval["seq"]},
        UpdateExpression="SET #r = :r",
        ExpressionAttributeNames={"#r": "reason"},
        ExpressionAttributeValues={":r": {"S": "all fine"}},
    )

    # When the card is written, it shows the broken chain, and the command fails with 3
    target = tmp_path / "card.md"
    result = _cli("cancer", "--output", str(target))

    assert result.exit_code == 3
    assert "the audit chain of cancer does not verify" in result.stderr
    assert "audit chain BROKEN: entry " in target.read_text()
