"""``Flywheel.train`` (``flywheel train``) with ``dataset.feature_view``."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flywheel.clock import FixedClock
from flywheel.composition import InMemoryPlatform
from flywheel.features.registry import FeatureViewNotFoundError
from flywheel.sdk import Flywheel
from flywheel.training.config import load_config
from tests.feature_support import (
    CUSTOMERS,
    DAY,
    T0,
    TRANSFORMS,
    customer_view,
    training_history,
    write_training_config,
)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_training_config(tmp_path)


def test_flywheel_train_joins_the_view_and_records_it_in_lineage(config_path: Path) -> None:
    store = InMemoryPlatform(clock=FixedClock(T0 + 20 * DAY)).feature_store(
        transformations=TRANSFORMS
    )
    store.register(customer_view(ttl=None), actor="ana@example.com")
    store.ingest("customer-orders", training_history())
    fw = Flywheel.in_memory(actor="ana", features=store)

    report = fw.train(config_path)

    version = report.version
    view = version.lineage.feature_view
    assert view is not None
    assert (view.name, view.version, view.rows_without_features) == ("customer-orders", 1, 1)
    assert list(version.input_schema.feature_names) == ["spend", "orders"]
    # The joined snapshot is stored; the late order never reached the earlier row
    snapshot = report.training_set
    assert snapshot is not None
    assert snapshot.uri.startswith("memory://training-sets/churn/")
    assert version.lineage.dataset_sha256 == snapshot.sha256
    rows = pq.read_table(io.BytesIO(fw.artifacts.get(snapshot))).to_pylist()
    assert [r["spend"] for r in rows if r["customer_id"] == "late"] == [30.0, 900.0]
    assert len(rows) == CUSTOMERS + 2


def test_flywheel_train_from_an_unregistered_view_names_it(config_path: Path) -> None:
    fw = Flywheel.in_memory(actor="ana")
    with pytest.raises(FeatureViewNotFoundError, match=r"^dataset\.feature_view: .*customer"):
        fw.train(load_config(config_path))
    assert fw.list_models().items == []  # nothing registered
