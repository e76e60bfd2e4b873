"""The explainer archive keeps what typed models need: their preprocessing graph, under the
registered digest, and raw-record backgrounds (strings, gaps) for the sampler."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from flywheel.explain.artifact import Explainer, ExplainerError
from flywheel.explain.linear import LinearShap
from flywheel.explain.sampling import PermutationShap


def _loaded(explainer: Explainer) -> Explainer:
    data = explainer.to_bytes()
    return Explainer.from_bytes(data, expected_sha256=hashlib.sha256(data).hexdigest())


def _linear() -> Explainer:
    linear = LinearShap(np.array([[1.0, 2.0, 3.0]]), np.zeros(1), np.zeros(3))
    return Explainer.linear(
        linear,
        columns=("age", "plan=basic", "plan=pro"),
        features=("age", "plan"),
        column_feature=(0, 1, 1),
        outputs=("yes",),
        space="log_odds",
    )


def test_the_preprocessing_graph_travels_in_the_archive_under_its_digest():
    graph = bytes(range(256)) * 4
    with_graph = _linear().with_preprocessing(graph)
    loaded = _loaded(with_graph)
    assert loaded.preprocessing == graph
    # A different graph is a different archive: the registered SHA-256 no longer matches
    data = with_graph.to_bytes()
    other = _linear().with_preprocessing(graph[:-1] + b"\x00").to_bytes()
    with pytest.raises(ExplainerError, match="SHA-256"):
        Explainer.from_bytes(other, expected_sha256=hashlib.sha256(data).hexdigest())


def test_columns_are_summed_into_the_input_feature_they_came_from():
    explanation = _loaded(_linear()).explain(np.array([[2.0, 1.0, 0.0]]), expanded=True)
    assert explanation.columns == ("age", "plan=basic", "plan=pro")
    assert explanation.expanded[0, :, 0].tolist() == [2.0, 2.0, 0.0]
    assert explanation.values[0, :, 0].tolist() == [2.0, 2.0]


def test_a_sampler_carries_no_preprocessing_graph():
    sampler = PermutationShap(background=np.zeros((2, 1)), permutations=2)
    sampling = Explainer.sampling(sampler, columns=("x",), outputs=("y",), space="value")
    with pytest.raises(ExplainerError, match="preprocessing"):
        sampling.with_preprocessing(b"graph")


def test_a_raw_record_background_keeps_its_strings_and_gaps():
    # Given raw records: a number with a gap, a category and a text with gaps
    background = np.array(
        [[30.0, "basic", "fine"], [None, "pro", None], [50.0, None, "refund please"]],
        dtype=object,
    )
    sampler = PermutationShap(background=background, permutations=4, seed=1)
    explainer = Explainer.sampling(
        sampler, columns=("age", "plan", "note"), outputs=("y",), space="value",
        records=True, string_columns=(1, 2),
    )  # fmt: skip

    def model(rows: np.ndarray) -> np.ndarray:  # additive, so sampling is exact
        age = np.nan_to_num(np.array([np.nan if v is None else v for v in rows[:, 0]], float))
        pro = np.array([2.0 if v == "pro" else 0.0 for v in rows[:, 1]])
        refund = np.array([3.0 if "refund" in (v or "") else 0.0 for v in rows[:, 2]])
        return (age / 10 + pro + refund)[:, None]

    # When it comes back from the archive and explains a raw record
    loaded = _loaded(explainer)
    record = np.array([[40.0, "pro", "refund now"]], dtype=object)
    explanation = loaded.explain(record, model=model)
    # Then the values are the exact Shapley values against the stored background
    assert loaded.records
    assert explanation.approximate
    assert np.allclose(explanation.values[0, :, 0], [4.0 - 8.0 / 3, 2.0 - 2.0 / 3, 3.0 - 1.0])
    assert explanation.base_values[0] + explanation.values.sum() == pytest.approx(9.0)
