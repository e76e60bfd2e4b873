"""Models without an exact explainer get a seeded, labelled estimate that still adds up."""

from __future__ import annotations

import hashlib

import numpy as np

from flywheel.explain.artifact import Explainer
from flywheel.explain.sampling import PermutationShap


def _loaded(background: np.ndarray) -> Explainer:
    sampler = PermutationShap(background=background, permutations=10, seed=7)
    built = Explainer.sampling(sampler, columns=("a", "b", "c"), outputs=("y",), space="value")
    data = built.to_bytes()
    return Explainer.from_bytes(data, expected_sha256=hashlib.sha256(data).hexdigest())


def test_a_sampled_explanation_adds_up_and_says_it_is_approximate():
    rng = np.random.default_rng(0)
    background, x = rng.normal(size=(20, 3)), rng.normal(size=(5, 3))

    def model(rows: np.ndarray) -> np.ndarray:
        return (np.sin(rows[:, 0]) * rows[:, 1] + rows[:, 2] ** 2)[:, None]

    explanation = _loaded(background).explain(x, model=model)
    total = explanation.base_values + explanation.values.sum(axis=1)
    assert np.abs(total - model(x)).max() < 1e-9
    assert explanation.approximate
    assert explanation.error_bound is not None
    assert explanation.error_bound > 0


def test_on_an_additive_model_the_estimate_is_exact_and_its_bound_zero():
    rng = np.random.default_rng(1)
    background, x = rng.normal(size=(20, 3)), rng.normal(size=(4, 3))
    weights = np.array([2.0, -1.0, 0.5])

    def model(rows: np.ndarray) -> np.ndarray:
        return (rows @ weights)[:, None]

    explanation = _loaded(background).explain(x, model=model)
    expected = (x - background.mean(axis=0)) * weights
    assert np.abs(explanation.values[:, :, 0] - expected).max() < 1e-12
    assert explanation.error_bound is not None
    assert explanation.error_bound < 1e-12


def test_the_same_seed_gives_the_same_attributions():
    rng = np.random.default_rng(2)
    background, x = rng.normal(size=(10, 3)), rng.normal(size=(2, 3))

    def model(rows: np.ndarray) -> np.ndarray:
        return (rows[:, 0] * rows[:, 1] * rows[:, 2])[:, None]

    first = _loaded(background).explain(x, model=model).values
    second = _loaded(background).explain(x, model=model).values
    assert np.array_equal(first, second)
