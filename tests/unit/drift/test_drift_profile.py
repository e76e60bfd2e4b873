"""Reference profiles: quantile bins with open tails, exact merges, JSON round trips."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flywheel.drift.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    merge,
    merge_all,
)
from flywheel.errors import InvalidInputError, ProfileMismatchError

values = arrays(
    np.float64,
    st.integers(min_value=0, max_value=300),
    elements=st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0]),
    ),
)
reference_data = arrays(
    np.float64,
    st.integers(min_value=1, max_value=300),
    elements=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)


def _assert_same(a: NumericProfile, b: NumericProfile) -> None:
    """Counts and extremes exactly; sums up to float64 rounding."""
    assert a.edges == b.edges
    assert a.counts == b.counts
    assert (a.count, a.missing, a.minimum, a.maximum) == (b.count, b.missing, b.minimum, b.maximum)
    scale = max(1.0, b.count * 1e6)
    assert a.sum == pytest.approx(b.sum, rel=1e-9, abs=1e-9 * scale)
    assert a.sum_sq == pytest.approx(b.sum_sq, rel=1e-9, abs=1e-9 * scale * 1e6)


@settings(max_examples=150, deadline=None)
@given(reference=reference_data, batch=values, cut=st.floats(min_value=0, max_value=1))
def test_merging_two_halves_equals_profiling_the_whole(
    reference: np.ndarray, batch: np.ndarray, cut: float
) -> None:
    ref = NumericProfile.build(reference, bins=20)
    split = int(cut * batch.size)

    merged = ref.observe(batch[:split]).merge(ref.observe(batch[split:]))

    _assert_same(merged, ref.observe(batch))


@settings(max_examples=150, deadline=None)
@given(reference=reference_data, batch=values)
def test_histogram_counts_every_finite_value_once(reference: np.ndarray, batch: np.ndarray) -> None:
    profile = NumericProfile.build(reference)

    counts = profile.histogram(batch)

    assert counts.sum() == np.isfinite(batch).sum()
    assert len(counts) == len(profile.edges) + 1
    assert sum(profile.counts) == profile.count == reference.size
    edges = profile.bin_edges
    assert edges[0] == -np.inf
    assert edges[-1] == np.inf
    assert np.all(np.diff(edges) > 0)


@settings(max_examples=100, deadline=None)
@given(reference=reference_data, batch=values)
def test_json_round_trip_is_lossless(reference: np.ndarray, batch: np.ndarray) -> None:
    matrix = np.column_stack([reference, reference[::-1]])
    profile = build_profile(matrix, ["a", "b"]).observe(
        np.column_stack([batch, batch]) if batch.size else np.empty((0, 2))
    )

    text = profile.to_json()

    assert ReferenceProfile.from_json(text) == profile
    json.loads(text)  # strict JSON: no NaN or Infinity tokens
    assert "Infinity" not in text
    assert "NaN" not in text


def test_values_on_an_edge_go_to_the_bin_that_starts_there() -> None:
    profile = NumericProfile.build([0.0] * 7 + [1.0] * 3, bins=10)

    assert profile.edges == (0.0, 1.0)
    assert profile.counts == (0, 7, 3)
    assert profile.histogram([-0.5, 0.0, 0.5, 1.0, 7.0]).tolist() == [1, 2, 2]


def test_moments_and_missing_rate() -> None:
    data = np.array([1.0, 2.0, 3.0, 4.0, np.nan, np.inf])

    profile = NumericProfile.build(data)

    assert (profile.count, profile.missing) == (4, 2)
    assert profile.missing_rate == pytest.approx(2 / 6)
    assert profile.mean == pytest.approx(2.5)
    assert profile.std == pytest.approx(np.std([1.0, 2.0, 3.0, 4.0]))
    assert (profile.minimum, profile.maximum) == (1.0, 4.0)


def test_variance_stays_accurate_for_large_offsets() -> None:
    rng = np.random.default_rng(1)
    data = 1e9 + rng.normal(size=10_000)

    profile = NumericProfile.build(data)

    assert profile.std == pytest.approx(np.std(data), rel=1e-6)


def test_a_million_rows_count_like_searchsorted() -> None:
    rng = np.random.default_rng(2)
    profile = build_profile(rng.normal(size=(10_000, 1)), ["x"])
    window = rng.normal(loc=0.3, size=1_000_000)

    counts = profile.histogram("x", window)

    edges = np.asarray(profile.numeric["x"].edges)
    expected = np.bincount(np.searchsorted(edges, window, side="right"), minlength=edges.size + 1)
    assert counts.tolist() == expected.tolist()


@pytest.mark.parametrize("huge", [1e200, -1e200, 1e308, -1e308])
def test_values_that_overflow_the_moments_still_give_a_readable_profile(huge: float) -> None:
    training = np.column_stack([np.r_[np.arange(999.0), huge]])

    reference = build_profile(training, ["x"])
    window = reference.observe(np.column_stack([np.r_[np.arange(500.0), huge, -huge]]))

    for profile in (reference, window, merge(reference, window)):
        text = profile.to_json()
        assert ReferenceProfile.from_json(text) == profile  # stored, and read back
        assert '"sum_sq":null' not in text
        assert '"sum":null' not in text
        numeric = profile.numeric["x"]
        assert math.isinf(numeric.variance)
        assert numeric.count == profile.rows


def test_profiles_with_different_edges_refuse_to_merge() -> None:
    a = build_profile(np.arange(100.0).reshape(-1, 1), ["x"])
    b = build_profile(np.arange(100.0, 200.0).reshape(-1, 1), ["x"])

    with pytest.raises(ProfileMismatchError, match="feature 'x'") as caught:
        merge(a, b)

    assert caught.value.field == "x"
    with pytest.raises(ProfileMismatchError, match="different features"):
        merge(a, build_profile(np.arange(10.0).reshape(-1, 1), ["y"]))


def test_categorical_counts_merge_and_track_new_categories() -> None:
    profile = CategoricalProfile.build(["a", "b", "a", None, "", np.nan, 3.0])

    merged = profile.merge(profile.observe(["c", "a"]))

    assert profile.counts == {"3": 1, "a": 2, "b": 1}
    assert profile.missing == 3
    assert merged.counts == {"3": 1, "a": 3, "b": 1, "c": 1}
    assert merged.frequencies()["a"] == pytest.approx(0.5)


def test_mixed_profile_observes_windows_in_the_reference_bins() -> None:
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(size=1000), rng.integers(0, 3, size=1000)]).astype(object)
    x[0, 0] = None
    reference = build_profile(x, ["amount", "segment"], categorical=["segment"])

    window = reference.observe(x[:10])
    both = merge(window, reference.observe(x[10:]))

    assert reference.numeric["amount"].missing == 1
    assert both.numeric["amount"].counts == reference.numeric["amount"].counts
    assert both.categorical["segment"].counts == reference.categorical["segment"].counts
    assert both.rows == reference.rows == 1000


def test_input_problems_are_invalid_input_errors() -> None:
    with pytest.raises(InvalidInputError, match="2 columns"):
        build_profile(np.zeros((3, 3)), ["a", "b"])
    with pytest.raises(InvalidInputError, match="not in feature_names"):
        build_profile(np.zeros((3, 1)), ["a"], categorical=["b"])
    with pytest.raises(InvalidInputError, match="is not numeric"):
        build_profile(np.array([["x"]], dtype=object), ["a"])
    with pytest.raises(InvalidInputError, match="categorical"):
        build_profile(np.zeros((3, 1)), ["a"], categorical=["a"]).histogram("a", [1.0])


def test_profile_module_needs_only_numpy() -> None:
    code = (
        "import sys, flywheel.drift.profile as p; "
        "p.build_profile([[1.0], [2.0]], ['x']); "
        "heavy = {'sklearn', 'scipy', 'onnx', 'onnxruntime', 'pandas', 'boto3'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def test_prediction_deciles_travel_with_the_reference_and_not_with_windows() -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(1_000, 2))
    scores = rng.uniform(0, 1, 300)
    ref = build_profile(features, ["a", "b"], predictions=scores)

    assert ref.predictions is not None
    assert ref.predictions.count == 300
    assert len(ref.predictions.counts) == 10  # deciles
    assert ReferenceProfile.from_json(ref.to_json()) == ref
    # Profiles stored before predictions existed still load.
    old = json.loads(ref.to_json())
    del old["predictions"]
    assert ReferenceProfile.model_validate(old).predictions is None
    # Windows are observed from features only; merging them keeps none.
    windows = [ref.observe(rng.normal(size=(50, 2))) for _ in range(3)]
    assert merge_all(windows).predictions is None
    assert merge(ref, windows[0]).predictions is None
    # Two references in the same bins add up.
    assert merge(ref, ref).predictions.count == 600  # type: ignore[union-attr]


def test_predictions_without_a_finite_score_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="predictions"):
        build_profile(np.ones((5, 1)), ["a"], predictions=[float("nan")] * 5)
