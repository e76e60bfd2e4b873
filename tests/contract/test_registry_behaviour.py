"""Registry lifecycle behaviour, identical for every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flywheel.audit.models import AuditAction
from flywheel.errors import (
    IllegalTransitionError,
    InvalidPageTokenError,
    ModelNotFoundError,
    NoPreviousChampionError,
    ReasonRequiredError,
    VersionNotFoundError,
)
from flywheel.registry.models import Alias, VersionStatus
from tests.contract.conftest import Backend
from tests.factories import version_draft


def _to_production(backend: Backend, name: str = "churn", seed: int = 1) -> int:
    svc = backend.service
    v = svc.register(version_draft(name, seed=seed), actor="trainer")
    svc.request_approval(name, v.version, actor="trainer")
    svc.approve(name, v.version, actor="alice", reason="beats champion by 2 points")
    svc.promote(name, v.version, actor="alice", reason="approved release")
    return v.version


def test_versions_are_numbered_monotonically_and_start_as_candidates(backend: Backend) -> None:
    svc = backend.service
    numbers = [svc.register(version_draft(seed=i), actor="ci").version for i in range(3)]
    assert numbers == [1, 2, 3]
    stored = svc.get_version("churn", 2)
    assert stored.status is VersionStatus.CANDIDATE
    assert stored.lineage.random_seed == 1
    assert stored.artifact.sha256 == version_draft(seed=1).artifact.sha256
    assert svc.get_model("churn").latest_version == 3


def test_full_lifecycle_sets_champion_and_audits_every_step(backend: Backend) -> None:
    version = _to_production(backend)
    svc = backend.service
    assert svc.get_version("churn", version).status is VersionStatus.PRODUCTION
    assert svc.get_model("churn").champion == version
    actions = [e.action for e in backend.audit.entries("churn")]
    assert actions == [
        AuditAction.VERSION_REGISTERED,
        AuditAction.APPROVAL_REQUESTED,
        AuditAction.APPROVED,
        AuditAction.PROMOTED,
    ]
    approved = list(backend.audit.entries("churn"))[2]
    assert (approved.actor, approved.reason) == ("alice", "beats champion by 2 points")
    assert svc.verify("churn").ok


def test_illegal_transition_names_the_current_status_and_writes_nothing(backend: Backend) -> None:
    svc = backend.service
    v = svc.register(version_draft(), actor="ci")
    before = list(backend.audit.entries("churn"))
    with pytest.raises(IllegalTransitionError) as excinfo:
        svc.approve("churn", v.version, actor="alice", reason="looks fine")
    assert excinfo.value.current == "candidate"
    assert "candidate" in str(excinfo.value)
    assert svc.get_version("churn", v.version).status is VersionStatus.CANDIDATE
    assert list(backend.audit.entries("churn")) == before


def test_rejected_is_terminal(backend: Backend) -> None:
    svc = backend.service
    v = svc.register(version_draft(), actor="ci")
    svc.reject("churn", v.version, actor="bob", reason="fails fairness review")
    with pytest.raises(IllegalTransitionError):
        svc.promote("churn", v.version, actor="bob", reason="try anyway")


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_approve_requires_a_reason(backend: Backend, reason: str | None) -> None:
    svc = backend.service
    v = svc.register(version_draft(), actor="ci")
    svc.request_approval("churn", v.version, actor="ci")
    with pytest.raises(ReasonRequiredError) as excinfo:
        svc.approve("churn", v.version, actor="alice", reason=reason)  # type: ignore[arg-type]
    assert excinfo.value.field == "reason"
    assert svc.get_version("churn", v.version).status is VersionStatus.PENDING_APPROVAL


def test_promotion_archives_the_previous_champion_and_rollback_restores_it(
    backend: Backend,
) -> None:
    svc = backend.service
    first = _to_production(backend, seed=1)
    second = _to_production(backend, seed=2)
    assert svc.get_version("churn", first).status is VersionStatus.ARCHIVED
    assert svc.get_model("churn").champion == second

    restored = svc.rollback("churn", actor="oncall", reason="p99 latency regression")

    assert restored.version == first
    assert svc.get_model("churn").champion == first
    assert svc.get_version("churn", second).status is VersionStatus.ROLLED_BACK
    assert svc.get_version("churn", first).status is VersionStatus.PRODUCTION
    last = list(backend.audit.entries("churn"))[-1]
    assert last.action is AuditAction.ROLLED_BACK
    assert last.details["from_version"] == second
    assert last.details["to_version"] == first
    assert last.details["aliases"] == {"champion": first}
    assert svc.verify("churn").ok


def test_rollback_without_a_previous_champion_is_refused(backend: Backend) -> None:
    _to_production(backend)
    with pytest.raises(NoPreviousChampionError):
        backend.service.rollback("churn", actor="oncall", reason="panic")


def test_canary_sets_challenger_and_promotion_clears_it(backend: Backend) -> None:
    svc = backend.service
    _to_production(backend, seed=1)
    v2 = svc.register(version_draft(seed=2), actor="ci")
    svc.request_approval("churn", v2.version, actor="ci")
    svc.approve("churn", v2.version, actor="alice", reason="ok")
    svc.start_canary("churn", v2.version, actor="promotion-workflow")
    assert svc.get_model("churn").aliases == {Alias.CHAMPION: 1, Alias.CHALLENGER: 2}
    svc.promote("churn", v2.version, actor="promotion-workflow", reason="canary healthy")
    assert svc.get_model("churn").aliases == {Alias.CHAMPION: 2}


def test_aborted_canary_leaves_the_champion_alone(backend: Backend) -> None:
    svc = backend.service
    _to_production(backend, seed=1)
    v2 = svc.register(version_draft(seed=2), actor="ci")
    svc.request_approval("churn", v2.version, actor="ci")
    svc.approve("churn", v2.version, actor="alice", reason="ok")
    svc.start_canary("churn", v2.version, actor="promotion-workflow")
    svc.abort_canary("churn", v2.version, actor="promotion-workflow", reason="error alarm")
    assert svc.get_model("churn").aliases == {Alias.CHAMPION: 1}
    assert svc.get_version("churn", v2.version).status is VersionStatus.ROLLED_BACK


def test_champion_at_time_is_answered_from_the_trail(backend: Backend) -> None:
    svc = backend.service
    before_anything = datetime.now(UTC)
    _to_production(backend, seed=1)
    after_first = datetime.now(UTC)
    _to_production(backend, seed=2)
    after_second = datetime.now(UTC)
    svc.rollback("churn", actor="oncall", reason="bad canary")
    assert svc.champion_at("churn", before_anything) is None
    assert svc.champion_at("churn", after_first) == 1
    assert svc.champion_at("churn", after_second) == 2
    assert svc.champion_at("churn", datetime.now(UTC)) == 1


def test_unknown_model_and_version_are_typed_errors(backend: Backend) -> None:
    svc = backend.service
    with pytest.raises(ModelNotFoundError):
        svc.get_model("nope")
    svc.register(version_draft(), actor="ci")
    with pytest.raises(VersionNotFoundError):
        svc.get_version("churn", 99)
    with pytest.raises(VersionNotFoundError):
        svc.resolve("churn", "champion")


def test_listing_pages_through_everything_with_opaque_tokens(backend: Backend) -> None:
    svc = backend.service
    for i in range(5):
        svc.register(version_draft(seed=i), actor="ci")
    for name in ("alpha", "beta", "gamma"):
        svc.register(version_draft(name), actor="ci")
    seen: list[int] = []
    token = None
    while True:
        page = backend.registry.list_versions("churn", limit=2, page_token=token)
        seen.extend(v.version for v in page.items)
        token = page.next_token
        if token is None:
            break
    assert seen == [1, 2, 3, 4, 5]
    names: list[str] = []
    token = None
    while True:
        models = backend.registry.list_models(limit=2, page_token=token)
        names.extend(m.name for m in models.items)
        token = models.next_token
        if token is None:
            break
    assert names == ["alpha", "beta", "churn", "gamma"]


def test_a_page_token_from_another_listing_is_refused(backend: Backend) -> None:
    svc = backend.service
    for i in range(3):
        svc.register(version_draft(seed=i), actor="ci")
    svc.register(version_draft("other"), actor="ci")
    token = backend.registry.list_versions("churn", limit=1).next_token
    assert token is not None
    with pytest.raises(InvalidPageTokenError):
        backend.registry.list_versions("other", limit=1, page_token=token)
    with pytest.raises(InvalidPageTokenError):
        backend.registry.list_versions("churn", limit=1, page_token="not-a-token!")
