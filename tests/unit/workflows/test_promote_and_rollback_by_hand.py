"""``flywheel promote`` / ``flywheel rollback``: alias live follows the registry, all or nothing."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flywheel.cli import app as cli
from flywheel.composition import InMemoryPlatform
from flywheel.errors import (
    ConcurrentModificationError,
    NoPreviousChampionError,
    PromotionInProgressError,
    ServingControlError,
)
from flywheel.registry.models import VersionStatus
from flywheel.sdk import Flywheel
from flywheel.settings import Settings
from flywheel.workflows.ports import AliasRouting
from tests.factories import version_draft

MODEL = "churn"


def _approved(fw: Flywheel) -> int:
    number = fw.registry.register(version_draft(name=MODEL), actor="ci").version
    fw.registry.request_approval(MODEL, number, actor="ci")
    fw.registry.approve(MODEL, number, actor="ana", reason="ok")
    return number


@pytest.fixture
def fw() -> Flywheel:
    """A platform serving ``churn``: v1 then v2 promoted by hand, v2 is champion."""
    settings = Settings(backend="local", inference_functions={MODEL: "churn-inference"})
    sdk = Flywheel.in_memory(actor="ops", platform=InMemoryPlatform(settings))
    sdk.promote(MODEL, _approved(sdk), reason="launch")
    sdk.promote(MODEL, _approved(sdk), reason="release 2")
    return sdk


def _serving(fw: Flywheel) -> object:
    platform = fw.platform
    assert isinstance(platform, InMemoryPlatform)
    return platform.serving_control


def _served_model_version(fw: Flywheel) -> int | None:
    control = _serving(fw)
    primary = control.routing(MODEL).primary  # type: ignore[attr-defined]
    return control.model_version_served(MODEL, primary)  # type: ignore[attr-defined]


def test_promote_points_alias_live_at_the_new_champion(fw: Flywheel) -> None:
    assert fw.get_model(MODEL).champion == 2
    assert _served_model_version(fw) == 2


def test_rollback_moves_registry_audit_and_alias_together(fw: Flywheel) -> None:
    done = fw.rollback(MODEL, reason="latency regression")

    assert done.version.version == 1
    assert fw.get_model(MODEL).champion == 1
    assert _served_model_version(fw) == 1
    assert fw.audit_entries(MODEL)[-1].details["to_version"] == 1


def test_a_failed_alias_change_changes_nothing_and_a_retry_succeeds(fw: Flywheel) -> None:
    before = fw.audit_entries(MODEL)
    _serving(fw).fail_next.add("route")  # type: ignore[attr-defined]

    with pytest.raises(ServingControlError):
        fw.rollback(MODEL, reason="latency regression")

    assert fw.get_model(MODEL).champion == 2
    assert fw.get_version(MODEL, 2).status is VersionStatus.PRODUCTION
    assert fw.audit_entries(MODEL) == before
    assert _served_model_version(fw) == 2
    # and the same command then does all of it
    assert fw.rollback(MODEL, reason="latency regression").version.version == 1
    assert _served_model_version(fw) == 1


def test_a_refused_registry_change_puts_the_alias_back(
    fw: Flywheel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise ConcurrentModificationError("the model changed meanwhile", field="name")

    monkeypatch.setattr(fw.registry, "rollback", refuse)

    with pytest.raises(ConcurrentModificationError):
        fw.rollback(MODEL, reason="latency regression")

    assert _served_model_version(fw) == 2
    assert fw.get_model(MODEL).champion == 2


def test_a_running_canary_blocks_a_manual_change(fw: Flywheel) -> None:
    control = _serving(fw)
    canary = control.publish(MODEL, _approved(fw)).lambda_version  # type: ignore[attr-defined]
    primary = control.routing(MODEL).primary  # type: ignore[attr-defined]
    control.route(MODEL, AliasRouting(primary=primary, weights={canary: 0.1}))  # type: ignore[attr-defined]

    with pytest.raises(PromotionInProgressError):
        fw.rollback(MODEL, reason="latency regression")
    assert fw.get_model(MODEL).champion == 2


def test_nothing_to_roll_back_to_changes_nothing() -> None:
    settings = Settings(backend="local", inference_functions={MODEL: "churn-inference"})
    fw = Flywheel.in_memory(actor="ops", platform=InMemoryPlatform(settings))
    fw.promote(MODEL, _approved(fw), reason="launch")
    before = fw.audit_entries(MODEL)

    with pytest.raises(NoPreviousChampionError):
        fw.rollback(MODEL, reason="oops")
    assert fw.audit_entries(MODEL) == before


def test_a_model_without_an_inference_function_changes_the_registry_only_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fw = Flywheel.in_memory(actor="ops")  # the platform deploys no function for churn
    fw.promote(MODEL, _approved(fw), reason="launch")
    fw.promote(MODEL, _approved(fw), reason="release 2")
    monkeypatch.setattr(cli, "_sdk", lambda: fw)

    result = CliRunner().invoke(cli.app, ["rollback", MODEL, "-r", "latency regression"])

    assert result.exit_code == 0, result.output
    assert "champion is v1 again" in result.output
    assert "only the registry changed" in " ".join(result.output.split())
    assert fw.get_model(MODEL).champion == 1
