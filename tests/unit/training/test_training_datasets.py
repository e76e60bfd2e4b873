"""Datasets: bundled, CSV, Parquet and S3 (through an injected fetch), with clear errors."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.errors import ArtifactNotFoundError, DatasetError
from flywheel.registry.models import Task
from flywheel.training.datasets import array_sha256, load_dataset

if TYPE_CHECKING:
    from pathlib import Path

CSV = b"""age,income,segment,churned
34,52000.5,1,no
51,61000,2,yes
29,38000,1,no
45,70500,3,yes
"""


def _parquet_bytes() -> bytes:
    table = pa.table(
        {
            "age": pa.array([34, 51, 29, 45], pa.int64()),
            "income": pa.array([52000.5, 61000.0, 38000.0, 70500.0], pa.float64()),
            "member": pa.array([True, False, True, True]),
            "spend": pa.array([1.5, 2.5, 0.5, 9.0], pa.float32()),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


class FakeBucket:
    """``fetch`` for tests: objects in a dict, typed error when a key is missing."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.reads: list[str] = []

    def __call__(self, uri: str) -> bytes:
        self.reads.append(uri)
        if uri not in self.objects:
            raise ArtifactNotFoundError(f"no object at {uri}")
        return self.objects[uri]


def test_a_bundled_dataset_loads_with_sorted_class_names_and_a_stable_hash() -> None:
    first = load_dataset("sklearn:breast_cancer")
    again = load_dataset("sklearn:breast_cancer")

    assert first.X.shape == (569, 30)
    assert first.X.dtype == np.float64
    assert first.classes == ("benign", "malignant")
    assert first.task is Task.CLASSIFICATION
    assert first.dataset_id == "sklearn:breast_cancer"
    assert (
        first.sha256
        == again.sha256
        == array_sha256(first.X, first.y, first.feature_names, first.classes)
    )
    # scikit-learn codes malignant as 0; sorted names make it 1 (212 malignant rows).
    assert int((first.y == 1).sum()) == 212


def test_selecting_features_changes_the_columns_and_the_hash() -> None:
    full = load_dataset("sklearn:diabetes")

    subset = load_dataset("sklearn:diabetes", features=["bmi", "age"])

    assert subset.feature_names == ("bmi", "age")
    np.testing.assert_array_equal(subset.X[:, 0], full.X[:, full.feature_names.index("bmi")])
    assert subset.sha256 != full.sha256


def test_dataset_arrays_are_read_only() -> None:
    dataset = load_dataset("sklearn:iris")

    with pytest.raises(ValueError, match="read-only"):
        dataset.X[0, 0] = 1.0


def test_a_bundled_dataset_refuses_the_wrong_task() -> None:
    with pytest.raises(DatasetError, match="sklearn:iris is a classification dataset"):
        load_dataset("sklearn:iris", task=Task.REGRESSION)


def test_csv_loads_features_in_file_order_and_string_classes(tmp_path: Path) -> None:
    path = tmp_path / "churn.csv"
    path.write_bytes(CSV)

    dataset = load_dataset(str(path), target="churned")

    assert dataset.feature_names == ("age", "income", "segment")
    assert dataset.feature_dtypes == ("float", "float", "float")
    np.testing.assert_array_equal(dataset.X[0], [34.0, 52000.5, 1.0])
    assert dataset.classes == ("no", "yes")
    assert dataset.y.tolist() == [0, 1, 0, 1]
    assert dataset.task is Task.CLASSIFICATION  # inferred: the target is not numeric
    assert dataset.sha256 == hashlib.sha256(CSV).hexdigest()


def test_csv_numeric_target_defaults_to_regression_and_honours_features(tmp_path: Path) -> None:
    path = tmp_path / "income.csv"
    path.write_bytes(CSV)

    dataset = load_dataset(str(path), target="income", features=["segment", "age"])

    assert dataset.task is Task.REGRESSION
    assert dataset.feature_names == ("segment", "age")
    assert dataset.y.dtype == np.float64
    assert dataset.y.tolist() == [52000.5, 61000.0, 38000.0, 70500.0]


def test_numeric_labels_become_strings_in_scikit_learn_order(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(b"x,label\n1,10\n2,2\n3,10\n4,2\n")

    dataset = load_dataset(str(path), target="label", task=Task.CLASSIFICATION)

    assert dataset.classes == ("10", "2")
    assert dataset.y.tolist() == [0, 1, 0, 1]


def test_parquet_loads_with_column_dtypes(tmp_path: Path) -> None:
    content = _parquet_bytes()
    path = tmp_path / "data.parquet"
    path.write_bytes(content)

    dataset = load_dataset(str(path), target="spend")

    assert dataset.feature_names == ("age", "income", "member")
    assert dataset.feature_dtypes == ("int", "float", "bool")
    np.testing.assert_array_equal(dataset.X[:, 2], [1.0, 0.0, 1.0, 1.0])
    assert dataset.task is Task.REGRESSION
    assert dataset.sha256 == hashlib.sha256(content).hexdigest()


def test_s3_sources_are_read_through_the_injected_fetch() -> None:
    uri = "s3://flywheel-data/churn/2025-01.csv"
    bucket = FakeBucket({uri: CSV})

    dataset = load_dataset(uri, target="churned", fetch=bucket)

    assert bucket.reads == [uri]
    assert dataset.dataset_id == uri
    assert dataset.sha256 == hashlib.sha256(CSV).hexdigest()
    assert dataset.n_rows == 4


def test_s3_parquet_is_read_through_fetch() -> None:
    uri = "s3://flywheel-data/churn.parquet"

    dataset = load_dataset(uri, target="spend", fetch=FakeBucket({uri: _parquet_bytes()}))

    assert dataset.n_features == 3


def test_s3_without_fetch_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="needs a fetch function") as caught:
        load_dataset("s3://flywheel-data/x.csv", target="y")

    assert caught.value.field == "dataset.source"


def test_fetch_errors_of_the_domain_pass_through_and_others_are_wrapped() -> None:
    with pytest.raises(ArtifactNotFoundError):
        load_dataset("s3://flywheel-data/x.csv", target="y", fetch=FakeBucket({}))

    def broken(uri: str) -> bytes:
        raise ConnectionError("socket closed by peer 10.0.0.3")

    with pytest.raises(DatasetError) as caught:
        load_dataset("s3://flywheel-data/x.csv", target="y", fetch=broken)
    assert str(caught.value) == "dataset.source: could not read s3://flywheel-data/x.csv"
    assert "10.0.0.3" not in str(caught.value)


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "target", "field", "fragment"),
    [
        ("a,b\n1,2\n", "y", "dataset.target", "column 'y' not found"),
        ("a,y\n1,2\n2,\n", "y", "dataset.target", "column 'y' has 1 missing value"),
        ("a,y\n1,nan\n2,3\n", "y", "dataset.target", "non-finite"),
        ("a,y\n", "y", "dataset.source", "no rows"),
        ("", "y", "dataset.source", "no header row"),
        ("a,y\n1,2,3\n", "y", "dataset.source", "line 2 has 3 fields"),
        ("a,a,y\n1,2,3\n", "y", "dataset.source", "duplicate column names"),
        ("a,y\n1,yes\n2,yes\n", "y", "dataset.target", "single class"),
    ],
)
def test_bad_csv_data_gives_dataset_errors_naming_the_problem(
    tmp_path: Path, text: str, target: str, field: str, fragment: str
) -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset(_csv(tmp_path, text), target=target)

    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_regression_on_a_text_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="regression needs numbers"):
        load_dataset(_csv(tmp_path, "a,y\n1,yes\n2,no\n"), target="y", task=Task.REGRESSION)


def test_a_string_parquet_column_is_a_category_unless_declared_a_number(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"city": ["paris", "oslo", "paris"], "y": [1.0, 2.0, 3.0]}), path)

    assert load_dataset(str(path), target="y").feature_dtypes == ("categorical",)
    with pytest.raises(DatasetError, match="column 'city' is declared float but holds strings"):
        load_dataset(str(path), target="y", types={"city": "float"})


def test_a_declared_number_that_holds_text_is_refused_naming_the_column(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset(_csv(tmp_path, "a,y\n1,yes\nfoo,no\n"), target="y", types={"a": "float"})

    assert caught.value.field == "dataset.features.a"
    assert "column 'a' is declared float but holds 'foo'" in str(caught.value)


def test_missing_values_are_kept_as_gaps_for_the_model_to_impute(tmp_path: Path) -> None:
    data = load_dataset(_csv(tmp_path, "a,c,y\n1,x,yes\n,,no\n3,x,no\n"), target="y")

    assert data.feature_dtypes == ("float", "categorical")
    assert data.nullable == (True, True)
    assert data.typed
    assert np.isnan(data.X[1, 0])
    assert data.X[1, 1] is None


def test_missing_files_and_unknown_columns_are_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="file not found"):
        load_dataset(str(tmp_path / "absent.csv"), target="y")
    with pytest.raises(DatasetError, match=r"columns not found: \['zzz'\]"):
        load_dataset(_csv(tmp_path, CSV.decode()), target="churned", features=["age", "zzz"])
    with pytest.raises(DatasetError, match="name the target column"):
        load_dataset(_csv(tmp_path, CSV.decode()))
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        load_dataset(str(path), target="y")
