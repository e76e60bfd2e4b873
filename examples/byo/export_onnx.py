"""Export a model trained outside Flywheel, ready for ``flywheel register``.

Writes into a folder (default ``examples/byo/out``): ``model.onnx`` (a gradient boosting
classifier on the iris data, float32, as most exporters write it), ``schema.yaml``
(features with ranges, task, outputs, classes), ``sample.csv`` or ``sample.parquet``
(inputs) and ``expected.csv`` (what the model answered on them where it was trained).
Then::

    python examples/byo/export_onnx.py
    flywheel register iris-gb --onnx examples/byo/out/model.onnx \\
        --schema examples/byo/out/schema.yaml --reference examples/byo/out/sample.csv \\
        --expected examples/byo/out/expected.csv -r "trained in the research notebook"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml
from pyarrow import csv, parquet
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
INPUT_NAME = "float_input"


def export(folder: Path, *, sample_format: str = "csv", sample_rows: int = 60) -> dict[str, Path]:
    """Train, export and write the four files into ``folder``; returns their paths by role.

    Examples
    --------
    >>> import tempfile
    >>> files = export(Path(tempfile.mkdtemp()), sample_rows=10)
    >>> sorted(files)
    ['expected', 'model', 'reference', 'schema']
    """
    folder.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    classes = [str(name) for name in iris.target_names]
    X = iris.data.astype(np.float32)  # noqa: N806
    y = np.asarray(classes)[iris.target]
    model = GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0).fit(X, y)

    onnx_model = convert_sklearn(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURES)]))],
        options={id(model): {"zipmap": False}},  # probabilities as a [N, classes] tensor
        target_opset={"": 18, "ai.onnx.ml": 3},
    )
    files = {"model": folder / "model.onnx", "schema": folder / "schema.yaml"}
    files["model"].write_bytes(onnx_model.SerializeToString())

    schema = {
        "task": "classification",
        "features": [
            {"name": name, "dtype": "float", "minimum": 0.0, "maximum": 10.0} for name in FEATURES
        ],
        "classes": classes,
        "outputs": {"label": "label", "probabilities": "probabilities"},
        "description": "gradient boosting on iris, trained outside Flywheel",
    }
    files["schema"].write_text(yaml.safe_dump(schema, sort_keys=False))

    rows = np.random.default_rng(0).choice(len(X), size=sample_rows, replace=False)
    sample = pa.table({name: X[rows, j].astype(np.float64) for j, name in enumerate(FEATURES)})
    files["reference"] = folder / f"sample.{sample_format}"
    if sample_format == "parquet":
        parquet.write_table(sample, files["reference"])
    else:
        csv.write_csv(sample, files["reference"])

    probabilities = model.predict_proba(X[rows])
    expected = {"label": [str(label) for label in model.predict(X[rows])]}
    expected |= {name: probabilities[:, i] for i, name in enumerate(model.classes_)}
    files["expected"] = folder / "expected.csv"
    csv.write_csv(pa.table(expected), files["expected"])
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    args = parser.parse_args()
    for role, path in export(args.out, sample_format=args.format).items():
        print(f"{role:>9}: {path}")


if __name__ == "__main__":
    main()
