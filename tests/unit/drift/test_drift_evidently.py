"""On a shared synthetic case, Flywheel's verdicts match Evidently 0.7's (same thresholds).

Evidently is not a project dependency (about 1 GB, its own pins), so it runs in
``bench/.venv-evidently`` through ``bench/evidently_runner.py``; these tests
skip when that venv is missing.  Set it up with::

    python3 -m venv bench/.venv-evidently
    bench/.venv-evidently/bin/pip install 'evidently==0.7.*' 'pandas<3' pyarrow
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from flywheel.drift.profile import build_profile
from flywheel.drift.scorer import score_window
from flywheel.drift.statistics import DriftMethod, DriftPolicy

ROOT = Path(__file__).resolve().parents[3]
EVIDENTLY = ROOT / "bench" / ".venv-evidently" / "bin" / "python"
RUNNER = ROOT / "bench" / "evidently_runner.py"

pytestmark = [
    pytest.mark.evidently,
    pytest.mark.skipif(
        not EVIDENTLY.exists(),
        reason="Evidently is not installed in bench/.venv-evidently (see this module's docstring)",
    ),
]

NUMERIC = ["steady", "shifted", "scaled", "skewed", "binary", "tiers"]
CATEGORICAL = ["region", "plan", "flag"]


def _case(rows: int, *, seed: int, drift: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    move = 1.0 if drift else 0.0
    regions = np.array(["eu", "us", "apac", "latam"])
    region_p = [0.4, 0.3, 0.2, 0.1] if not drift else [0.25, 0.25, 0.25, 0.25]
    return {
        "steady": rng.normal(0, 1, rows),
        "shifted": rng.normal(0.4 * move, 1, rows),
        "scaled": rng.normal(0, 1 + 0.5 * move, rows),
        "skewed": rng.lognormal(0.1 * move, 0.6, rows),
        "binary": (rng.uniform(size=rows) < 0.3 + 0.2 * move).astype(float),
        "tiers": rng.choice([1.0, 2.0, 3.0, 4.0], size=rows, p=[0.4, 0.3, 0.2, 0.1]),
        "region": rng.choice(regions, size=rows, p=region_p),
        "plan": rng.choice(np.array(["free", "pro", "team"]), size=rows),
        "flag": rng.choice(
            np.array(["no", "yes"]), size=rows, p=[0.9 - 0.2 * move, 0.1 + 0.2 * move]
        ),
    }


CASES = {"small-sample-tests": (800, 500), "large-sample-distances": (20_000, 5_000)}


def _pair(case: str) -> tuple[dict, dict]:
    reference_rows, current_rows = CASES[case]
    return (
        _case(reference_rows, seed=1, drift=False),
        _case(current_rows, seed=2, drift=True),
    )


@pytest.fixture(scope="module")
def evidently_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Evidently's verdicts for every case, from one subprocess (its import takes seconds)."""
    folder = tmp_path_factory.mktemp("evidently")
    paths = []
    for case in CASES:
        reference, current = _pair(case)
        arrays = {f"reference__{k}": v for k, v in reference.items()}
        arrays |= {f"current__{k}": v for k, v in current.items()}
        path = folder / f"{case}.npz"
        np.savez(path, categorical=np.array(CATEGORICAL), **arrays)
        paths.append(str(path))
    done = subprocess.run(
        [str(EVIDENTLY), str(RUNNER), "verdicts", *paths],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return dict(zip(CASES, results, strict=True))


def _flywheel(reference: dict, current: dict):
    names = NUMERIC + CATEGORICAL
    matrix = np.column_stack([reference[n].astype(object) for n in names])
    profile = build_profile(matrix, names, categorical=CATEGORICAL)
    window = {n: current[n] for n in names}
    return score_window(profile, window, DriftPolicy.evidently())


@pytest.mark.parametrize("case", list(CASES))
def test_verdicts_match_evidently(case: str, evidently_results: dict[str, dict]) -> None:
    # Given the same reference and drifted window for both tools
    reference, current = _pair(case)

    # When both score it with Evidently's default thresholds
    theirs = evidently_results[case]
    ours = _flywheel(reference, current)

    # Then every feature gets the same method and verdict, and so does the dataset
    for feature in ours.features:
        evidently = theirs["columns"][feature.feature]
        assert feature.method == DriftMethod(evidently["method"]), feature.feature
        assert feature.drifted == evidently["drifted"], (feature.feature, feature.score, evidently)
        tolerance = {
            DriftMethod.KS: 0.03,  # asymptotic vs exact p-value
            DriftMethod.WASSERSTEIN: 1e-3,
        }.get(feature.method, 1e-9)
        assert feature.score == pytest.approx(evidently["score"], abs=tolerance), feature.feature
    assert ours.drift_detected == theirs["dataset_drift"]
    assert ours.share_drifted == pytest.approx(theirs["share"])
    assert 0 < sum(f.drifted for f in ours.features) < len(ours.features)
