"""The fine grid counts exactly like searchsorted, keeps nice edges, and profiles merge exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flywheel.drift._binning import CHUNK_ROWS, Grid
from flywheel.drift.profile import (
    CategoricalProfile,
    CategoryCodes,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    category_codes,
    merge,
    merge_all,
)
from flywheel.errors import InvalidInputError, InvalidWindowError

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_subnormal=True)
samples = arrays(np.float64, st.integers(min_value=2, max_value=400), elements=finite)
batches = arrays(
    np.float64,
    st.integers(min_value=0, max_value=400),
    elements=st.one_of(
        finite,
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 1e300, -1e300]),
    ),
)


def _searchsorted_counts(profile: NumericProfile, values: np.ndarray) -> list[int]:
    kept = values[np.isfinite(values)]
    edges = np.asarray(profile.edges)
    return np.bincount(
        np.searchsorted(edges, kept, side="right"), minlength=edges.size + 1
    ).tolist()


@settings(max_examples=200, deadline=None)
@given(reference=samples, batch=batches)
def test_grid_counts_agree_with_searchsorted_exactly(
    reference: np.ndarray, batch: np.ndarray
) -> None:
    profile = NumericProfile.build(reference, bins=30)
    # Reuse the reference's own values, edges and their float neighbours: the hard cases.
    edges = np.asarray(profile.edges)
    probes = np.concatenate(
        [batch, edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), reference]
    )

    window = profile.observe(probes)

    assert list(window.counts) == _searchsorted_counts(profile, probes)
    assert window.count + window.missing == probes.size


@settings(max_examples=100, deadline=None)
@given(reference=samples, batch=batches, cut=st.floats(min_value=0, max_value=1))
def test_fine_cells_and_tails_merge_exactly(
    reference: np.ndarray, batch: np.ndarray, cut: float
) -> None:
    profile = NumericProfile.build(reference, bins=20)
    split = int(cut * batch.size)

    merged = profile.observe(batch[:split]).merge(profile.observe(batch[split:]))
    whole = profile.observe(batch)

    assert merged.counts == whole.counts
    assert merged.fine_start == whole.fine_start
    assert merged.fine_counts == whole.fine_counts
    assert [c[:2] for c in merged.upper_tail] == [c[:2] for c in whole.upper_tail]
    assert [c[:2] for c in merged.lower_tail] == [c[:2] for c in whole.lower_tail]


@settings(max_examples=100, deadline=None)
@given(reference=samples, batch=batches)
def test_window_profiles_keep_only_occupied_cells_and_round_trip_as_plain_json(
    reference: np.ndarray, batch: np.ndarray
) -> None:
    profile = NumericProfile.build(reference, bins=20)
    window = profile.observe(batch)  # fine counts straight from the scan's array

    again = NumericProfile.model_validate_json(window.model_dump_json())  # re-validated

    assert again == window
    assert window == again
    assert hash(again) == hash(window)
    assert again.fine_counts == window.fine_counts
    assert isinstance(again.fine_counts, tuple)
    assert window.model_dump()["fine_counts"] == again.fine_counts
    if window.count and profile.grid is not None:
        counts = list(window.fine_counts)
        assert counts[0] > 0
        assert counts[-1] > 0
        fine = window.fine_histogram()
        assert fine is not None
        assert int(fine.sum()) == window.count
    else:
        assert len(window.fine_counts) == 0


@pytest.mark.parametrize(
    ("centre", "spread"),
    [
        (5.0, 1.0),  # grid starts near zero: raw cells counted directly
        (1e6, 1.0),  # far from zero: the grid's offset is subtracted
        (0.0, 1.0),  # crosses zero: floor needed, general route
        (-1e6, 1.0),  # negative: general route
    ],
)
def test_every_counting_route_matches_the_cell_definition(centre: float, spread: float) -> None:
    rng = np.random.default_rng(7)
    profile = NumericProfile.build(centre + spread * rng.normal(size=5_000))
    grid = profile.grid.grid() if profile.grid is not None else None
    assert grid is not None
    just_past = [grid.low - 1e-9 * abs(grid.low) - 1e-12, grid.high, grid.high * (1 + 1e-12)]
    windows = {
        "inside": centre + spread * rng.uniform(-1, 1, size=3 * CHUNK_ROWS),
        "near tails": np.concatenate([centre + spread * rng.normal(size=50_000), just_past]),
        "far tails": np.concatenate([centre + spread * rng.normal(size=1_000), [1e12, -1e12]]),
        "one side far": np.concatenate(
            [centre + spread * rng.normal(size=1_000), [centre * 3 + 1e4]]
        ),
        "a few cells out": np.concatenate(
            [
                centre + spread * rng.normal(size=1_000),
                [grid.low - 3 / grid.scale, grid.high + 3 / grid.scale],
            ]
        ),
        "above only": np.concatenate(
            [centre + spread * rng.uniform(-1, 1, size=1_000), [grid.high + 3 / grid.scale]]
        ),
    }
    for name, window in windows.items():
        fine = profile.observe(window).fine_histogram()
        expected = np.bincount(grid.cells_of(window), minlength=grid.cells + 2)
        assert fine is not None
        assert fine.tolist() == expected.tolist(), name


def test_edges_stay_on_the_data_for_discrete_features() -> None:
    profile = NumericProfile.build(np.tile([-3.0, 0.0, 1.0, 2.5, 40.0], 200), bins=10)

    assert profile.grid is not None
    assert profile.edges == (-3.0, 0.0, 1.0, 2.5, 40.0)
    assert profile.counts == (0, 200, 200, 200, 200, 200)


def test_grid_cells_start_exactly_at_multiples_of_the_cell_width() -> None:
    grid = Grid(scale=8.0, base=-17, cells=40)

    starts = [grid.start(k) for k in range(1, 42)]

    assert starts == [(k + grid.base) / 8.0 for k in range(1, 42)]
    assert all(grid.cell(s) == k for k, s in enumerate(starts, start=1))
    assert all(grid.cell(math.nextafter(s, -math.inf)) == k - 1 for k, s in enumerate(starts, 1))


def test_a_window_spanning_many_chunks_with_gaps_counts_everything() -> None:
    rng = np.random.default_rng(4)
    profile = NumericProfile.build(rng.normal(size=5000))
    window = rng.standard_t(2, size=3 * CHUNK_ROWS + 17)
    window[::997] = np.nan

    observed = profile.observe(window)

    assert list(observed.counts) == _searchsorted_counts(profile, window)
    assert observed.missing == int(np.isnan(window).sum())
    assert observed.minimum == np.nanmin(window)
    assert observed.maximum == np.nanmax(window)
    assert observed.mean == pytest.approx(np.nanmean(window), rel=1e-12)
    assert observed.std == pytest.approx(np.nanstd(window), rel=1e-9)
    tails = sum(n for _, n, _ in observed.lower_tail) + sum(n for _, n, _ in observed.upper_tail)
    fine = observed.fine_histogram()
    assert fine is not None
    assert tails == fine[0] + fine[-1]


def test_integer_and_float32_columns_count_like_float64() -> None:
    rng = np.random.default_rng(5)
    profile = NumericProfile.build(rng.integers(0, 50, size=2000).astype(float))
    values = rng.integers(-5, 60, size=10_000)

    as_int = profile.observe(values)
    as_f32 = profile.observe(values.astype(np.float32))

    assert as_int.counts == as_f32.counts == profile.observe(values.astype(float)).counts


def test_profiles_without_a_grid_still_work() -> None:
    rng = np.random.default_rng(6)
    data = rng.normal(size=3000)

    profile = NumericProfile.build(data, cells=0)
    values = rng.normal(size=500)
    window = profile.observe(values)

    assert profile.grid is None
    assert window.fine_histogram() is None
    assert list(window.counts) == _searchsorted_counts(profile, values)


def test_tampered_grid_profiles_fail_validation() -> None:
    profile = NumericProfile.build(np.arange(100.0))
    document = profile.model_dump()
    document["edges"] = (document["edges"][0] + 1e-3, *document["edges"][1:])

    with pytest.raises(ValueError, match="start of a grid cell"):
        NumericProfile.model_validate(document)


def test_category_codes_count_without_building_strings() -> None:
    profile = CategoricalProfile.build([]).observe_codes(
        np.array([0, 1, 1, -1, 2, 2, 2], dtype=np.int8), ["eu", "us", 3.0]
    )

    assert profile.counts == {"3": 3, "eu": 1, "us": 2}
    assert profile.missing == 1
    with pytest.raises(InvalidInputError, match=r"\[-1, 2\]"):
        CategoricalProfile.build([]).observe_codes([0, 3], ["a", "b", "c"])


def test_dictionary_columns_from_pandas_like_and_arrow_objects() -> None:
    pa = pytest.importorskip("pyarrow")
    arrow = pa.chunked_array(
        [pa.array(["a", None, "b"]).dictionary_encode(), pa.array(["b", "c"]).dictionary_encode()]
    )

    codes = category_codes(arrow)

    assert codes is not None
    labels = [None if c < 0 else codes.categories[c] for c in codes.codes]
    assert labels == ["a", None, "b", "b", "c"]


def test_observe_columns_matches_observe_on_a_matrix() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, 2))
    segment = rng.integers(0, 4, size=2000)
    matrix = np.column_stack([x, segment]).astype(object)
    reference = build_profile(matrix, ["a", "b", "segment"], categorical=["segment"])

    by_columns = reference.observe_columns(
        {"a": x[:, 0], "b": x[:, 1], "segment": CategoryCodes(segment, range(4)), "extra": x}
    )
    by_ints = reference.observe_columns({"a": x[:, 0], "b": x[:, 1], "segment": segment})

    by_rows = reference.observe(matrix)
    assert by_columns == by_ints
    assert by_columns.categorical == by_rows.categorical
    for name in ("a", "b"):
        mine, theirs = by_columns.numeric[name], by_rows.numeric[name]
        assert (mine.counts, mine.fine_counts) == (theirs.counts, theirs.fine_counts)
        assert mine.sum_sq == pytest.approx(theirs.sum_sq, rel=1e-12)  # BLAS order differs


def test_observe_columns_names_the_missing_column() -> None:
    reference = build_profile(np.zeros((10, 2)), ["a", "b"])

    with pytest.raises(InvalidWindowError, match="'b'") as caught:
        reference.observe_columns({"a": np.zeros(3)})
    assert caught.value.field == "b"
    with pytest.raises(InvalidWindowError, match="differ in length"):
        reference.observe_columns({"a": np.zeros(3), "b": np.zeros(4)})


def test_merge_all_folds_shards_and_needs_one() -> None:
    reference = build_profile(np.arange(50.0).reshape(-1, 1), ["x"])
    shards = [reference.observe(np.full((3, 1), float(i))) for i in range(4)]

    merged = merge_all(shards)

    assert merged == merge(merge(merge(shards[0], shards[1]), shards[2]), shards[3])
    assert merged.rows == 12
    with pytest.raises(InvalidInputError):
        merge_all([])


def test_reference_json_stays_small() -> None:
    rng = np.random.default_rng(8)
    profile = build_profile(rng.normal(size=(100_000, 20)), [f"f{i}" for i in range(20)])

    text = profile.to_json()

    assert len(text) < 400_000
    assert ReferenceProfile.from_json(text) == profile


def test_categorical_labels_do_not_mix_booleans_and_numbers() -> None:
    profile = CategoricalProfile.build(
        np.array([True, 1, 1.0, False, 0, "x", None, float("nan"), ""], dtype=object)
    )

    assert profile.counts == {"0": 1, "1": 2, "false": 1, "true": 1, "x": 1}
    assert profile.missing == 3
