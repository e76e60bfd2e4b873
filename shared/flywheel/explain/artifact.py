"""The explainer artifact: what training stores next to the model to explain it at serving.

An ``.npz`` archive (numpy arrays only, read with ``allow_pickle=False``) holding a
JSON header and the arrays of one of three kinds: ``tree`` (the ``TreeEnsemble``
node arrays in ONNX numbering plus node covers), ``linear`` (coefficients and
reference means) or ``sampling`` (a seeded background sample for the ONNX model).
A model with preprocessing in its graph adds that preprocessing as its own ONNX
graph (``preprocessing.onnx``, bytes), which turns raw records into the columns
the ``tree`` and ``linear`` kinds explain.  Its SHA-256 is registered on the
version and checked before anything is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import zipfile
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.explain.linear import LinearShap
from flywheel.explain.sampling import PermutationShap
from flywheel.explain.trees import TreeArrays, TreeShap

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from numpy.typing import NDArray

__all__ = ["EXPLAINER_FORMAT", "Explainer", "ExplainerError", "Explanation"]

#: Version of the archive layout; readers refuse others.
EXPLAINER_FORMAT = 1
#: The spaces an explanation can add up in (ADR 71).
SPACES = frozenset({"log_odds", "margin", "probability", "value", "log_value"})


class ExplainerError(Exception):
    """The explainer bytes are not a valid explainer (or do not match their digest)."""


@dataclass(frozen=True)
class Explanation:
    """SHAP values for a batch: ``base_values + values.sum(axis=1)`` is the model output.

    ``values`` is ``[rows, input features, outputs]`` (columns a feature expands to
    summed); ``expanded`` the same per model-input column when asked for.
    """

    values: NDArray[np.float64]
    base_values: NDArray[np.float64]
    features: tuple[str, ...]
    outputs: tuple[str, ...]
    space: str
    method: str
    approximate: bool
    error_bound: float | None = None
    expanded: NDArray[np.float64] | None = None
    columns: tuple[str, ...] = ()


class Explainer:
    """A loaded explainer; :meth:`explain` turns model-input rows into attributions.

    Examples
    --------
    >>> linear = LinearShap(np.array([[2.0, -1.0]]), np.array([0.5]), np.array([1.0, 1.0]))
    >>> explainer = Explainer.linear(linear, columns=("a", "b"), outputs=("yes",), space="log_odds")
    >>> data = explainer.to_bytes()
    >>> loaded = Explainer.from_bytes(data, expected_sha256=hashlib.sha256(data).hexdigest())
    >>> e = loaded.explain(np.array([[2.0, 0.0]]))
    >>> e.base_values.tolist(), e.values[0, :, 0].tolist(), e.space
    ([1.5], [2.0, 1.0], 'log_odds')
    """

    def __init__(
        self,
        header: Mapping[str, Any],
        arrays: Mapping[str, NDArray[Any]],
    ) -> None:
        self.header = dict(header)
        self.arrays = dict(arrays)
        self.kind: str = str(header["kind"])
        self.space: str = str(header["space"])
        self.columns: tuple[str, ...] = tuple(header["columns"])
        self.features: tuple[str, ...] = tuple(header["features"])
        self.outputs: tuple[str, ...] = tuple(header["outputs"])
        if self.space not in SPACES or self.kind not in ("tree", "linear", "sampling"):
            raise ExplainerError(f"unknown explainer kind {self.kind!r} or space {self.space!r}")
        group = np.asarray(header["column_feature"], dtype=np.intp)
        if group.shape != (len(self.columns),) or (
            group.size and group.max() >= len(self.features)
        ):
            raise ExplainerError("column_feature does not map columns to features")
        self._group = group
        self._grouped = group.size != len(self.features) or bool(
            np.any(group != np.arange(group.size))
        )
        if "preprocessing.onnx" in arrays and (
            self.kind == "sampling" or arrays["preprocessing.onnx"].dtype != np.uint8
        ):
            raise ExplainerError("only tree and linear explainers carry a preprocessing graph")
        self._tree: TreeShap | None = None
        self._linear: LinearShap | None = None
        self._sampling: PermutationShap | None = None
        if self.kind == "tree":
            names = {f.name for f in fields(TreeArrays)} - {
                "n_features",
                "mode",
                "float32_inputs",
                "scale",
            }
            self._tree = TreeShap(
                TreeArrays(
                    **{name: arrays[f"tree.{name}"] for name in names},
                    n_features=len(self.columns),
                    mode=int(header["mode"]),
                    float32_inputs=bool(header["float32_inputs"]),
                    scale=float(header["scale"]),
                )
            )
        elif self.kind == "linear":
            self._linear = LinearShap(
                coef=arrays["linear.coef"],
                intercept=arrays["linear.intercept"],
                means=arrays["linear.means"],
            )
        else:
            self._sampling = PermutationShap(
                background=_background(arrays, header.get("string_columns", [])),
                permutations=int(header["permutations"]),
                seed=int(header["seed"]),
            )

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def tree(
        cls,
        trees: TreeArrays,
        *,
        columns: Sequence[str],
        outputs: Sequence[str],
        space: str,
        features: Sequence[str] | None = None,
        column_feature: Sequence[int] | None = None,
    ) -> Explainer:
        """An exact TreeSHAP explainer over the ensemble's node arrays and covers."""
        arrays = {
            f"tree.{f.name}": np.asarray(getattr(trees, f.name))
            for f in fields(TreeArrays)
            if f.name not in ("n_features", "mode", "float32_inputs", "scale")
        }
        extra = {"mode": trees.mode, "float32_inputs": trees.float32_inputs, "scale": trees.scale}
        return cls._build("tree", arrays, columns, outputs, space, features, column_feature, extra)

    @classmethod
    def linear(
        cls,
        linear: LinearShap,
        *,
        columns: Sequence[str],
        outputs: Sequence[str],
        space: str,
        features: Sequence[str] | None = None,
        column_feature: Sequence[int] | None = None,
    ) -> Explainer:
        """An exact linear explainer (``coef * (x - means)``)."""
        arrays = {
            "linear.coef": np.asarray(linear.coef, np.float64),
            "linear.intercept": np.asarray(linear.intercept, np.float64),
            "linear.means": np.asarray(linear.means, np.float64),
        }
        return cls._build("linear", arrays, columns, outputs, space, features, column_feature, {})

    @classmethod
    def sampling(
        cls,
        sampler: PermutationShap,
        *,
        columns: Sequence[str],
        outputs: Sequence[str],
        space: str,
        records: bool = False,
        string_columns: Sequence[int] = (),
    ) -> Explainer:
        """An approximate explainer that samples orderings against a background.

        ``records``: the background holds raw records of a model with preprocessing
        (``string_columns`` hold strings or ``None``), stored as numbers plus an array
        of strings; explanations are then per input feature only.
        """
        background = np.asarray(sampler.background)
        extra: dict[str, Any] = {"permutations": sampler.permutations, "seed": sampler.seed}
        if records:
            extra["records"] = True
        if not string_columns:
            arrays: dict[str, NDArray[Any]] = {
                "sampling.background": np.asarray(background, np.float64)
            }
            return cls._build("sampling", arrays, columns, outputs, space, None, None, extra)
        strings = sorted(set(string_columns))
        numbers = np.full(background.shape, np.nan)
        for j in range(background.shape[1]):
            if j not in strings:
                numbers[:, j] = [np.nan if v is None else float(v) for v in background[:, j]]
        text = [["" if v is None else str(v) for v in background[:, j]] for j in strings]
        arrays = {
            "sampling.background": numbers,
            "sampling.strings": np.array(text, dtype=np.str_).T.reshape(len(background), -1),
        }
        extra["string_columns"] = strings
        return cls._build("sampling", arrays, columns, outputs, space, None, None, extra)

    def with_preprocessing(self, graph: bytes) -> Explainer:
        """This explainer plus the ONNX graph that turns raw records into its columns.

        Examples
        --------
        >>> linear = LinearShap(np.array([[1.0]]), np.zeros(1), np.zeros(1))
        >>> plain = Explainer.linear(linear, columns=("x",), outputs=("y",), space="value")
        >>> plain.preprocessing is None, plain.with_preprocessing(b"graph").preprocessing
        (True, b'graph')
        """
        arrays = {**self.arrays, "preprocessing.onnx": np.frombuffer(graph, dtype=np.uint8)}
        return type(self)(self.header, arrays)

    @classmethod
    def _build(
        cls,
        kind: str,
        arrays: dict[str, NDArray[Any]],
        columns: Sequence[str],
        outputs: Sequence[str],
        space: str,
        features: Sequence[str] | None,
        column_feature: Sequence[int] | None,
        extra: dict[str, Any],
    ) -> Explainer:
        header = {
            "format": EXPLAINER_FORMAT,
            "kind": kind,
            "space": space,
            "columns": list(columns),
            "features": list(features if features is not None else columns),
            "column_feature": list(
                column_feature if column_feature is not None else range(len(columns))
            ),
            "outputs": list(outputs),
            **extra,
        }
        return cls(header, arrays)

    # -- bytes ---------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The archive: ``header.json`` then one ``.npy`` per array, in a stable order."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            header = json.dumps(self.header, sort_keys=True).encode()
            archive.writestr(zipfile.ZipInfo("header.json", (1980, 1, 1, 0, 0, 0)), header)
            for name in sorted(self.arrays):
                item = io.BytesIO()
                np.save(item, np.ascontiguousarray(self.arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, item.getvalue())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, expected_sha256: str) -> Explainer:
        """Verify the digest, then read the archive (numeric arrays only, never pickles).

        Raises
        ------
        ExplainerError
            The digest differs, or the archive is not a version-1 explainer.
        """
        digest = hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(digest, expected_sha256.lower()):
            raise ExplainerError("explainer bytes do not match the registered SHA-256")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                header = json.loads(archive.read("header.json"))
                arrays = {
                    name.removesuffix(".npy"): np.load(
                        io.BytesIO(archive.read(name)), allow_pickle=False
                    )
                    for name in archive.namelist()
                    if name.endswith(".npy")
                }
            if header.get("format") != EXPLAINER_FORMAT:
                raise ExplainerError(f"explainer format {header.get('format')!r} is not supported")
            return cls(header, arrays)
        except ExplainerError:
            raise
        except Exception as err:
            raise ExplainerError("the explainer artifact cannot be read") from err

    # -- explaining ----------------------------------------------------------------------------
    @property
    def preprocessing(self) -> bytes | None:
        """The ONNX graph from raw records to :attr:`columns`, when the model has one."""
        graph = self.arrays.get("preprocessing.onnx")
        return None if graph is None else graph.tobytes()

    @property
    def records(self) -> bool:
        """Whether it explains raw records (a sampler for a model with preprocessing), so
        that it has no attributions per model column."""
        return bool(self.header.get("records", False))

    @property
    def approximate(self) -> bool:
        return self.kind == "sampling"

    @property
    def method(self) -> str:
        return {"tree": "tree_shap", "linear": "linear_shap", "sampling": "permutation_shap"}[
            self.kind
        ]

    def explain(
        self,
        x: NDArray[Any],
        *,
        model: Callable[[NDArray[np.float64]], NDArray[Any]] | None = None,
        expanded: bool = False,
    ) -> Explanation:
        """Attributions for model-input rows ``x`` (``[rows, columns]``).

        With a :attr:`preprocessing` graph, ``x`` is that graph's output for the raw
        records. ``model`` (the ONNX model's outputs in :attr:`space`) is needed by
        the ``sampling`` kind only.
        """
        bound: float | None = None
        if self._tree is not None:
            values, base = self._tree.shap_values(x), self._tree.base_values
        elif self._linear is not None:
            values, base = self._linear.shap_values(x), self._linear.base_values
        else:
            assert self._sampling is not None
            if model is None:
                raise ExplainerError("a sampling explainer needs the model")
            sampled = self._sampling.explain(model, x)
            values, base, bound = sampled.values, sampled.base_values, sampled.error_bound
        grouped = values
        if self._grouped:
            onehot = np.zeros((len(self.features), len(self.columns)))
            onehot[self._group, np.arange(len(self.columns))] = 1.0
            grouped = np.einsum("fc,nck->nfk", onehot, values)
        return Explanation(
            values=grouped,
            base_values=base,
            features=self.features,
            outputs=self.outputs,
            space=self.space,
            method=self.method,
            approximate=self.approximate,
            error_bound=bound,
            expanded=values if expanded else None,
            columns=self.columns if expanded else (),
        )

    def importance(
        self,
        x: NDArray[Any],
        *,
        model: Callable[[NDArray[np.float64]], NDArray[Any]] | None = None,
        seed: int = 0,
        max_rows: int = 1000,
    ) -> dict[str, float]:
        """Mean ``|SHAP|`` per input feature over ``x``, summed over outputs, largest first.

        At most ``max_rows`` rows (a seeded sample; 50 for the sampling kind) are explained.

        Examples
        --------
        >>> linear = LinearShap(np.array([[1.0, 3.0]]), np.zeros(1), np.zeros(2))
        >>> Explainer.linear(linear, columns=("a", "b"), outputs=("y",), space="value").importance(
        ...     np.array([[1.0, 1.0], [-1.0, 1.0]]))
        {'b': 3.0, 'a': 1.0}
        """
        x = np.asarray(x)
        if x.dtype != object:  # raw records (strings) stay objects for the sampler
            x = np.asarray(x, dtype=np.float64)
        limit = min(max_rows, 50) if self.approximate else max_rows
        if x.shape[0] > limit:
            rows = np.random.default_rng(seed).choice(x.shape[0], size=limit, replace=False)
            x = x[np.sort(rows)]
        if x.shape[0] == 0:
            return {}
        values = self.explain(x, model=model).values
        totals = np.abs(values).mean(axis=0).sum(axis=1)
        ranked = sorted(zip(self.features, totals.tolist(), strict=True), key=lambda kv: -kv[1])
        return {name: float(v) for name, v in ranked}


def _background(arrays: Mapping[str, NDArray[Any]], strings: Sequence[int]) -> NDArray[Any]:
    """The sampling background: numbers, or raw records when some columns hold strings."""
    numbers = np.asarray(arrays["sampling.background"], dtype=np.float64)
    if not strings:
        return numbers
    text = np.asarray(arrays["sampling.strings"])
    if text.dtype.kind != "U" or text.shape != (numbers.shape[0], len(strings)):
        raise ExplainerError("the sampling background's strings do not fit its rows")
    rows: NDArray[Any] = numbers.astype(object)
    rows[:, list(strings)] = text.astype(object)
    return rows
