"""Shared pieces of the feature store tests: a view, its transformation, data and references.

pandas and pyarrow are imported where used: the online-path test imports the view
definition in an interpreter that has neither.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.features import (
    Column,
    Entity,
    Feature,
    FeatureView,
    Source,
    TransformationRegistry,
)
from flywheel.features.transformations import Columns

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    import pyarrow as pa

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
TRANSFORMS = TransformationRegistry()


@TRANSFORMS.register("order_features", version=1)
def order_features(cols: Columns) -> dict[str, Any]:
    spend = cols["spend"]
    return {
        "spend": spend,
        "log_spend": np.log1p(spend),
        "orders": cols["orders"].astype(np.int64),
        "big_spender": spend > 100.0,
        "segment": np.where(spend > 100.0, "gold", "basic").astype(object),
        "discount": np.where(cols["orders"] > 3, spend * 0.1, np.nan),
    }


def customer_view(ttl: timedelta | None = 3 * DAY, name: str = "customer-orders") -> FeatureView:
    return FeatureView(
        name=name,
        entity=Entity(name="customer", join_key="customer_id"),
        source=Source(
            name="orders-stream",
            columns=(Column(name="spend"), Column(name="orders", dtype="int")),
        ),
        features=(
            Feature(name="spend"),
            Feature(name="log_spend"),
            Feature(name="orders", dtype="int"),
            Feature(name="big_spender", dtype="bool"),
            Feature(name="segment", dtype="string"),
            Feature(name="discount", nullable=True),
        ),
        transformation=order_features.ref,
        ttl=ttl,
    )


def source_rows(
    entities: list[str],
    events: list[datetime],
    spend: list[float],
    *,
    created: list[datetime] | None = None,
    orders: list[int] | None = None,
) -> pa.Table:
    import pyarrow as pa

    columns: dict[str, Any] = {
        "customer_id": entities,
        "event_timestamp": pa.array(events, pa.timestamp("us", tz="UTC")),
        "spend": spend,
        "orders": orders if orders is not None else [i % 7 for i in range(len(entities))],
    }
    if created is not None:
        columns["created_timestamp"] = pa.array(created, pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def random_history(
    rng: np.random.Generator, *, entities: int, rows: int, days: int = 30, late_share: float = 0.0
) -> pa.Table:
    """Source rows over ``days`` days; ``late_share`` of rows are created hours to days late."""
    import pyarrow as pa

    start = int(T0.timestamp()) * 1_000_000
    event = start + rng.integers(0, days * 86_400, rows) * 1_000_000
    delay = np.where(
        rng.random(rows) < late_share, rng.integers(3_600, 5 * 86_400, rows) * 1_000_000, 0
    )
    return pa.table(
        {
            "customer_id": pa.array([f"c{i}" for i in rng.integers(0, entities, rows)]),
            "event_timestamp": pa.array(event, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "created_timestamp": pa.array(event + delay, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "spend": np.round(rng.gamma(2.0, 60.0, rows), 2),
            "orders": rng.integers(0, 10, rows),
        }
    )


def entity_rows(ids: list[str], times: list[datetime]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {"customer_id": ids, "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC"))}
    )


def merge_asof_reference(
    features: pd.DataFrame, entities: pd.DataFrame, *, key: str, ttl: timedelta | None
) -> pd.DataFrame:
    """pandas ``merge_asof``: the latest row at or before each event, within the TTL.

    Correct when no row is created after its event time (``merge_asof`` cannot see
    created timestamps); ties on event time go to the later created row.
    """
    import pandas as pd

    right = features.sort_values(["event_timestamp", "created_timestamp"], kind="stable")
    right = right.rename(columns={"event_timestamp": "_feature_time"})
    left = entities.reset_index(names="_row").sort_values("event_timestamp", kind="stable")
    merged = pd.merge_asof(
        left,
        right.drop(columns=["created_timestamp"]),
        left_on="event_timestamp",
        right_on="_feature_time",
        by=key,
        direction="backward",
        allow_exact_matches=True,
        tolerance=pd.Timedelta(ttl) if ttl is not None else None,
    )
    return merged.sort_values("_row").drop(columns=["_row", "_feature_time"]).reset_index(drop=True)


def brute_force_reference(
    features: pd.DataFrame, entities: pd.DataFrame, *, key: str, ttl: timedelta | None
) -> pd.DataFrame:
    """Every event against every row of its entity: filter by visibility and TTL, keep the max.

    The definition of point-in-time correctness, with late arrivals, in plain pandas.
    """
    import pandas as pd

    left = entities.reset_index(names="_row")
    right = features.reset_index(names="_order").rename(
        columns={"event_timestamp": "_ev", "created_timestamp": "_cr"}
    )
    pairs = left.merge(right, on=key, how="inner")
    visible = (pairs["_ev"] <= pairs["event_timestamp"]) & (
        pairs["_cr"] <= pairs["event_timestamp"]
    )
    if ttl is not None:
        visible &= pairs["event_timestamp"] - pairs["_ev"] <= pd.Timedelta(ttl)
    pairs = pairs[visible].sort_values(["_row", "_ev", "_cr", "_order"], kind="stable")
    best = pairs.groupby("_row").tail(1).set_index("_row")
    out = left.set_index("_row")
    for column in features.columns:
        if column not in (key, "event_timestamp", "created_timestamp"):
            out[column] = best[column].reindex(out.index)
    return out.reset_index(drop=True)


# -- training from a feature view ------------------------------------------------------------------
#: Customers with one order each at T0 (spend 20, 25, ... 415).
CUSTOMERS = 80


def churned(spend: float) -> str:
    """The label of the training-from-a-view tests: a function of the visible spend."""
    return "yes" if spend > 200 else "no"


def training_history() -> pa.Table:
    """One order per customer at T0, a late order, and a customer first seen at T0+3d.

    ``late`` ordered 900 at T0+1d, recorded only at T0+10d; ``newcomer`` has nothing
    before T0+3d.
    """
    ids = [f"c{i}" for i in range(CUSTOMERS)] + ["late", "late", "newcomer"]
    spend = [20.0 + 5.0 * i for i in range(CUSTOMERS)] + [30.0, 900.0, 500.0]
    events = [T0] * CUSTOMERS + [T0, T0 + DAY, T0 + 3 * DAY]
    created = [T0] * CUSTOMERS + [T0, T0 + 10 * DAY, T0 + 3 * DAY]
    return source_rows(ids, events, spend, created=created)


def training_entities() -> pa.Table:
    """The entity table for :func:`training_history`: key, event time, label and a region.

    ``late`` at T0+2d may only see the 30 known then, at T0+12d the 900; ``newcomer``
    at T0+1d sees nothing (its row is dropped and counted).
    """
    import pyarrow as pa

    rows = [(f"c{i}", T0 + DAY, churned(20.0 + 5.0 * i)) for i in range(CUSTOMERS)]
    rows += [("late", T0 + 2 * DAY, "no"), ("late", T0 + 12 * DAY, "yes")]
    rows += [("newcomer", T0 + DAY, "yes")]
    ids, times, labels = zip(*rows, strict=True)
    return pa.table(
        {
            "customer_id": list(ids),
            "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
            "churned": list(labels),
            "region": ["eu"] * len(ids),
        }
    )


def snapshot_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a joined snapshot of :func:`training_entities` says about the special customers."""
    return {
        "late": [r["spend"] for r in rows if r["customer_id"] == "late"],
        "newcomer": [r["spend"] for r in rows if r["customer_id"] == "newcomer"],
        "rows": len(rows),
        "regions": sorted({r["region"] for r in rows}),
    }


#: The late order is only in the later row, the newcomer is dropped, extra columns are kept.
EXPECTED_SNAPSHOT = {
    "late": [30.0, 900.0],
    "newcomer": [],
    "rows": CUSTOMERS + 2,
    "regions": ["eu"],
}

#: ``lineage.feature_view`` (without ``entity_source``) of a version trained from the view.
EXPECTED_VIEW_LINEAGE = {
    "name": "customer-orders",
    "version": 1,
    "features": ("spend", "orders"),
    "timestamp_column": "event_timestamp",
    "entity_rows": CUSTOMERS + 3,
    "rows_without_features": 1,
}


TRAINING_CONFIG = """\
model: churn
task: classification
dataset:
  source: entities.csv
  target: churned
  feature_view: {name: customer-orders, version: 1, features: [spend, orders]}
estimator: logistic_regression
hyperparameters: {max_iter: 500}
seed: 3
"""


def write_training_config(folder: Path) -> Path:
    """``churn.yaml`` (:data:`TRAINING_CONFIG`) next to its entity table as CSV."""
    # ISO 8601 times in the CSV become timestamps when the entity table is read
    training_entities().to_pandas().to_csv(folder / "entities.csv", index=False)
    path = folder / "churn.yaml"
    path.write_text(TRAINING_CONFIG)
    return path
