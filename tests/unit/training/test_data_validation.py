"""Data validation: each expectation passes on a healthy table and names itself when it fails."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest

from flywheel.drift.profile import ReferenceProfile, build_profile
from flywheel.training.config import FeatureRange
from flywheel.training.datasets import Dataset, dataset_from_bytes, load_dataset
from flywheel.training.validation import (
    DataExpectations,
    DataValidationReport,
    label_profile,
    load_checked,
    validate_dataset,
)

N = 1_000


def table(n: int = N, seed: int = 0, **change: Any) -> dict[str, list[Any]]:
    """A churn-like table: two numbers (one with gaps), a category and the label."""
    rng = np.random.default_rng(seed)
    age = rng.normal(45, 12, n).round(1)
    spend = rng.gamma(2.0, 30.0, n).round(2)
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2])
    churn = np.where(rng.random(n) < 0.25 + 0.002 * (spend - 60), "yes", "no")
    columns: dict[str, list[Any]] = {
        "age": [None if rng.random() < 0.05 else float(a) for a in age],
        "spend": spend.tolist(),
        "plan": plan.tolist(),
        "churned": churn.tolist(),
    }
    columns.update(change)
    return columns


def csv_bytes(columns: dict[str, list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(columns)
    writer.writerow(names)
    for row in zip(*(columns[n] for n in names), strict=True):
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue().encode()


def load(columns: dict[str, list[Any]], **types: Any) -> tuple[Dataset, dict[str, str]]:
    return load_checked(
        csv_bytes(columns),
        file_format="csv",
        source="churn.csv",
        target="churned",
        types=types or None,
    )


def profile_of(dataset: Dataset) -> ReferenceProfile:
    """The reference a training run on ``dataset`` leaves behind (whole set, for the tests)."""
    kinds = dict(zip(dataset.feature_names, dataset.feature_dtypes, strict=True))
    categorical = [n for n, k in kinds.items() if k == "categorical"]
    profile = build_profile(dataset.X, dataset.feature_names, categorical)
    return profile.model_copy(
        update={"dataset_rows": dataset.n_rows, "labels": label_profile(dataset)}
    )


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    dataset, _ = load(table(seed=1))
    return profile_of(dataset)


def check(
    columns: dict[str, list[Any]],
    reference: ReferenceProfile | None,
    types: dict[str, str] | None = None,
    **options: Any,
) -> DataValidationReport:
    dataset, problems = load(columns, **(types or {}))
    expectations = DataExpectations(**options.pop("expectations", {}))
    return validate_dataset(
        dataset,
        expectations,
        model="churn",
        reference=reference,
        reference_label="champion v1",
        type_problems=problems,
        **options,
    )


def failed(report: DataValidationReport) -> list[str]:
    return [r.name for r in report.results if r.status == "failed"]


def test_a_new_training_set_like_the_last_passes_every_expectation(
    reference: ReferenceProfile,
) -> None:
    report = check(table(seed=2), reference)

    assert report.passed, report.text()
    assert failed(report) == []
    assert {r.check for r in report.results} >= {
        "types",
        "ranges",
        "null_rates",
        "categories",
        "row_count",
        "label_shift",
        "duplicates",
        "leakage",
    }
    assert report.reference == "champion v1"


def test_a_numeric_column_holding_strings_fails_types(reference: ReferenceProfile) -> None:
    ages = [str(a) if a is not None else "n/a" for a in table()["age"]]

    learned = check(table(age=ages), reference)
    declared = check(table(age=ages), None, types={"age": "float"})

    assert "types.age" in failed(learned)
    assert [r.observed for r in learned.results if r.name == "types.age"] == ["text (strings)"]
    assert failed(declared) == ["types.age"]
    [problem] = [r for r in declared.results if r.name == "types.age"]
    assert problem.observed == "column 'age' is declared float but holds 'n/a'"


def test_values_beyond_the_reference_or_declared_range_fail_ranges(
    reference: ReferenceProfile,
) -> None:
    spend = table()["spend"]
    in_cents = [v * 100 for v in spend]  # a unit change upstream

    report = check(table(spend=in_cents), reference)
    declared = check(table(), None, declared_ranges={"age": FeatureRange(minimum=18, maximum=70)})

    assert failed(report) == ["ranges.spend"]
    assert not report.passed
    assert failed(declared) == ["ranges.age"]
    assert "(declared)" in next(r.observed for r in declared.results if r.name == "ranges.age")


def test_a_jump_in_missing_values_fails_null_rates(reference: ReferenceProfile) -> None:
    spend = [None if i % 3 == 0 else v for i, v in enumerate(table()["spend"])]

    report = check(table(spend=spend), reference)

    assert failed(report) == ["null_rates.spend"]
    result = next(r for r in report.results if r.name == "null_rates.spend")
    assert result.observed == "33.4% missing (reference 0.0%)"
    assert result.field == "data.expectations.max_null_rate_increase"


def test_new_and_vanished_categories_are_warnings_by_default(reference: ReferenceProfile) -> None:
    plans = ["enterprise" if p == "team" else p for p in table()["plan"]]

    report = check(table(plan=plans), reference)

    assert failed(report) == ["categories.plan", "categories.plan"]
    assert report.passed  # reported, the run goes on
    assert [w.observed.split(" (")[0] for w in report.warnings] == [
        "18.9% of rows in new categories",
        "categories gone: 'team'",
    ]
    strict = check(table(plan=plans), reference, expectations={"warn": []})
    assert not strict.passed


def test_half_the_rows_fails_row_count(reference: ReferenceProfile) -> None:
    report = check(table(n=400), reference)

    assert failed(report) == ["row_count"]
    assert report.results[-1].check == "leakage"
    assert "400 rows (-60% vs 1,000)" in report.text()


def test_a_shift_in_class_shares_fails_label_shift(reference: ReferenceProfile) -> None:
    labels = ["yes" if i % 2 else c for i, c in enumerate(table()["churned"])]

    report = check(table(churned=labels), reference)

    assert failed(report) == ["label_shift"]
    assert report.failures[0].observed.startswith("class 'no'")


def test_a_shifted_regression_target_fails_label_shift() -> None:
    diabetes = load_dataset("sklearn:diabetes")
    ref = profile_of(diabetes)
    shifted = diabetes.model_copy(update={"y": diabetes.y + diabetes.y.std()})

    report = validate_dataset(shifted, DataExpectations(), reference=ref)

    assert failed(report) == ["label_shift"]
    assert "(+1.00 std)" in report.failures[0].observed


def test_repeated_rows_fail_duplicates(reference: ReferenceProfile) -> None:
    columns = table()
    doubled = {k: v[:900] + v[:100] for k, v in columns.items()}

    report = check(doubled, reference)

    assert failed(report) == ["duplicates"]
    assert report.failures[0].observed == "100 rows (10.0%)"


def test_a_copy_of_the_label_is_flagged_as_leakage(reference: ReferenceProfile) -> None:
    columns = table()
    leaked = table(cancelled_on=["2026-01-05" if c == "yes" else None for c in columns["churned"]])
    copied = table(label_copy=[1.0 if c == "yes" else 0.0 for c in columns["churned"]])

    for report, feature in (
        (check(leaked, None), "cancelled_on"),
        (check(copied, None), "label_copy"),
    ):
        assert failed(report) == [f"leakage.{feature}"]
        assert report.failures[0].observed == "ROC AUC 1.0000 on its own"
        assert report.summary() == f"1 data expectation(s) failed: leakage.{feature}"


@pytest.mark.parametrize(
    ("name", "best"),
    [("breast_cancer", 0.96), ("iris", 0.985), ("wine", 0.92), ("diabetes", 0.3)],
)
def test_no_bundled_dataset_is_flagged_for_leakage(name: str, best: float) -> None:
    dataset = load_dataset(f"sklearn:{name}")

    report = validate_dataset(dataset, DataExpectations())

    assert report.passed, report.text()
    [leakage] = [r for r in report.results if r.check == "leakage"]
    assert leakage.status == "passed"
    assert float(leakage.observed.rsplit(" ", 1)[1]) < best


def test_breast_cancer_with_the_label_copied_in_is_flagged() -> None:
    cancer = load_dataset("sklearn:breast_cancer")
    leaked = cancer.model_copy(
        update={
            "X": np.column_stack([cancer.X, cancer.y.astype(np.float64)]),
            "feature_names": (*cancer.feature_names, "diagnosis_code"),
            "feature_dtypes": (*cancer.feature_dtypes, "float"),
        }
    )

    report = validate_dataset(leaked, DataExpectations())

    assert failed(report) == ["leakage.diagnosis_code"]


def test_a_missing_reference_runs_only_the_schema_checks_and_says_so() -> None:
    report = check(table(n=300), None)

    assert report.passed
    skipped = [r.name for r in report.results if r.status == "skipped"]
    assert skipped == ["features", "categories", "row_count", "label_shift"]
    assert report.notes[0].endswith("only the checks that need no reference ran")


def test_checks_turned_off_do_not_run(reference: ReferenceProfile) -> None:
    report = check(table(n=400), reference, expectations={"off": ["row_count", "leakage"]})

    assert report.passed
    assert {"row_count", "leakage"}.isdisjoint(r.check for r in report.results)
    assert report.notes == ("turned off: leakage, row_count",)


def test_a_check_cannot_be_both_a_warning_and_off() -> None:
    with pytest.raises(ValueError, match="'leakage' is listed in both warn and off"):
        DataExpectations(warn=("leakage",), off=("leakage",))


def test_the_report_renders_as_text_and_escaped_html(reference: ReferenceProfile) -> None:
    columns = table(plan=["<script>" if p == "team" else p for p in table()["plan"]])

    report = check(columns, reference)

    assert "<script>" not in report.html()
    assert "&#x27;&lt;script&gt;&#x27;" in report.html()
    assert report.text().splitlines()[3].split() == [
        "expectation",
        "status",
        "observed",
        "threshold",
    ]


def test_a_hundred_thousand_rows_validate_in_seconds(reference: ReferenceProfile) -> None:
    dataset, _ = load(table(n=100_000, seed=3))

    report = validate_dataset(dataset, DataExpectations(), reference=reference)

    assert failed(report) == ["row_count"]
    assert report.seconds < 30


def test_a_typed_table_loads_with_declared_types_when_they_hold() -> None:
    dataset, problems = load(table(), plan="categorical", age="float")

    assert problems == {}
    assert dataset.feature_dtypes == ("float", "float", "categorical")
    assert (
        dataset_from_bytes(
            csv_bytes(table()), file_format="csv", source="c.csv", target="churned"
        ).sha256
        == dataset.sha256
    )
