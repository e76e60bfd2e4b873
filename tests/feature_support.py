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
