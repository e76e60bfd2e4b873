"""``flywheel register`` on the SDK: an ONNX model trained elsewhere, checked and governed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from pyarrow import csv

from examples.byo.export_onnx import FEATURES, export
from flywheel.errors import (
    ConfigError,
    DatasetError,
    FlywheelError,
    InvalidArtifactError,
    ParityError,
    TrainingError,
)
from flywheel.sdk import Flywheel


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return export(tmp_path_factory.mktemp("byo"), sample_rows=40)


def _register(fw: Flywheel, files: dict[str, Path], **overrides: Any) -> Any:
    given = {
        "schema": files["schema"],
        "reference": files["reference"],
        "expected": files["expected"],
        **overrides,
    }
    return fw.register_onnx("iris-gb", files["model"], reason="import", **given)


def _nothing_registered(fw: Flywheel) -> bool:
    return fw.list_models().items == [] and list(fw.registry.audit.entries("iris-gb")) == []


def test_an_exported_model_is_checked_registered_and_waits_for_approval(
    exported: dict[str, Path],
) -> None:
    fw = Flywheel.in_memory(actor="ana")

    version = _register(fw, exported).version

    assert version.status == "pending_approval"
    assert version.parity is not None
    assert version.parity.passed
    assert version.parity.rows == 40
    assert version.parity.label_agreement == 1.0
    assert version.input_schema.feature_names == FEATURES
    assert version.output_schema.classes == ("setosa", "versicolor", "virginica")
    lineage = version.lineage
    assert lineage.reproducible is False
    assert (lineage.dataset_sha256, lineage.code_commit, lineage.random_seed) == (None,) * 3
    assert lineage.imported is not None
    assert lineage.imported.reference_rows == 40
    assert lineage.imported.expected_name == "expected.csv"
    assert [(e.action, e.actor, e.reason) for e in fw.audit_entries("iris-gb")] == [
        ("version_registered", "ana", "import"),
        ("approval_requested", "ana", None),
    ]
    profile = fw.load_reference_profile(version)
    assert profile["rows"] == 40
    assert profile["predictions"]["count"] == 40


def test_it_serves_and_is_approved_like_a_trained_version(exported: dict[str, Path]) -> None:
    fw = Flywheel.in_memory(actor="ana")
    _register(fw, exported)
    approver = Flywheel(fw.platform, actor="bob")

    approved = approver.approve("iris-gb", 1, reason="checked the sample")
    scored = fw.predict("iris-gb", [dict.fromkeys(FEATURES, 1.0)], version=1)

    assert approved.status == "approved"
    assert scored.predictions[0] in {"setosa", "versicolor", "virginica"}
    assert fw.verify("iris-gb").ok


def test_the_registering_actor_cannot_approve_it(exported: dict[str, Path]) -> None:
    fw = Flywheel.in_memory(actor="ana")
    _register(fw, exported)

    with pytest.raises(FlywheelError, match="ask someone else"):
        fw.approve("iris-gb", 1, reason="mine")


def test_a_parquet_sample_and_no_expected_outputs_leave_parity_unchecked(
    tmp_path: Path,
) -> None:
    files = export(tmp_path, sample_format="parquet", sample_rows=20)
    fw = Flywheel.in_memory(actor="ana")

    version = _register(fw, files, expected=None).version

    assert version.parity is None
    assert version.lineage.imported is not None
    assert version.lineage.imported.reference_name == "sample.parquet"
    assert version.lineage.imported.expected_sha256 is None


def test_expected_outputs_the_model_does_not_give_are_refused(
    exported: dict[str, Path], tmp_path: Path
) -> None:
    table = csv.read_csv(exported["expected"])
    shifted = table.set_column(
        table.column_names.index("setosa"),
        "setosa",
        pa.array([v + 0.01 for v in table.column("setosa").to_pylist()]),
    )
    wrong = tmp_path / "expected.csv"
    csv.write_csv(shifted, wrong)
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(ParityError, match=r"ONNX parity failed \(float32, 40 rows\)"):
        _register(fw, exported, expected=wrong)

    assert _nothing_registered(fw)


def _schema_with(exported: dict[str, Path], tmp_path: Path, **changes: Any) -> Path:
    schema = yaml.safe_load(exported["schema"].read_text())
    schema.update(changes)
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    return path


@pytest.mark.parametrize(
    ("changes", "error", "starts"),
    [
        ({"features": [{"name": n} for n in FEATURES[:3]]}, InvalidArtifactError,
         "schema.features: input 'float_input' has 4 features, the schema declares 3"),
        ({"classes": ["a", "b", "c"]}, InvalidArtifactError, "schema.classes: "),
        ({"outputs": {"label": "output_label"}}, InvalidArtifactError, "schema.outputs: "),
        ({"input": {"dtype": "float64"}}, InvalidArtifactError, "schema.input.dtype: "),
        ({"features": [{"name": "x", "dtype": "rgb"}]}, ConfigError, "schema.features.0.dtype: "),
        ({"classes": ["only"]}, ConfigError, "schema.classes: "),
        ({"task": "regression"}, ConfigError, "schema.classes: a regressor declares no classes"),
    ],
)  # fmt: skip
def test_a_schema_that_does_not_fit_the_graph_is_refused_naming_the_field(
    exported: dict[str, Path],
    tmp_path: Path,
    changes: dict[str, Any],
    error: type[Exception],
    starts: str,
) -> None:
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(error) as raised:
        _register(fw, exported, schema=_schema_with(exported, tmp_path, **changes))

    assert str(raised.value).startswith(starts)
    assert "\n" not in str(raised.value)
    assert _nothing_registered(fw)


@pytest.mark.parametrize(
    ("sample", "starts"),
    [
        ("sepal_length,sepal_width,petal_length\n1,2,3\n", "reference: no column 'petal_width'"),
        ("sepal_length,sepal_width,petal_length,petal_width\n1,2,3,40\n",
         "reference.petal_width: 1 values outside [0.0, 10.0]"),
        ("sepal_length,sepal_width,petal_length,petal_width\n1,2,3,\n",
         "reference.petal_width: 1 missing values"),
        ("sepal_length,sepal_width,petal_length,petal_width\na,2,3,4\n",
         "reference.sepal_length: the column is not numeric"),
    ],
)  # fmt: skip
def test_a_sample_that_does_not_fit_the_schema_is_refused(
    exported: dict[str, Path], tmp_path: Path, sample: str, starts: str
) -> None:
    path = tmp_path / "sample.csv"
    path.write_text(sample)
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(DatasetError) as raised:
        _register(fw, exported, reference=path, expected=None)

    assert str(raised.value).startswith(starts)
    assert _nothing_registered(fw)


def test_a_file_that_is_not_onnx_is_refused(exported: dict[str, Path], tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a model")
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(InvalidArtifactError, match="not an ONNX model"):
        fw.register_onnx(
            "iris-gb", fake, schema=exported["schema"], reference=exported["reference"]
        )

    assert _nothing_registered(fw)


def test_reproduce_refuses_an_imported_version(exported: dict[str, Path]) -> None:
    fw = Flywheel.in_memory(actor="ana")
    _register(fw, exported)

    with pytest.raises(TrainingError, match=r"imported as ONNX .* cannot be re-trained"):
        fw.reproduce("iris-gb", 1)


def test_a_float64_regressor_is_held_to_float64_parity(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    from flywheel.registry.models import Task
    from flywheel.training.conversion import convert_to_onnx

    fitted = LinearRegression().fit([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], [1.0, 2.0, 5.0])
    (tmp_path / "model.onnx").write_bytes(
        convert_to_onnx(fitted, task=Task.REGRESSION, n_features=2).onnx_bytes
    )
    (tmp_path / "schema.yaml").write_text("task: regression\nfeatures: [{name: a}, {name: b}]\n")
    (tmp_path / "sample.csv").write_text("a,b,target\n0,1,9\n3,3,9\n")
    expected = fitted.predict([[0.0, 1.0], [3.0, 3.0]])
    (tmp_path / "expected.csv").write_text(
        "prediction\n" + "".join(f"{float(v)!r}\n" for v in expected)
    )
    fw = Flywheel.in_memory(actor="ana")

    version = fw.register_onnx(
        "line",
        tmp_path / "model.onnx",
        schema=tmp_path / "schema.yaml",
        reference=tmp_path / "sample.csv",
        expected=tmp_path / "expected.csv",
    ).version

    assert version.parity is not None
    assert version.parity.precision == "float64"
    assert version.parity.max_abs_diff < 1e-9
    assert version.output_schema.label_output == "prediction"
