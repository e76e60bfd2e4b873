"""Exact path-dependent TreeSHAP in numpy, from ``TreeEnsemble`` node arrays and covers.

Every leaf of a tree is a product game over the distinct features on its path
(ADR 71): with ``o_k`` whether the row satisfies the path's conditions on feature
``k`` and ``z_k`` the cover fraction along them, the leaf's Shapley value for ``j``
is ``v (o_j - z_j) ∫₀¹ Π_{k≠j} (z_k + (o_k - z_k) t) dt``; the integrand is a
polynomial of degree ``d - 1``, so Gauss-Legendre with ``⌈d/2⌉`` nodes is exact.
Leaves are grouped by path width and evaluated for all trees at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["TreeArrays", "TreeShap"]


@dataclass(frozen=True)
class TreeArrays:
    """A ``TreeEnsemble``'s node arrays (ONNX numbering) plus node and leaf covers.

    Interior nodes and leaves are numbered separately, as in ``ai.onnx.ml``
    ``TreeEnsemble``: a branch points at a node when its ``*leafs`` flag is 0 and at
    a leaf otherwise.  ``mode`` 0 sends ``x <= split`` to the true branch, 1 sends
    ``x < split``; ``float32_inputs`` rounds ``x`` to float32 before comparing.
    ``scale`` multiplies every leaf (``1 / n_trees`` for a forest) and ``baseline``
    is added per target.
    """

    featureids: NDArray[np.int64]
    splits: NDArray[np.float64]
    missing_true: NDArray[np.int64]
    truenodeids: NDArray[np.int64]
    trueleafs: NDArray[np.int64]
    falsenodeids: NDArray[np.int64]
    falseleafs: NDArray[np.int64]
    node_covers: NDArray[np.float64]
    leaf_targetids: NDArray[np.int64]
    leaf_weights: NDArray[np.float64]
    leaf_covers: NDArray[np.float64]
    roots: NDArray[np.int64]
    baseline: NDArray[np.float64]
    n_features: int
    mode: int = 0
    float32_inputs: bool = False
    scale: float = 1.0

    @property
    def n_targets(self) -> int:
        return int(self.baseline.shape[0])


#: Leaves with at most this many distinct path features get a lookup table of all
#: ``2**width`` patterns (width x 2**width doubles each); wider ones use quadrature.
TABLE_WIDTH = 8
#: Rows explained per pass: larger batches are split so the temporaries stay in cache.
CHUNK_ROWS = 8


@dataclass
class _Leaf:
    leaf: int
    value: float
    target: int
    features: list[int]
    zs: list[float]
    elements: list[list[int]]


def _quadrature(width: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gauss-Legendre nodes and weights on [0, 1], exact to degree ``width - 1``."""
    nodes, weights = np.polynomial.legendre.leggauss(max(1, (width + 1) // 2))
    return (nodes + 1.0) / 2.0, weights / 2.0


def _paths(trees: TreeArrays) -> list[tuple[int, list[tuple[int, bool, float]]]]:
    """Every leaf with its path: ``(node, took the true branch, cover ratio)`` per step."""
    found: list[tuple[int, list[tuple[int, bool, float]]]] = []
    stack: list[tuple[int, list[tuple[int, bool, float]]]] = [
        (int(root), []) for root in trees.roots
    ]
    while stack:
        node, path = stack.pop()
        parent = float(trees.node_covers[node])
        same = (
            trees.truenodeids[node] == trees.falsenodeids[node]
            and trees.trueleafs[node] == trees.falseleafs[node]
        )
        for taken, child, is_leaf in (
            (True, trees.truenodeids[node], trees.trueleafs[node]),
            (False, trees.falsenodeids[node], trees.falseleafs[node]),
        ):
            covers = trees.leaf_covers if is_leaf else trees.node_covers
            step = path if same else [*path, (node, taken, float(covers[child]) / parent)]
            if is_leaf:
                found.append((int(child), step))
            else:
                stack.append((int(child), step))
            if same:
                break
    return found


class TreeShap:
    """Path-dependent TreeSHAP values (``shap.TreeExplainer``'s default) for a tree ensemble.

    Build once per model (the per-leaf tables are precomputed); :meth:`shap_values`
    then costs a fixed number of array operations per batch, whatever the tree count.

    Examples
    --------
    >>> one = np.array([1], np.int64); zero = np.array([0], np.int64)
    >>> trees = TreeArrays(
    ...     featureids=zero, splits=np.array([0.5]), missing_true=zero,
    ...     truenodeids=zero, trueleafs=one, falsenodeids=one, falseleafs=one,
    ...     node_covers=np.array([4.0]), leaf_targetids=np.zeros(2, np.int64),
    ...     leaf_weights=np.array([1.0, 3.0]), leaf_covers=np.array([1.0, 3.0]),
    ...     roots=zero, baseline=np.zeros(1), n_features=2,
    ... )  # one split: x0 <= 0.5 → 1.0 (1 sample), else 3.0 (3 samples)
    >>> explainer = TreeShap(trees)
    >>> explainer.base_values.tolist(), explainer.shap_values(np.array([[0.0, 9.0]]))[0].tolist()
    ([2.5], [[-1.5], [0.0]])
    """

    def __init__(self, trees: TreeArrays, *, table_width: int = TABLE_WIDTH) -> None:
        self.n_features = trees.n_features
        self.n_targets = trees.n_targets
        self._featureids = trees.featureids
        self._splits = trees.splits
        self._missing_true = trees.missing_true.astype(bool)
        self._mode = trees.mode
        self._float32 = trees.float32_inputs
        self._n_nodes = n_nodes = int(trees.featureids.shape[0])
        self._n_out = self.n_features * self.n_targets
        base = trees.baseline.astype(np.float64).copy()
        leaves: list[_Leaf] = []
        for leaf, path in _paths(trees):
            slots: dict[int, int] = {}
            found = _Leaf(
                leaf=leaf,
                value=trees.scale * float(trees.leaf_weights[leaf]),
                target=int(trees.leaf_targetids[leaf]),
                features=[],
                zs=[],
                elements=[],
            )
            for node, taken, ratio in path:
                feature = int(trees.featureids[node])
                index = node if taken else n_nodes + node
                if feature in slots:
                    found.zs[slots[feature]] *= ratio
                    found.elements[slots[feature]].append(index)
                else:
                    slots[feature] = len(found.zs)
                    found.zs.append(ratio)
                    found.features.append(feature)
                    found.elements.append([index])
            base[found.target] += found.value * float(np.prod(found.zs))
            if found.features:
                leaves.append(found)
        self.base_values: NDArray[np.float64] = base
        narrow = [leaf for leaf in leaves if len(leaf.features) <= table_width]
        wide = [leaf for leaf in leaves if len(leaf.features) > table_width]
        self._narrow = _Tables(narrow, self._slots(narrow)) if narrow else None
        self._wide = _Quadrature(self._slots(wide)) if wide else None

    def _slots(self, leaves: list[_Leaf]) -> _Slots:
        return _Slots(leaves, always=2 * self._n_nodes, n_targets=self.n_targets)

    def _decisions(self, x: NDArray[np.float64]) -> NDArray[np.bool_]:
        """``[rows, 2 * nodes + 1]``: took the true branch, took the false one, always."""
        if self._float32:
            x = x.astype(np.float32).astype(np.float64)
        values = np.take(x, self._featureids, axis=1)
        true = values <= self._splits if self._mode == 0 else values < self._splits
        missing = np.isnan(values)
        if missing.any():
            true = np.where(missing, self._missing_true, true)
        rows, n = x.shape[0], self._n_nodes
        table = np.empty((rows, 2 * n + 1), dtype=bool)
        table[:, :n] = true
        np.logical_not(true, out=table[:, n : 2 * n])
        table[:, -1] = True
        return table

    def shap_values(self, x: NDArray[Any]) -> NDArray[np.float64]:
        """SHAP values ``[rows, features, targets]`` for ``x`` (``[rows, features]``).

        ``base_values + shap_values(x).sum(axis=1)`` is the ensemble's raw output.

        Examples
        --------
        >>> from flywheel.explain.trees import TreeArrays
        >>> one = np.array([1], np.int64); zero = np.array([0], np.int64)
        >>> trees = TreeArrays(
        ...     featureids=zero, splits=np.array([0.5]), missing_true=zero,
        ...     truenodeids=zero, trueleafs=one, falsenodeids=one, falseleafs=one,
        ...     node_covers=np.array([2.0]), leaf_targetids=np.zeros(2, np.int64),
        ...     leaf_weights=np.array([0.0, 2.0]), leaf_covers=np.array([1.0, 1.0]),
        ...     roots=zero, baseline=np.zeros(1), n_features=1,
        ... )
        >>> TreeShap(trees).shap_values(np.array([[1.0]]))[:, :, 0].tolist()
        [[1.0]]
        """
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] > CHUNK_ROWS:  # keep the temporaries in cache
            return np.concatenate(
                [self.shap_values(x[i : i + CHUNK_ROWS]) for i in range(0, x.shape[0], CHUNK_ROWS)]
            )
        rows = x.shape[0]
        table = self._decisions(x)
        width = self._n_out + 1
        total = np.zeros(rows * width)
        for part in (self._narrow, self._wide):
            if part is not None:
                outputs, weights = part.contributions(table)
                index = outputs + (np.arange(rows, dtype=np.intp) * width)[:, None]
                total += np.bincount(index.ravel(), weights.ravel(), minlength=rows * width)
        values = total.reshape(rows, width)[:, : self._n_out]
        return values.reshape(rows, self.n_features, self.n_targets)


class _Slots:
    """The distinct (leaf, feature) pairs of some leaves, and how to tell which a row meets.

    Slots are ordered by how many conditions they have (most first), so the extra
    conditions of repeated features are checked on a prefix, in place.
    """

    def __init__(self, leaves: list[_Leaf], *, always: int, n_targets: int) -> None:
        flat = [
            (len(members), i, s, members)
            for i, leaf in enumerate(leaves)
            for s, members in enumerate(leaf.elements)
        ]
        flat.sort(key=lambda item: -item[0])
        self.leaf = np.array([i for _, i, _, _ in flat], dtype=np.intp)
        self.position = np.array([s for _, _, s, _ in flat], dtype=np.intp)
        self.first = np.array([members[0] for *_, members in flat], dtype=np.intp)
        self.extra: list[tuple[int, NDArray[np.intp]]] = []
        for r in range(1, flat[0][0] if flat else 1):
            count = sum(1 for size, *_ in flat if size > r)
            self.extra.append((count, np.array([m[r] for *_, m in flat[:count]], np.intp)))
        self.z = np.array([leaves[i].zs[s] for _, i, s, _ in flat])
        self.values = np.array([leaves[i].value for _, i, _, _ in flat])
        self.outputs = np.array(
            [leaves[i].features[s] * n_targets + leaves[i].target for _, i, s, _ in flat],
            dtype=np.intp,
        )
        self.widths = np.array([len(leaf.features) for leaf in leaves], dtype=np.intp)
        # Where each leaf's slots are: [leaves, max width], padded with ``len(slots)``.
        self.padded = np.full((len(leaves), int(self.widths.max())), len(flat), np.intp)
        self.padded[self.leaf, self.position] = np.arange(len(flat), dtype=np.intp)
        del always

    def follows(self, table: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """``[rows, slots + 1]``: whether the row meets every condition of the slot's feature.

        The last column is the padding slot, always false.
        """
        result = np.empty((table.shape[0], self.first.size + 1), dtype=bool)
        result[:, :-1] = np.take(table, self.first, axis=1)
        for count, elements in self.extra:
            result[:, :count] &= np.take(table, elements, axis=1)
        result[:, -1] = False
        return result


class _Tables:
    """Leaves of width <= TABLE_WIDTH: each slot's value for every pattern of the path."""

    def __init__(self, leaves: list[_Leaf], slots: _Slots) -> None:
        self.slots = slots
        widths = slots.widths
        sizes = widths << widths  # width * 2**width values per leaf
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        values = np.empty(int(sizes.sum()))
        for width in np.unique(widths).tolist():
            members = np.flatnonzero(widths == width)
            t, w = _quadrature(width)
            bits = ((np.arange(1 << width)[:, None] >> np.arange(width)) & 1).astype(bool)
            z = np.array([leaves[i].zs for i in members])[:, None, :, None]  # [l, 1, s, 1]
            on = z + (1.0 - z) * t
            off = z * (1.0 - t)
            mask = bits[None, :, :, None]
            product = np.where(mask, on, off).prod(axis=2)  # [l, patterns, q]
            gains = np.where(mask, (1.0 - z) / on, -z / off) * w  # [l, patterns, s, q]
            phi = np.einsum("lpsq,lpq->lps", gains, product)
            phi *= np.array([leaves[i].value for i in members])[:, None, None]
            index = offsets[members][:, None] + np.arange(width << width)
            values[index] = phi.reshape(members.size, -1)
        self.values = values
        self.slot_width = widths[slots.leaf]
        self.slot_offset = offsets[slots.leaf] + slots.position
        padded = slots.padded.T  # [width, leaves]: the long axis last
        self.bits = np.where(
            padded < slots.first.size, (1 << np.arange(padded.shape[0]))[:, None], 0
        ).astype(np.intp)
        self.padded = padded.reshape(-1)
        self.shape = padded.shape

    def contributions(self, table: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[Any]]:
        slots = self.slots
        follows = np.take(slots.follows(table), self.padded, axis=1)
        follows = follows.reshape(-1, *self.shape)  # [rows, width, leaves]
        pattern = (follows * self.bits).sum(axis=1)  # [rows, leaves]
        rows = np.take(pattern, slots.leaf, axis=1)
        rows *= self.slot_width
        rows += self.slot_offset
        return slots.outputs, np.take(self.values, rows)


class _Quadrature:
    """Wider leaves: the Gauss-Legendre form, one group of slots per (leaf, node)."""

    def __init__(self, slots: _Slots) -> None:
        self.slots = slots
        width = slots.padded.shape[1]
        groups: list[NDArray[np.intp]] = []
        nodes: list[NDArray[np.float64]] = []
        weights: list[NDArray[np.float64]] = []
        for leaf_index, leaf_width in enumerate(slots.widths.tolist()):
            t, w = _quadrature(leaf_width)
            groups.append(np.repeat(slots.padded[leaf_index][None, :], t.size, axis=0))
            nodes.append(t)
            weights.append(w)
        padded = np.concatenate(groups)  # [groups, width]
        t = np.concatenate(nodes)[:, None]
        real = padded < slots.first.size
        index = np.where(real, padded, 0)
        z = np.where(real, slots.z[index], 1.0)
        scale = np.where(real, np.concatenate(weights)[:, None] * slots.values[index], 0.0)
        on = z + (1.0 - z) * t
        off = np.where(real, z * (1.0 - t), 1.0)
        gain_on, gain_off = scale * (1.0 - z) / on, scale * (0.0 - z) / off
        # [width, groups]: the long axis last; a row's factor is off + follows * step.
        self.off, self.step = off.T.copy(), (on - off).T.copy()
        self.gain_off, self.gain_step = gain_off.T.copy(), (gain_on - gain_off).T.copy()
        self.padded = padded.T.reshape(-1)
        self.shape = (width, padded.shape[0])
        # Padding contributes exactly zero (its gains are zero) to output 0.
        self.outputs = np.where(real, slots.outputs[index], 0).T.reshape(-1)

    def contributions(self, table: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[Any]]:
        follows = np.take(self.slots.follows(table), self.padded, axis=1)
        follows = follows.reshape(-1, *self.shape)  # [rows, width, groups]
        product = (follows * self.step + self.off).prod(axis=1)  # [rows, groups]
        gains = follows * self.gain_step
        gains += self.gain_off
        gains *= product[:, None, :]
        return self.outputs, gains.reshape(follows.shape[0], -1)
