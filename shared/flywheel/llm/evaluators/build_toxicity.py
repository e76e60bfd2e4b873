"""Build the toxicity evaluator's data file from the ``alt-profanity-check`` package.

Run once, when the classifier is to change (the output is committed and shipped):

``python -m flywheel.llm.evaluators.build_toxicity [--out PATH]``

It loads the package's two joblib files (a ``TfidfVectorizer`` and a
``CalibratedClassifierCV`` of ``LinearSVC`` folds with sigmoid calibration) and writes
what :class:`~flywheel.llm.evaluators.toxicity.ToxicityEvaluator` needs to reproduce
``predict_proba`` with numpy alone: the tokenizer settings and stop words, the terms in
column order, the idf weights, and each fold's coefficients, intercept and sigmoid
parameters (arrays as little-endian float64, base64, so the numbers are exact). This is
the only place anything is unpickled, and only the package's own files; the evaluator
reads JSON. Needs ``pip install alt-profanity-check`` (a dev dependency).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_OUT", "FORMAT", "build", "main"]

#: Version of the data file's layout (the evaluator refuses any other).
FORMAT = 1
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "toxicity.json.gz"
_SOURCE = "alt-profanity-check"


def _array(values: Any) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def build() -> dict[str, Any]:
    """The data file's content, from the installed ``alt-profanity-check`` package.

    Raises
    ------
    SystemExit
        The package is not installed, or its model is not the shape this build reads.
    """
    try:
        import joblib

        files = resources.files("profanity_check") / "data"
        package_version = version(_SOURCE)
    except (ImportError, PackageNotFoundError) as err:
        raise SystemExit(f"{_SOURCE} is not installed: pip install {_SOURCE}") from err
    vectorizer = joblib.load(files / "vectorizer.joblib")
    model = joblib.load(files / "model.joblib")
    params = vectorizer.get_params()
    expected = {
        "analyzer": "word",
        "ngram_range": (1, 1),
        "norm": "l2",
        "use_idf": True,
        "sublinear_tf": False,
        "binary": False,
        "strip_accents": None,
        "preprocessor": None,
        "tokenizer": None,
    }
    wrong = {k: params.get(k) for k, v in expected.items() if params.get(k) != v}
    if wrong or type(model).__name__ != "CalibratedClassifierCV" or list(model.classes_) != [0, 1]:
        raise SystemExit(f"unexpected {_SOURCE} model: {wrong or type(model).__name__}")
    size = len(vectorizer.vocabulary_)
    terms = [""] * size
    for term, column in vectorizer.vocabulary_.items():
        terms[column] = term
    folds = []
    for fold in model.calibrated_classifiers_:
        estimator = fold.estimator
        (calibrator,) = fold.calibrators
        if fold.method != "sigmoid" or estimator.coef_.shape != (1, size):
            raise SystemExit(f"unexpected calibrated fold: {fold.method}, {estimator.coef_.shape}")
        folds.append(
            {
                "coef": _array(estimator.coef_[0]),
                "intercept": float(estimator.intercept_[0]),
                "a": float(calibrator.a_),
                "b": float(calibrator.b_),
            }
        )
    stop_words = sorted(vectorizer.get_stop_words() or ())
    return {
        "format": FORMAT,
        "source": f"{_SOURCE} {package_version} (MIT): TfidfVectorizer + "
        "CalibratedClassifierCV(LinearSVC, sigmoid) trained on toxic-comment data",
        "tokenizer": {
            "token_pattern": params["token_pattern"],
            "lowercase": bool(params["lowercase"]),
            "stop_words": stop_words,
            "norm": "l2",
        },
        "terms": terms,
        "idf": _array(vectorizer.idf_),
        "folds": folds,
    }


def write(data: dict[str, Any], out: Path) -> int:
    """Write ``data`` as gzipped JSON (reproducible bytes: no file name or time in the
    gzip header); the bytes written."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")
    packed = gzip.compress(raw, compresslevel=9, mtime=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(packed)
    return len(packed)


def main(argv: list[str] | None = None) -> None:
    """``python -m flywheel.llm.evaluators.build_toxicity [--out PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write")
    args = parser.parse_args(argv)
    data = build()
    size = write(data, args.out)
    print(f"wrote {args.out} ({size:,} bytes): {len(data['terms']):,} terms, "
          f"{len(data['folds'])} folds, from {data['source'].split(' (')[0]}")  # fmt: skip


if __name__ == "__main__":
    main()
