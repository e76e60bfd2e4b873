"""``--actor`` works anywhere on the command line, as the README says."""

from __future__ import annotations

import sys

import pytest

from flywheel.cli import app as cli
from flywheel.sdk import Flywheel
from tests.factories import version_draft


@pytest.mark.parametrize(
    "argv",
    [
        ["--actor", "ana@example.com", "approve", "churn", "1", "-r", "ok"],
        ["approve", "churn", "1", "-r", "ok", "--actor", "ana@example.com"],
        ["approve", "--actor=ana@example.com", "churn", "1", "-r", "ok"],
    ],
)
def test_actor_before_or_after_the_subcommand_is_who_acts(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sdks: list[Flywheel] = []
    fw = Flywheel.in_memory(actor="unused")
    fw.registry.register(version_draft(name="churn"), actor="ci")
    fw.registry.request_approval("churn", 1, actor="ci")

    def connected() -> Flywheel:
        # The CLI builds its SDK with the actor it parsed.
        sdk = Flywheel(fw.platform, actor=cli.STATE.actor or "nobody")
        sdks.append(sdk)
        return sdk

    monkeypatch.setattr(cli, "_sdk", connected)
    monkeypatch.setattr(sys, "argv", ["flywheel", *argv])

    with pytest.raises(SystemExit) as exited:
        cli.main()

    assert exited.value.code == 0
    assert fw.audit_entries("churn")[-1].actor == "ana@example.com"
