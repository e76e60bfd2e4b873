"""An in-memory feature store on a fixed clock, with the customer-orders view registered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.features import FeatureStore, RegisteredView
from tests.feature_support import T0, TRANSFORMS, customer_view


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0 + timedelta(days=60))


@pytest.fixture
def store(clock: FixedClock) -> FeatureStore:
    return InMemoryPlatform(clock=clock).feature_store(transformations=TRANSFORMS, chunk_rows=1_000)


@pytest.fixture
def registered(store: FeatureStore) -> RegisteredView:
    return store.register(customer_view(), actor="ana@example.com", reason="first definition")
