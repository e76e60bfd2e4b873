"""Global importance of a candidate against its champion's: ranks, rank changes, agreement.

Pure: two ``feature → mean |SHAP|`` mappings (ADR 71) in, one
:class:`ImportanceComparison` out. Only ranks are compared across the two models (their
SHAP values may be in different spaces, log-odds against probability); the summary
figures are Spearman's rank correlation over the features both rank and NDCG@k of the
candidate's order, with the champion's importance as the relevance of each feature.

Examples
--------
>>> comparison = compare_importance(
...     {"a": 3.0, "b": 2.0, "c": 1.0}, {"b": 0.6, "a": 0.3, "c": 0.1}, champion_version=4
... )
>>> comparison.rank_correlation, [(f.feature, f.change) for f in comparison.features]
(0.5, [('a', 1), ('b', -1), ('c', 0)])
>>> comparison.summary()
'vs champion v4: rank correlation 0.50, NDCG@3 0.87; top 3: a (↑1), b (↓1), c (=)'
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "TOP_FEATURES",
    "FeatureRank",
    "ImportanceComparison",
    "compare_importance",
    "ndcg_at",
    "spearman",
]

#: How many of each model's most important features the comparison lists.
TOP_FEATURES = 5


class _Record(BaseModel):
    # Read back from workflow state and approval records: unknown keys are ignored.
    model_config = ConfigDict(frozen=True, extra="ignore")


class FeatureRank(_Record):
    """One feature's rank (1 = most important) and mean ``|SHAP|`` in each model."""

    feature: str
    candidate_rank: int | None = Field(default=None, ge=1)
    champion_rank: int | None = Field(default=None, ge=1)
    candidate: float | None = None
    champion: float | None = None

    @property
    def change(self) -> int | None:
        """Places gained by the candidate (``+2``: two places up); ``None`` if one lacks it."""
        if self.candidate_rank is None or self.champion_rank is None:
            return None
        return self.champion_rank - self.candidate_rank

    @property
    def movement(self) -> str:
        """``↑2``, ``↓1``, ``=``, ``new`` (the champion does not rank it) or ``gone``."""
        change = self.change
        if change is None:
            return "new" if self.champion_rank is None else "gone"
        if change == 0:
            return "="
        return f"↑{change}" if change > 0 else f"↓{-change}"


class ImportanceComparison(_Record):
    """The candidate's global importance against the champion's, at evaluation.

    ``features`` lists the union of both top ``top`` features, in the candidate's order,
    then those only the champion has in its top. ``champion_source`` says where the
    champion's figures come from: re-explained on the candidate's holdout (``holdout``)
    or as registered with the champion, from its own holdout (``registered``).
    """

    champion_version: int
    top: int = Field(ge=1)
    features: tuple[FeatureRank, ...] = ()
    #: Spearman's rank correlation over the features both models rank.
    rank_correlation: float | None = None
    #: NDCG@top of the candidate's order, the champion's importance as relevance.
    ndcg: float | None = None
    common_features: int = Field(default=0, ge=0)
    champion_source: Literal["holdout", "registered"] = "registered"
    #: Why figures are missing (a model without global importance), if they are.
    note: str | None = None

    def summary(self) -> str:
        """One line: the champion, the figures, the candidate's top features and their moves."""
        return f"vs champion v{self.champion_version}: {self.details()}"

    def details(self) -> str:
        """:meth:`summary` without the champion's name."""
        if self.note is not None:
            return self.note
        figures = ", ".join(
            f"{label} {'n/a' if value is None else f'{value:.2f}'}"
            for label, value in (
                ("rank correlation", self.rank_correlation),
                (f"NDCG@{self.top}", self.ndcg),
            )
        )
        top = [f for f in self.features if (f.candidate_rank or self.top + 1) <= self.top]
        line = f"{figures}; top {self.top}: " + ", ".join(
            f"{f.feature} ({f.movement})" for f in top
        )
        left = [f for f in self.features if f not in top]
        if left:
            line += f"; left the top {self.top}: " + ", ".join(
                f.feature + (f" (now {f.candidate_rank})" if f.candidate_rank else " (gone)")
                for f in left
            )
        return line


def _ranks(importance: Mapping[str, float]) -> dict[str, int]:
    """1-based ranks, largest importance first (ties keep the mapping's order)."""
    ordered = sorted(importance, key=lambda name: -importance[name])
    return {name: i for i, name in enumerate(ordered, start=1)}


def spearman(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rank correlation of two equally long samples (ties share their mean rank).

    ``None`` for fewer than two values or a constant sample.

    Examples
    --------
    >>> spearman([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]), spearman([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    >>> spearman([1.0, 1.0], [1.0, 2.0]) is None
    True
    """
    if len(first) != len(second):
        raise ValueError("the samples differ in length")
    if len(first) < 2:
        return None
    x, y = _average_ranks(first), _average_ranks(second)
    mean = (len(x) + 1) / 2
    sxy = sum((a - mean) * (b - mean) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mean) ** 2 for a in x)
    syy = sum((b - mean) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def _average_ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def ndcg_at(order: Sequence[str], relevance: Mapping[str, float], k: int) -> float | None:
    """NDCG@k of ``order`` (best first) with ``relevance`` as each item's gain.

    Items without a relevance gain nothing; ``None`` when nothing is relevant.

    Examples
    --------
    >>> ndcg_at(["a", "b"], {"a": 2.0, "b": 1.0}, 2), ndcg_at(["x"], {"a": 1.0}, 1)
    (1.0, 0.0)
    """
    gains = sorted((max(0.0, g) for g in relevance.values()), reverse=True)[:k]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    if ideal <= 0:
        return None
    actual = sum(
        max(0.0, relevance.get(name, 0.0)) / math.log2(i + 2) for i, name in enumerate(order[:k])
    )
    return min(1.0, actual / ideal)


def compare_importance(
    candidate: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    champion_version: int,
    top: int = TOP_FEATURES,
    champion_source: Literal["holdout", "registered"] = "registered",
) -> ImportanceComparison:
    """Compare the candidate's global importance with the champion's (see the module).

    An empty mapping (a model registered without global importance) gives a comparison
    with a ``note`` and no figures.

    Examples
    --------
    >>> compare_importance({}, {"a": 1.0}, champion_version=2).summary()
    'vs champion v2: the candidate has no global importance to compare'
    """
    if not candidate or not champion:
        whose = "candidate" if not candidate else "champion"
        return ImportanceComparison(
            champion_version=champion_version,
            top=top,
            champion_source=champion_source,
            note=f"the {whose} has no global importance to compare",
        )
    ours, theirs = _ranks(candidate), _ranks(champion)
    top = min(top, max(len(ours), len(theirs)))
    shown = [n for n in ours if ours[n] <= top]
    shown += sorted(
        (n for n in theirs if theirs[n] <= top and n not in shown), key=lambda n: theirs[n]
    )
    common = [n for n in ours if n in theirs]
    return ImportanceComparison(
        champion_version=champion_version,
        top=top,
        features=tuple(
            FeatureRank(
                feature=name,
                candidate_rank=ours.get(name),
                champion_rank=theirs.get(name),
                candidate=candidate.get(name),
                champion=champion.get(name),
            )
            for name in shown
        ),
        rank_correlation=spearman([candidate[n] for n in common], [champion[n] for n in common]),
        ndcg=ndcg_at(list(ours), champion, top),
        common_features=len(common),
        champion_source=champion_source,
    )
