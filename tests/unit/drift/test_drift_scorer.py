"""Scoring windows: sample-size aware verdicts, exact shard merges, Parquet decoding."""

from __future__ import annotations

import io
import itertools
import json
import time

import numpy as np
import pytest

from flywheel.drift.profile import CategoryCodes, build_profile, merge_all
from flywheel.drift.scorer import DriftResult, observe_window, profile_from_parquet, score_window
from flywheel.drift.statistics import DriftMethod, DriftPolicy, FeatureOverride, Verdict
from flywheel.errors import (
    HTTP_STATUS_BY_CODE,
    ConfigError,
    InvalidWindowError,
    ProfileMismatchError,
    http_status_for,
)

NUMERIC = [f"n{i}" for i in range(16)]
CATEGORICAL = ["country", "plan", "channel", "device"]
FEATURES = NUMERIC + CATEGORICAL
LEVELS = {"country": 12, "plan": 4, "channel": 6, "device": 3}


def _columns(rng: np.random.Generator, rows: int, shift: float = 0.0, shifted: int = 0) -> dict:
    """16 numeric columns (the first ``shifted`` moved by ``shift`` std) and 4 coded ones."""
    columns: dict = {}
    for i, name in enumerate(NUMERIC):
        loc = shift if i < shifted else 0.0
        columns[name] = rng.normal(loc, 1.0 + i / 10, size=rows) * (i + 1) + 10 * i
    for name, levels in LEVELS.items():
        weights = np.linspace(1, 2, levels)
        codes = rng.choice(levels, size=rows, p=weights / weights.sum()).astype(np.int32)
        columns[name] = CategoryCodes(codes, [f"{name}-{k}" for k in range(levels)])
    return columns


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(20)
    cols = _columns(rng, 200_000)
    matrix = np.column_stack(
        [cols[n] for n in NUMERIC]
        + [np.asarray(cols[c].categories, dtype=object)[cols[c].codes] for c in CATEGORICAL]
    ).astype(object)
    return build_profile(matrix, FEATURES, categorical=CATEGORICAL)


def test_a_million_rows_from_the_same_distribution_do_not_drift(reference) -> None:
    # Given a 1M-row window drawn like the training data
    window = _columns(np.random.default_rng(21), 1_000_000)

    # When it is scored with the default policy
    result = score_window(reference, window)

    # Then distances (not p-values) decide, and nothing drifts
    assert result.verdict is Verdict.NO_DRIFT
    assert result.drifted == ()
    numeric_methods = {result.feature(n).method for n in NUMERIC}
    assert numeric_methods == {DriftMethod.WASSERSTEIN}
    assert {result.feature(c).method for c in CATEGORICAL} == {DriftMethod.JENSEN_SHANNON}
    assert max(result.feature(n).score or 0 for n in NUMERIC) < 0.02


def test_a_negligible_shift_on_a_million_rows_is_not_drift(reference) -> None:
    window = _columns(np.random.default_rng(22), 1_000_000, shift=0.02, shifted=16)

    result = score_window(reference, window)

    # A p-value test would flag every shifted column; the distance does not.
    assert all((result.feature(n).statistics.ks_p_value or 1) < 0.05 for n in NUMERIC)
    assert result.drifted == ()


def test_a_real_shift_drifts_the_shifted_features_and_the_dataset(reference) -> None:
    window = _columns(np.random.default_rng(23), 100_000, shift=0.5, shifted=12)

    result = score_window(reference, window, labels={"model": "churn", "version": "7"})

    assert result.drifted == tuple(NUMERIC[:12])
    assert result.verdict is Verdict.DRIFT
    assert result.share_drifted == pytest.approx(12 / 20)
    assert result.labels == {"model": "churn", "version": "7"}
    assert result.metrics()["n0.drifted"] == 1.0


def test_small_windows_use_p_values_and_still_catch_a_shift(reference) -> None:
    rng = np.random.default_rng(24)

    same = score_window(reference, _columns(rng, 400))
    moved = score_window(reference, _columns(rng, 400, shift=0.6, shifted=20))

    assert {same.feature(n).method for n in NUMERIC} == {DriftMethod.KS}
    assert {same.feature(c).method for c in CATEGORICAL} == {DriftMethod.CHI_SQUARE}
    assert same.verdict is Verdict.NO_DRIFT
    assert moved.drifted == tuple(NUMERIC)
    # Evidently's rule looks at the reference size and would use distances here.
    evidently = score_window(reference, _columns(rng, 400), DriftPolicy.evidently())
    assert evidently.feature("n0").method is DriftMethod.WASSERSTEIN


def test_scoring_merged_shards_equals_scoring_the_whole_window(reference) -> None:
    # Given one window cut into three uneven shards (one Lambda or Map item each)
    rng = np.random.default_rng(25)
    whole = _columns(rng, 90_000, shift=0.1, shifted=8)
    cuts = [0, 10_000, 55_000, 90_000]
    shards = [
        observe_window(
            reference,
            {
                k: (
                    CategoryCodes(v.codes[a:b], v.categories)
                    if isinstance(v, CategoryCodes)
                    else v[a:b]
                )
                for k, v in whole.items()
            },
        )
        for a, b in itertools.pairwise(cuts)
    ]

    # When the shard profiles are merged and scored
    merged = merge_all(shards)
    from_shards = score_window(reference, merged)
    from_whole = score_window(reference, whole)

    # Then counts agree exactly, and so do verdicts; statistics up to float rounding
    single = observe_window(reference, whole)
    for name in NUMERIC:
        a, b = merged.numeric[name], single.numeric[name]
        assert (a.counts, a.fine_counts, a.minimum, a.maximum) == (
            b.counts,
            b.fine_counts,
            b.minimum,
            b.maximum,
        )
    assert merged.categorical == single.categorical
    assert from_shards.drifted == from_whole.drifted
    for mine, theirs in zip(from_shards.features, from_whole.features, strict=True):
        assert (mine.method, mine.verdict, mine.current_rows) == (
            theirs.method,
            theirs.verdict,
            theirs.current_rows,
        )
        assert mine.score == pytest.approx(theirs.score, rel=1e-9, abs=1e-12)


def _parquet(columns: dict, *, row_group_size: int = 25_000) -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    arrays = {}
    for name, value in columns.items():
        if isinstance(value, CategoryCodes):
            labels = np.asarray(value.categories, dtype=object)[value.codes]
            arrays[name] = pa.array(labels.tolist(), type=pa.string())
        else:
            arrays[name] = pa.array(value)
    sink = io.BytesIO()
    pq.write_table(pa.table(arrays), sink, row_group_size=row_group_size)
    return sink.getvalue()


def test_parquet_windows_decode_to_the_same_profile_as_arrays(reference) -> None:
    rng = np.random.default_rng(26)
    columns = _columns(rng, 60_000)
    columns["n3"] = columns["n3"].copy()
    columns["n3"][::50] = np.nan
    data = _parquet(columns)

    from_parquet = profile_from_parquet(data, reference)
    from_arrays = observe_window(reference, columns)

    assert from_parquet.rows == 60_000
    assert from_parquet.categorical == from_arrays.categorical
    for name in NUMERIC:
        a, b = from_parquet.numeric[name], from_arrays.numeric[name]
        assert (a.counts, a.fine_counts, a.missing) == (b.counts, b.fine_counts, b.missing)
    assert from_parquet.numeric["n3"].missing == 1200


def test_arrow_tables_and_nulls_in_categoricals_are_accepted(reference) -> None:
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(27)
    columns = _columns(rng, 1000)
    table = pa.table(
        {
            **{n: pa.array(columns[n]) for n in NUMERIC},
            **{c: pa.array([f"{c}-1"] * 999 + [None]) for c in CATEGORICAL},
        }
    )

    result = score_window(reference, table)

    assert result.feature("country").current_missing_rate == pytest.approx(0.001)
    assert result.current_rows == 1000


def test_unreadable_or_incomplete_parquet_is_an_invalid_window(reference) -> None:
    with pytest.raises(InvalidWindowError, match="not a readable Parquet"):
        profile_from_parquet(b"definitely not parquet", reference)
    columns = _columns(np.random.default_rng(28), 100)
    del columns["plan"]
    with pytest.raises(InvalidWindowError, match="'plan'") as caught:
        profile_from_parquet(_parquet(columns), reference)
    assert http_status_for(caught.value) == 422
    assert HTTP_STATUS_BY_CODE[InvalidWindowError.code] == 422


def test_windows_from_other_bins_or_methods_for_the_wrong_kind_are_refused(reference) -> None:
    other = build_profile(np.random.default_rng(29).normal(size=(100, 20)), FEATURES)
    with pytest.raises(ProfileMismatchError):
        score_window(reference, other.observe(np.zeros((3, 20))))
    policy = DriftPolicy(features={"plan": FeatureOverride(method=DriftMethod.KS)})
    with pytest.raises(ConfigError, match="categorical"):
        score_window(reference, _columns(np.random.default_rng(30), 500), policy)


def test_disabled_and_thin_features_are_left_out_of_the_share(reference) -> None:
    rng = np.random.default_rng(31)
    columns = _columns(rng, 200, shift=1.0, shifted=4)
    columns["n5"] = np.full(200, np.nan)
    policy = DriftPolicy(features={"n0": FeatureOverride(enabled=False)}, drift_share=0.15)

    result = score_window(reference, columns, policy)

    assert result.feature("n0").verdict is Verdict.DISABLED
    assert result.feature("n5").verdict is Verdict.INSUFFICIENT_DATA
    assert result.scored_features == 18
    assert result.drifted == ("n1", "n2", "n3")
    assert result.verdict is Verdict.DRIFT  # 3 / 18 >= 0.15


def test_new_categories_are_evidence_and_the_json_stays_strict(reference) -> None:
    rng = np.random.default_rng(32)
    columns = _columns(rng, 300)
    codes = columns["device"].codes.copy()
    codes[:40] = 3
    columns["device"] = CategoryCodes(codes, ["device-0", "device-1", "device-2", "tablet"])

    result = score_window(reference, columns)
    text = result.to_json()

    device = result.feature("device")
    assert device.new_categories == ("tablet",)
    assert device.statistics.chi_square == float("inf")
    assert device.drifted
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert DriftResult.from_json(text) == result


def test_a_million_rows_by_twenty_columns_score_in_well_under_a_second(reference) -> None:
    window = _columns(np.random.default_rng(33), 1_000_000)

    started = time.perf_counter()
    score_window(reference, window)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0  # bench/drift.py measures ~0.1 s; this only catches regressions


class _Categorical:
    def __init__(self, codes: np.ndarray, categories: list[str]) -> None:
        self.codes, self.categories = codes, categories


class _Series:
    """The slice of a pandas Series the scorer uses (pandas is not a project dependency)."""

    def __init__(self, values: np.ndarray | None = None, cat: _Categorical | None = None) -> None:
        self._values, self.cat = values, cat

    def to_numpy(self, dtype: str, na_value: float) -> np.ndarray:
        values = np.array([na_value if v is None else v for v in self._values], dtype=object)
        return values.astype(dtype)


class _Frame:
    def __init__(self, columns: dict[str, _Series]) -> None:
        self._columns = columns
        self.columns = list(columns)
        self.dtypes = dict.fromkeys(columns, "object")

    def __getitem__(self, name: str) -> _Series:
        return self._columns[name]


def test_dataframes_are_read_by_codes_and_nullable_numbers(reference) -> None:
    columns = _columns(np.random.default_rng(34), 2_000)
    n0 = columns["n0"].astype(object)
    n0[:10] = None  # pandas' nullable NA arrives as a missing value
    frame = _Frame(
        {
            **{n: _Series(columns[n]) for n in NUMERIC[1:]},
            "n0": _Series(n0),
            **{
                c: _Series(cat=_Categorical(columns[c].codes, columns[c].categories))
                for c in CATEGORICAL
            },
        }
    )

    from_frame = score_window(reference, frame)

    columns["n0"] = np.where(np.arange(2_000) < 10, np.nan, columns["n0"])
    assert from_frame == score_window(reference, columns)
    assert from_frame.feature("n0").current_missing_rate == pytest.approx(10 / 2_000)


def test_a_feature_that_starts_arriving_empty_drifts_whatever_its_distribution() -> None:
    # Given a reference with 2% missing values
    rng = np.random.default_rng(21)
    training = rng.normal(size=(20_000, 2))
    training[rng.random(20_000) < 0.02, 0] = np.nan
    reference = build_profile(training, ["a", "b"])
    # When the window's values come from the same distribution but 30% are missing
    window = rng.normal(size=(5_000, 2))
    window[rng.random(5_000) < 0.30, 0] = np.nan

    result = score_window(reference, {"a": window[:, 0], "b": window[:, 1]})

    # Then "a" drifted because of its gaps, "b" did not
    a, b = result.feature("a"), result.feature("b")
    assert a.drifted
    assert a.missing_rate_drifted
    assert a.current_missing_rate == pytest.approx(0.30, abs=0.02)
    assert not b.drifted
    assert not b.missing_rate_drifted
    # And Evidently's policy judges distributions only
    assert (
        not score_window(reference, {"a": window[:, 0], "b": window[:, 1]}, DriftPolicy.evidently())
        .feature("a")
        .missing_rate_drifted
    )
