"""Point-in-time lookup: which feature row each event may see (numpy, vectorized).

For an event of entity ``e`` at time ``t``, the eligible feature rows are those of
``e`` with ``event <= t`` and ``created <= t`` (a row created after ``t`` was not
known at ``t``: late arrivals never leak). The answer is the eligible row with the
greatest ``(event, created)``; later rows in input order win exact ties. The
answer is dropped when ``t - event > ttl``.

Eligibility is ``max(event, created) <= t``, a prefix of the rows sorted by
``visible = max(event, created)``. So the answer is a running arg-max over that
order, and each event finds its prefix with one ``searchsorted``: ``O((n + m) log n)``
time and a handful of int64 arrays of memory, whatever the share of late rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]


def latest_before(
    row_entity: Int64Array,
    row_event: Int64Array,
    row_created: Int64Array,
    query_entity: Int64Array,
    query_time: Int64Array,
    *,
    ttl: int | None = None,
) -> Int64Array:
    """For each query, the index of the row it sees, or ``-1``.

    Parameters
    ----------
    row_entity
        Entity code of each feature row (``>= 0``).
    row_event, row_created
        Event and created times of each feature row (any integer unit, e.g. microseconds).
    query_entity
        Entity code of each query (``-1``: an entity without rows).
    query_time
        Time of each query, in the unit of the rows.
    ttl
        Largest ``query_time - row_event`` still answered (``None``: no limit).

    Examples
    --------
    >>> a = lambda *v: np.array(v, dtype=np.int64)
    >>> # rows of entity 0 at events 10 and 20; the second was created late, at 50
    >>> latest_before(a(0, 0), a(10, 20), a(10, 50), a(0, 0, 0, 1), a(5, 30, 50, 30)).tolist()
    [-1, 0, 1, -1]
    >>> latest_before(a(0), a(10), a(10), a(0, 0), a(15, 16), ttl=5).tolist()
    [0, -1]
    """
    n = len(row_entity)
    out = np.full(len(query_entity), -1, dtype=np.int64)
    if n == 0 or len(query_entity) == 0:
        return out
    # Rank rows by (event, created, input order): the greatest rank wins.
    if np.array_equal(row_created, row_event):
        by_recency = np.argsort(row_event, kind="stable")
    else:
        by_recency = np.lexsort((row_created, row_event))  # lexsort is stable: order breaks ties
    rank = np.empty(n, dtype=np.int64)
    rank[by_recency] = np.arange(n, dtype=np.int64)
    # One int64 key per row orders by (entity, visible time): entity * span + time.
    visible = np.maximum(row_event, row_created)
    entities = int(max(row_entity.max(), query_entity.max())) + 1
    row_time, query_slot, span = _time_slots(visible, query_time, entities)
    del visible
    row_key = row_entity * span + row_time
    order = np.argsort(row_key, kind="stable")
    row_key = row_key[order]
    sorted_entity = row_entity[order]
    # Running arg-max of rank within each entity: entity offsets keep groups apart.
    offset = sorted_entity * np.int64(n)
    best_rank = np.maximum.accumulate(offset + rank[order]) - offset
    del offset, order, rank
    # Each query's prefix: rows of its entity visible at or before its time.
    query_key = np.where(query_entity >= 0, query_entity * span + query_slot, -1)
    # Binary search is several times faster on sorted needles (cache-friendly).
    by_key = np.argsort(query_key)
    pos = np.empty(len(query_key), dtype=np.int64)
    pos[by_key] = np.searchsorted(row_key, query_key[by_key], side="right") - 1
    del by_key
    hit = (pos >= 0) & (query_entity >= 0)
    hit[hit] &= sorted_entity[pos[hit]] == query_entity[hit]
    found = by_recency[best_rank[pos[hit]]]
    if ttl is not None:
        fresh = query_time[hit] - row_event[found] <= ttl
        index = np.flatnonzero(hit)
        out[index[fresh]] = found[fresh]
    else:
        out[hit] = found
    return out


def _time_slots(
    row_time: Int64Array, query_time: Int64Array, entities: int
) -> tuple[Int64Array, Int64Array, np.int64]:
    """Map times to small non-negative slots that keep ``row <= query`` comparisons.

    Times shifted by their minimum when ``entities x time range`` fits an int64 (the
    usual case, no sort needed); otherwise their dense rank among the row times.
    """
    low, high = int(row_time.min()), int(row_time.max())
    width = high - low + 2  # slot 0: before every row; slots 1..: row times
    if width < (1 << 62) // entities:
        rows = row_time - (low - 1)
        queries = np.clip(query_time, low - 1, high) - (low - 1)
        return rows, queries, np.int64(width)
    times = np.unique(row_time)
    rows = np.searchsorted(times, row_time, side="left") + 1
    queries = np.searchsorted(times, query_time, side="right")
    return rows.astype(np.int64), queries.astype(np.int64), np.int64(len(times) + 1)
