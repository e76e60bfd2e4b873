"""Preprocessing that travels inside the model: imputation, encoding and TF-IDF as ONNX nodes.

A :class:`Preprocessor` is fitted on the training rows (:func:`fit_preprocessor`). Its
:meth:`~Preprocessor.transform` (float64, numpy) is the reference the estimator is
trained on, and :meth:`~Preprocessor.prepend_to` writes the same steps in front of the
estimator's ONNX graph, so serving takes the raw record and carries no scikit-learn.

The model then takes two inputs: ``input`` (double ``[N, numeric features]``: numbers,
booleans as 0/1, NaN where missing) and ``strings`` (string ``[N, categorical and text
features]``, ``""`` where missing), each in schema order.

Notes
-----
* Numeric and boolean: a missing value becomes the training median (or mean, most
  frequent value, zero); ``indicator`` adds a 0/1 column saying it was missing.
* Categorical: one-hot over the training categories (the most frequent
  ``max_categories``), or one ordinal code; anything else (unknown under the ``other``
  policy, missing) is all zeros, or code -1.
* Text: TF-IDF as scikit-learn computes it by default (smooth idf, l2 norm, raw counts)
  over word n-grams (``\\w\\w+`` tokens of the text with ASCII letters lowercased) or
  character n-grams (every character). ONNX's ``TfIdfVectorizer`` counts the n-grams
  (exact in its float32 output); the idf weights and the norm are applied in double.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from flywheel.errors import DatasetError
from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import onnx
    from numpy.typing import NDArray

__all__ = [
    "NUMERIC_INPUT",
    "STRING_INPUT",
    "CategoricalStep",
    "NumericStep",
    "Preprocessor",
    "TextSettings",
    "TextStep",
    "fit_preprocessor",
    "tokens",
]

#: The model's inputs when it carries preprocessing.
NUMERIC_INPUT = "input"
STRING_INPUT = "strings"
#: ONNX opsets the preprocessing nodes need (``Equal`` on strings is opset 19).
PREPROCESSING_OPSET = 19
_CONTRIB = "com.microsoft"
#: Pads the tokenizer's rows; never a token (two characters, and no word character).
_PAD = "\x00\x00"
_WORD = re.compile(r"\w\w+", re.ASCII)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

Impute = Literal["median", "mean", "most_frequent", "zero"]
Analyzer = Literal["word", "char"]


class TextSettings(Frozen):
    """How a text feature becomes numbers (TF-IDF).

    Examples
    --------
    >>> TextSettings(analyzer="char", ngram_range=(2, 4)).max_features
    200
    """

    analyzer: Analyzer = "word"
    ngram_range: tuple[int, int] = (1, 1)
    max_features: int = Field(default=200, ge=1, le=5000)
    min_df: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _sane_range(self) -> TextSettings:
        low, high = self.ngram_range
        if not 1 <= low <= high <= 5:
            raise ValueError("ngram_range must be [low, high] with 1 <= low <= high <= 5")
        return self


def tokens(text: str, analyzer: Analyzer) -> list[str]:
    """The tokens ONNX's ``Tokenizer`` yields for ``text`` (ASCII letters lowercased).

    Examples
    --------
    >>> tokens("Great SERVICE, 10/10!", "word")
    ['great', 'service', '10', '10']
    >>> tokens("Ab c", "char")
    ['a', 'b', ' ', 'c']
    """
    lowered = text.translate(_ASCII_LOWER)
    return _WORD.findall(lowered) if analyzer == "word" else list(lowered)


def _ngrams(toks: Sequence[str], low: int, high: int) -> Iterable[tuple[str, ...]]:
    for n in range(low, high + 1):
        for start in range(len(toks) - n + 1):
            yield tuple(toks[start : start + n])


class NumericStep(Frozen):
    """A number (or boolean) column: missing values filled, optionally flagged."""

    kind: Literal["numeric"] = "numeric"
    name: str
    #: Column in the ``input`` tensor.
    column: int = Field(ge=0)
    fill: float
    indicator: bool = False

    @property
    def outputs(self) -> list[str]:
        return [self.name] + ([f"{self.name}__missing"] if self.indicator else [])


class CategoricalStep(Frozen):
    """A categorical column: one-hot (or ordinal) over the training categories."""

    kind: Literal["categorical"] = "categorical"
    name: str
    #: Column in the ``strings`` tensor.
    column: int = Field(ge=0)
    categories: tuple[str, ...] = Field(min_length=1)
    encoding: Literal["onehot", "ordinal"] = "onehot"

    @property
    def outputs(self) -> list[str]:
        if self.encoding == "ordinal":
            return [self.name]
        return [f"{self.name}={c}" for c in self.categories]


class TextStep(Frozen):
    """A text column: TF-IDF over the training vocabulary of n-grams."""

    kind: Literal["text"] = "text"
    name: str
    column: int = Field(ge=0)
    analyzer: Analyzer
    ngram_range: tuple[int, int]
    #: Each n-gram's tokens, in output column order.
    vocabulary: tuple[tuple[str, ...], ...]
    idf: tuple[float, ...]

    @property
    def outputs(self) -> list[str]:
        sep = " " if self.analyzer == "word" else ""
        return [f"{self.name}:{sep.join(gram)}" for gram in self.vocabulary]


Step = NumericStep | CategoricalStep | TextStep


class Preprocessor(Frozen):
    """Fitted preprocessing of a model's raw features (see :func:`fit_preprocessor`)."""

    steps: tuple[Step, ...] = Field(min_length=1)
    #: The raw features in schema order, and which of them are strings.
    features: tuple[str, ...]
    string_features: tuple[str, ...] = ()

    @property
    def numeric_steps(self) -> list[NumericStep]:
        return [s for s in self.steps if isinstance(s, NumericStep)]

    @property
    def output_names(self) -> list[str]:
        """The columns the estimator sees, in order: the numbers (gaps filled), their
        missing flags, then each categorical and text feature's columns
        (``plan=pro``, ``note:great``, …)."""
        numeric = self.numeric_steps
        names = [s.name for s in numeric] + [f"{s.name}__missing" for s in numeric if s.indicator]
        return names + [n for s in self.steps if not isinstance(s, NumericStep) for n in s.outputs]

    @property
    def column_features(self) -> list[int]:
        """For each of :attr:`output_names`, the index of the raw feature it comes from.

        Examples
        --------
        >>> pre = fit_preprocessor(np.array([[1.0, "a"], [np.nan, "b"]], dtype=object),
        ...                        ["x", "c"], {"x": "float", "c": "categorical"})
        >>> pre.output_names, pre.column_features
        (['x', 'c=a', 'c=b'], [0, 1, 1])
        """
        index = {name: i for i, name in enumerate(self.features)}
        numeric = self.numeric_steps
        owners = [index[s.name] for s in numeric] + [index[s.name] for s in numeric if s.indicator]
        for step in self.steps:
            if not isinstance(step, NumericStep):
                owners.extend([index[step.name]] * len(step.outputs))
        return owners

    @property
    def width(self) -> int:
        return len(self.output_names)

    @property
    def uses_tokenizer(self) -> bool:
        """Whether the graph needs onnxruntime's ``Tokenizer`` (text features do)."""
        return any(isinstance(s, TextStep) for s in self.steps)

    def split(self, rows: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[Any]]:
        """The model's two inputs from ``[N, features]`` rows in schema order.

        Examples
        --------
        >>> pre = fit_preprocessor(np.array([[1.0, "a"], [np.nan, "b"]], dtype=object),
        ...                        ["x", "c"], {"x": "float", "c": "categorical"})
        >>> numbers, strings = pre.split(np.array([[2.0, "b"]], dtype=object))
        >>> numbers.tolist(), strings.tolist()
        ([[2.0]], [['b']])
        """
        rows = np.asarray(rows, dtype=object if self.string_features else np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.features):
            raise DatasetError(
                f"expected rows of {len(self.features)} features, got shape {list(rows.shape)}",
                field="features",
            )
        string_set = set(self.string_features)
        numeric_idx = [i for i, f in enumerate(self.features) if f not in string_set]
        string_idx = [i for i, f in enumerate(self.features) if f in string_set]
        numbers = np.empty((rows.shape[0], len(numeric_idx)), dtype=np.float64)
        for out, i in enumerate(numeric_idx):
            numbers[:, out] = [_number(v) for v in rows[:, i]]
        strings = np.empty((rows.shape[0], len(string_idx)), dtype=object)
        for out, i in enumerate(string_idx):
            strings[:, out] = [_text(v) for v in rows[:, i]]
        return numbers, strings

    def transform(self, rows: NDArray[Any]) -> NDArray[np.float64]:
        """The estimator's float64 matrix for ``[N, features]`` raw rows.

        Examples
        --------
        >>> pre = fit_preprocessor(np.array([[1.0, "a"], [np.nan, "b"], [3.0, "a"]],
        ...                                  dtype=object), ["x", "c"],
        ...                        {"x": "float", "c": "categorical"})
        >>> pre.transform(np.array([[np.nan, "b"], [5.0, "zzz"]], dtype=object)).tolist()
        [[2.0, 0.0, 1.0], [5.0, 0.0, 0.0]]
        """
        numbers, strings = self.split(rows)
        blocks: list[NDArray[np.float64]] = []
        numeric = self.numeric_steps
        if numeric:
            missing = np.isnan(numbers)
            fills = np.array([[s.fill for s in numeric]], dtype=np.float64)
            blocks.append(np.where(missing, fills, numbers))
            flagged = [s.column for s in numeric if s.indicator]
            if flagged:
                blocks.append(missing[:, flagged].astype(np.float64))
        for step in self.steps:
            if isinstance(step, NumericStep):
                continue
            if isinstance(step, CategoricalStep):
                values = strings[:, step.column]
                onehot = np.stack([values == c for c in step.categories], axis=1).astype(np.float64)
                if step.encoding == "onehot":
                    blocks.append(onehot)
                else:
                    codes = onehot @ np.arange(len(step.categories), dtype=np.float64)
                    blocks.append((codes + (onehot.sum(axis=1) - 1.0))[:, None])
            else:
                blocks.append(_tfidf(strings[:, step.column], step))
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float64)

    def prepend_to(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """``model`` (input ``input``: the estimator's matrix) behind these steps.

        The result takes the raw ``input`` (and ``strings``) tensors; its outputs are the
        estimator's.
        """
        from flywheel.training import _onnx_preprocessing

        return _onnx_preprocessing.prepend(self, model)

    def features_graph(self, model: onnx.ModelProto | None = None) -> onnx.ModelProto:
        """These steps alone, as :meth:`prepend_to` writes them in front of ``model``.

        Takes the raw ``input`` (and ``strings``) tensors and returns ``features``:
        the double ``[N, width]`` matrix ``model`` reads (what explanations need);
        without ``model``, the matrix of an estimator that reads doubles.

        Examples
        --------
        >>> import onnxruntime as ort
        >>> pre = fit_preprocessor(np.array([[1.0, "a"], [np.nan, "b"]], dtype=object),
        ...                        ["x", "c"], {"x": "float", "c": "categorical"})
        >>> graph = ort.InferenceSession(pre.features_graph().SerializeToString())
        >>> numbers, strings = pre.split(np.array([[None, "b"]], dtype=object))
        >>> graph.run(["features"], {"input": numbers, "strings": strings})[0].tolist()
        [[1.0, 0.0, 1.0]]
        """
        from flywheel.training import _onnx_preprocessing

        return _onnx_preprocessing.features_model(self, model)


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    return float(value)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _tfidf(values: NDArray[Any], step: TextStep) -> NDArray[np.float64]:
    index = {gram: i for i, gram in enumerate(step.vocabulary)}
    low, high = step.ngram_range
    out = np.zeros((len(values), len(step.vocabulary)), dtype=np.float64)
    idf = np.asarray(step.idf, dtype=np.float64)
    for row, value in enumerate(values):
        for gram in _ngrams(tokens(str(value), step.analyzer), low, high):
            j = index.get(gram)
            if j is not None:
                out[row, j] += 1.0
    out *= idf
    norms = np.sqrt((out * out).sum(axis=1, keepdims=True))
    normed: NDArray[np.float64] = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return normed


FeatureKind = Literal["float", "int", "bool", "categorical", "text"]


class ColumnOptions(Frozen):
    """Per-feature preprocessing options (the training config's ``features.<name>``)."""

    impute: Impute = "median"
    indicator: bool = False
    encoding: Literal["onehot", "ordinal"] = "onehot"
    max_categories: int = Field(default=50, ge=1, le=1000)
    text: TextSettings = Field(default_factory=TextSettings)


def fit_preprocessor(
    rows: NDArray[Any],
    features: Sequence[str],
    kinds: dict[str, FeatureKind],
    options: dict[str, ColumnOptions] | None = None,
) -> Preprocessor:
    """Fit each feature's step on the training rows ``[N, features]`` (schema order).

    Raises
    ------
    DatasetError
        A numeric feature with no value at all, or a categorical or text feature
        with nothing to learn (no category, an empty vocabulary).

    Examples
    --------
    >>> rows = np.array([[1.0, "a", "good food"], [np.nan, "b", "bad food"]], dtype=object)
    >>> pre = fit_preprocessor(rows, ["x", "c", "t"],
    ...                        {"x": "float", "c": "categorical", "t": "text"})
    >>> pre.output_names
    ['x', 'c=a', 'c=b', 't:bad', 't:food', 't:good']
    """
    options = options or {}
    strings = tuple(f for f in features if kinds[f] in ("categorical", "text"))
    skeleton = Preprocessor(
        steps=(NumericStep(name="-", column=0, fill=0.0),), features=tuple(features),
        string_features=strings,
    )  # fmt: skip
    numbers, texts = skeleton.split(rows)
    steps: list[Step] = []
    n_numeric = n_string = 0
    for name in features:
        opts = options.get(name, ColumnOptions())
        kind = kinds[name]
        if kind in ("categorical", "text"):
            values = texts[:, n_string]
            if kind == "categorical":
                steps.append(_fit_categorical(name, n_string, values, opts))
            else:
                steps.append(_fit_text(name, n_string, values, opts.text))
            n_string += 1
        else:
            steps.append(_fit_numeric(name, n_numeric, numbers[:, n_numeric], opts))
            n_numeric += 1
    return Preprocessor(steps=tuple(steps), features=tuple(features), string_features=strings)


def _fit_numeric(name: str, column: int, values: NDArray[np.float64], opts: ColumnOptions) -> Step:
    present = values[~np.isnan(values)]
    if present.size == 0:
        raise DatasetError(
            f"dataset.features: column {name!r} has no values", field=f"features.{name}"
        )
    if opts.impute == "median":
        fill = float(np.median(present))
    elif opts.impute == "mean":
        fill = float(np.mean(present))
    elif opts.impute == "most_frequent":
        uniques, counts = np.unique(present, return_counts=True)
        fill = float(uniques[int(np.argmax(counts))])
    else:
        fill = 0.0
    return NumericStep(name=name, column=column, fill=fill, indicator=opts.indicator)


def _fit_categorical(name: str, column: int, values: NDArray[Any], opts: ColumnOptions) -> Step:
    counts = Counter(v for v in values.tolist() if v != "")
    if not counts:
        raise DatasetError(
            f"dataset.features: categorical column {name!r} has no values",
            field=f"features.{name}",
        )
    kept = sorted(counts, key=lambda c: (-counts[c], c))[: opts.max_categories]
    return CategoricalStep(
        name=name, column=column, categories=tuple(sorted(kept)), encoding=opts.encoding
    )


def _fit_text(name: str, column: int, values: NDArray[Any], settings: TextSettings) -> Step:
    low, high = settings.ngram_range
    total: Counter[tuple[str, ...]] = Counter()
    document: Counter[tuple[str, ...]] = Counter()
    for value in values.tolist():
        grams = list(_ngrams(tokens(value, settings.analyzer), low, high))
        total.update(grams)
        document.update(set(grams))
    candidates = [g for g in total if document[g] >= settings.min_df]
    if not candidates:
        raise DatasetError(
            f"dataset.features: text column {name!r} yields no {settings.analyzer} n-grams",
            field=f"features.{name}",
        )
    top = sorted(candidates, key=lambda g: (-total[g], g))[: settings.max_features]
    vocabulary = tuple(sorted(top))
    n = len(values)
    idf = tuple(math.log((1 + n) / (1 + document[g])) + 1.0 for g in vocabulary)
    return TextStep(
        name=name, column=column, analyzer=settings.analyzer, ngram_range=(low, high),
        vocabulary=vocabulary, idf=idf,
    )  # fmt: skip
