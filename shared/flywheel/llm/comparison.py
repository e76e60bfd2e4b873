"""What the versions of a prompt answered, by variant, from the gateway's captured calls.

The LLM gateway captures every call it made to a provider under
``llm-capture/prompt=<name>/version=<v>/dt=<yyyy-mm-dd>/hour=<hh>/<uuid>.jsonl.gz``, one
row per call (``request_id``, ``timestamp``, ``variant``, ``version``, ``status``,
``latency_ms``, ``usage``, ``cost``, ``output_valid``, ``repaired``, …). A prompt's shadow
or A/B experiment is compared on those rows: per variant and version, the calls, the
errors (5xx answers), the latency, the tokens and the exact cost; for an A/B test also the
split of calls between the arms, checked against the experiment's weight.

What is *not* compared: the answers themselves. There are no labels for a text answer,
and the captured answer may be redacted, hashed or absent (the capture policy), so a
prompt's A/B test has no automatic verdict: whoever promotes names the winner.

Examples
--------
>>> rows = [
...     {"request_id": "r1", "variant": "a", "version": 1, "status": 200,
...      "latency_ms": 820.0, "usage": {"input_tokens": 120, "output_tokens": 40},
...      "cost": "0.0001"},
...     {"request_id": "r2", "variant": "b", "version": 2, "status": 504,
...      "latency_ms": 30000.0, "usage": {"input_tokens": 120, "output_tokens": 0},
...      "cost": "0.00003"},
... ]
>>> report = compare_prompt_variants("ticket-summary", rows, expected_share_b=0.5)
>>> [(v.variant, v.calls, v.errors, str(v.cost)) for v in report.variants]
[('a', 1, 0, '0.0001'), ('b', 1, 1, '0.00003')]
>>> report.split.observed_share_b
0.5
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "NOT_COMPARED",
    "PromptComparison",
    "PromptSplit",
    "PromptVariantSummary",
    "compare_prompt_variants",
    "prompt_capture_prefix",
    "prompt_partition_hour",
    "rows_since",
]

#: A/B arms as the gateway names its variants.
ARMS = ("a", "b")
#: p-value under which the observed split is declared a sample-ratio mismatch.
SRM_P_VALUE = 0.001
#: What a prompt's comparison leaves out, and why (shown with every report).
NOT_COMPARED = (
    "answers are not compared: a text answer has no label, and its capture may be "
    "redacted, hashed or off; name the winner yourself"
)

_PARTITION = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/")


def prompt_capture_prefix(prefix: str, prompt: str, version: int) -> str:
    """Where the gateway captures ``version`` of ``prompt`` (``prefix``: ``llm-capture/``).

    Examples
    --------
    >>> prompt_capture_prefix("llm-capture/", "ticket-summary", 2)
    'llm-capture/prompt=ticket-summary/version=2/'
    """
    return f"{prefix}prompt={prompt}/version={version}/"


def prompt_partition_hour(key: str) -> datetime | None:
    """The UTC hour a prompt capture object is partitioned under (``None``: not one).

    Examples
    --------
    >>> prompt_partition_hour("llm-capture/prompt=p/version=1/dt=2026-03-10/hour=07/x.jsonl.gz")
    datetime.datetime(2026, 3, 10, 7, 0, tzinfo=datetime.timezone.utc)
    """
    found = _PARTITION.search(key)
    if found is None:
        return None
    return datetime.fromisoformat(f"{found.group(1)}T{found.group(2)}:00:00+00:00")


class PromptVariantSummary(Frozen):
    """What one variant (and version) of a prompt answered in the window."""

    variant: str
    version: int
    calls: int
    #: Calls answered 5xx (provider error or timeout, output schema failure).
    errors: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    input_tokens: int
    output_tokens: int
    #: Exact, in the price table's currency (what the gateway charged the budgets).
    cost: Decimal
    cost_per_call: Decimal | None
    #: Answers that did not match the version's output schema (after the repair retry).
    invalid_outputs: int
    #: Calls answered after the one repair retry.
    repaired: int


class PromptSplit(Frozen):
    """How an A/B test's calls fell between its arms."""

    calls_a: int
    calls_b: int
    expected_share_b: float | None
    observed_share_b: float | None
    #: Chi-square p-value of the observed split against ``expected_share_b``.
    split_p_value: float | None
    sample_ratio_mismatch: bool


class PromptComparison(Frozen):
    """Everything :func:`compare_prompt_variants` found in a window of captured calls."""

    prompt: str
    kind: Literal["prompt"] = "prompt"
    rows: int
    variants: list[PromptVariantSummary]
    split: PromptSplit | None = None
    not_compared: str = NOT_COMPARED


def compare_prompt_variants(
    prompt: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    expected_share_b: float | None = None,
) -> PromptComparison:
    """Summaries of every variant of ``prompt`` in ``rows``, and the A/B split if any.

    ``expected_share_b`` is the A/B experiment's weight (the sample-ratio check).
    """
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        key = (str(row.get("variant")), _int(row.get("version")))
        groups.setdefault(key, []).append(row)
    variants = [
        _summary(variant, version, group) for (variant, version), group in sorted(groups.items())
    ]
    arms = {arm: sum(v.calls for v in variants if v.variant == arm) for arm in ARMS}
    split = _split(arms["a"], arms["b"], expected_share_b) if any(arms.values()) else None
    return PromptComparison(prompt=prompt, rows=len(rows), variants=variants, split=split)


def _summary(variant: str, version: int, rows: Sequence[Mapping[str, Any]]) -> PromptVariantSummary:
    latencies = sorted(
        _number(row.get("latency_ms")) for row in rows if _is_number(row.get("latency_ms"))
    )
    errors = sum(1 for row in rows if _int(row.get("status")) >= 500)
    cost = sum((_decimal(row.get("cost")) for row in rows), Decimal(0))
    usage: list[Mapping[str, Any]] = [_mapping(row.get("usage")) for row in rows]
    calls = len(rows)
    return PromptVariantSummary(
        variant=variant,
        version=version,
        calls=calls,
        errors=errors,
        error_rate=round(errors / calls, 6) if calls else None,
        latency_p50_ms=_percentile(latencies, 50),
        latency_p99_ms=_percentile(latencies, 99),
        input_tokens=sum(_int(u.get("input_tokens")) for u in usage),
        output_tokens=sum(_int(u.get("output_tokens")) for u in usage),
        cost=cost,
        cost_per_call=cost / calls if calls else None,
        invalid_outputs=sum(1 for row in rows if row.get("output_valid") is False),
        repaired=sum(1 for row in rows if row.get("repaired") is True),
    )


def _split(calls_a: int, calls_b: int, share_b: float | None) -> PromptSplit:
    total = calls_a + calls_b
    p_value: float | None = None
    if share_b is not None and 0 < share_b < 1 and total:
        expected_b = total * share_b
        expected_a = total - expected_b
        statistic = (calls_a - expected_a) ** 2 / expected_a + (calls_b - expected_b) ** 2 / (
            expected_b
        )
        p_value = math.erfc(math.sqrt(statistic / 2))  # χ² with one degree of freedom
    return PromptSplit(
        calls_a=calls_a,
        calls_b=calls_b,
        expected_share_b=share_b,
        observed_share_b=round(calls_b / total, 6) if total else None,
        split_p_value=None if p_value is None else round(p_value, 6),
        sample_ratio_mismatch=p_value is not None and p_value < SRM_P_VALUE,
    )


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of sorted values, interpolated linearly (numpy's default).

    Examples
    --------
    >>> _percentile([1.0, 2.0, 3.0, 4.0], 50), _percentile([], 99)
    (2.5, None)
    """
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 4)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else 0.0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _decimal(value: Any) -> Decimal:
    """A captured cost (a decimal string, or a number) as an exact ``Decimal``."""
    if value is None or isinstance(value, bool):
        return Decimal(0)
    try:
        found = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return found if found.is_finite() else Decimal(0)


def rows_since(
    rows: Iterable[Mapping[str, Any]], start: datetime, end: datetime | None
) -> list[Mapping[str, Any]]:
    """The rows whose ``timestamp`` falls in ``[start, end]`` (rows without one are kept
    out).

    Examples
    --------
    >>> from datetime import UTC
    >>> rows = [{"timestamp": "2026-01-01T10:00:00.000Z"}, {"timestamp": "2026-01-01T12:00:00Z"}]
    >>> len(rows_since(rows, datetime(2026, 1, 1, 11, tzinfo=UTC), None))
    1
    """
    kept: list[Mapping[str, Any]] = []
    for row in rows:
        moment = _moment(row.get("timestamp"))
        if moment is not None and moment >= start and (end is None or moment <= end):
            kept.append(row)
    return kept


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
