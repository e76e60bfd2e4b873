"""What a table's columns look like, and the ``features:`` block a training config would use.

``flywheel schema infer data.csv`` prints :func:`features_yaml`: one line per column
with the type training would infer and the facts behind it, for people to review and
paste into the config (changing a type is a matter of editing that line).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import DatasetError
from flywheel.models import Frozen
from flywheel.registry.models import FeatureType
from flywheel.training.datasets import _is_missing, infer_types, parse_source, read_columns

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["ColumnSummary", "features_yaml", "summarize"]


class ColumnSummary(Frozen):
    """One column: its inferred type and what it holds."""

    name: str
    type: FeatureType
    rows: int
    missing: int
    distinct: int
    #: The most frequent values, with their counts.
    top: tuple[tuple[str, int], ...]
    mean_words: float

    def describe(self) -> str:
        """The facts behind the type, in a few words.

        Examples
        --------
        >>> ColumnSummary(name="plan", type="categorical", rows=4, missing=1, distinct=2,
        ...               top=(("pro", 2), ("basic", 1)), mean_words=1.0).describe()
        '25.0% missing; 2 categories: pro (2), basic (1)'
        """
        parts = [f"{100 * self.missing / max(self.rows, 1):.1f}% missing"] if self.missing else []
        shown = ", ".join(f"{v} ({n})" for v, n in self.top[:5])
        if self.type == "categorical":
            parts.append(f"{self.distinct} categories: {shown}")
        elif self.type == "text":
            parts.append(f"{self.distinct} distinct texts, {self.mean_words:.1f} words on average")
        elif self.type == "bool":
            parts.append(shown)
        else:
            parts.append(f"{self.distinct} distinct values")
        return "; ".join(parts)


def summarize(
    source: str,
    *,
    target: str | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> list[ColumnSummary]:
    """Read a CSV or Parquet file (or ``s3://`` object) and summarize every column but the target.

    Raises
    ------
    DatasetError
        The file cannot be read, or ``target`` is not one of its columns.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_text("age,plan,y\\n31,pro,1\\n,basic,0\\n44,pro,1\\n")
    >>> [(c.name, c.type, c.missing) for c in summarize(str(path), target="y")]
    [('age', 'float', 1), ('plan', 'categorical', 0)]
    """
    from flywheel.training.datasets import read_source

    try:
        _, _, file_format = parse_source(source)
    except ValueError as err:
        raise DatasetError(f"source: {err}", field="source") from None
    if file_format is None:
        raise DatasetError(f"source: {source} is not a CSV or Parquet file", field="source")
    columns = read_columns(read_source(source, fetch=fetch), file_format=file_format)
    if target is not None and target not in columns:
        raise DatasetError(
            f"target: column {target!r} not found; columns are {sorted(columns)}", field="target"
        )
    features = {name: column for name, column in columns.items() if name != target}
    kinds = infer_types(features)
    summaries: list[ColumnSummary] = []
    for name, column in features.items():
        values: Sequence[Any] = column.values
        present = [str(v) for v in values if not _is_missing(v)]
        counts = Counter(present)
        summaries.append(
            ColumnSummary(
                name=name,
                type=kinds[name],
                rows=len(values),
                missing=len(values) - len(present),
                distinct=len(counts),
                top=tuple(counts.most_common(5)),
                mean_words=sum(len(v.split()) for v in present) / max(len(present), 1),
            )
        )
    return summaries


def features_yaml(summaries: Sequence[ColumnSummary], *, source: str) -> str:
    """The ``features:`` block for a training config, one commented line per column.

    Examples
    --------
    >>> print(features_yaml([ColumnSummary(name="plan", type="categorical", rows=2, missing=0,
    ...       distinct=2, top=(("a", 1), ("b", 1)), mean_words=1.0)], source="t.csv"))
    # Inferred from t.csv: review the types, then put this block in the training config.
    features:
      plan: {type: categorical}  # 2 categories: a (1), b (1)
    <BLANKLINE>
    """
    width = max((len(s.name) + len(s.type) for s in summaries), default=0) + 12
    lines = [
        f"# Inferred from {Path(source).name}: review the types, then put this block in "
        "the training config.",
        "features:",
    ]
    for s in summaries:
        entry = f"  {_yaml_key(s.name)}: {{type: {s.type}}}"
        lines.append(f"{entry.ljust(width)}  # {s.describe()}")
    return "\n".join(lines) + "\n"


def _yaml_key(name: str) -> str:
    import json

    plain = name.replace("_", "").replace("-", "").isalnum() and not name[:1].isdigit()
    return name if plain else json.dumps(name)
