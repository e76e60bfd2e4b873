"""Feature views are versioned and every registration is on a verifiable audit chain."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flywheel.audit.chain import verify_chain
from flywheel.audit.models import AuditAction, AuditEntry
from flywheel.errors import NotFoundError
from flywheel.features import FeatureStore, RegisteredView
from flywheel.features.registry import audit_stream
from tests.feature_support import customer_view


def _chain(store: FeatureStore, name: str) -> list[AuditEntry]:
    return store.registry.history(name)


def test_identical_definition_keeps_its_version(
    store: FeatureStore, registered: RegisteredView
) -> None:
    again = store.register(customer_view(), actor="bob@example.com")
    assert again.version == registered.version == 1
    assert again.registered_by == "ana@example.com"
    assert len(_chain(store, registered.name)) == 1


def test_a_changed_definition_is_a_new_audited_version(
    store: FeatureStore, registered: RegisteredView
) -> None:
    # When the TTL changes
    second = store.register(
        customer_view(ttl=timedelta(days=7)), actor="bob@example.com", reason="weekly TTL"
    )
    # Then it is version 2, the latest, and v1 is still readable as it was
    assert second.version == 2
    assert store.view(registered.name, 1).view.ttl == timedelta(days=3)
    assert store.registry.get(registered.name).version == 2
    # And both registrations are on the view's hash chain, which verifies
    entries = _chain(store, registered.name)
    assert [(e.action, e.version, e.actor) for e in entries] == [
        (AuditAction.FEATURE_VIEW_REGISTERED, 1, "ana@example.com"),
        (AuditAction.FEATURE_VIEW_REGISTERED, 2, "bob@example.com"),
    ]
    assert entries[1].details["fingerprint"] == second.fingerprint
    assert entries[1].details["ttl_seconds"] == 7 * 86_400
    assert entries[1].reason == "weekly TTL"
    assert store.registry.verify(registered.name).ok
    assert verify_chain(audit_stream(registered.name), entries).ok
    # And the catalog lists the latest version
    [summary] = store.list_views()
    assert (summary.name, summary.latest, summary.features) == (registered.name, 2, 6)


def test_versions_keep_their_data_apart(store: FeatureStore, registered: RegisteredView) -> None:
    second = store.register(customer_view(ttl=timedelta(days=7)), actor="ana")
    assert second.key != registered.key
    assert str(second.key) == "customer-orders/v2"


def test_unknown_views_and_versions(store: FeatureStore, registered: RegisteredView) -> None:
    with pytest.raises(NotFoundError, match="'nope' does not exist"):
        store.view("nope")
    with pytest.raises(NotFoundError, match="has no version 9"):
        store.view(registered.name, 9)


def test_an_unregistered_transformation_cannot_be_registered(store: FeatureStore) -> None:
    from flywheel.features import TRANSFORMATIONS

    other = store.transformations
    store.transformations = TRANSFORMATIONS  # the process registry lacks order_features
    with pytest.raises(NotFoundError, match="not registered here"):
        store.register(customer_view(name="other-view"), actor="ana")
    store.transformations = other
    assert store.list_views() == []
