"""A team's ordinary table (numbers with gaps, categories, yes/no, free text) from
inference of its schema to a served prediction, through the CLI on the local runtime."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.local_support import free_port_pair

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "churn"


def _env(local_runtime: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLYWHEEL_"))}
    env.update({**local_runtime, "OMP_NUM_THREADS": "1"})
    return env


def _flywheel(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flywheel.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _post(port: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/churn/predict",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body["error"]["errors"]]


def _serving(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_port_pair()
    serve = subprocess.Popen(
        [sys.executable, "-m", "flywheel.cli", "serve", "--port", str(port)],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2)
            return serve, port
        except urllib.error.HTTPError:
            return serve, port  # answering (any status): up
        except (urllib.error.URLError, ConnectionError):
            if serve.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"flywheel serve did not start: {serve.stdout}") from None
            time.sleep(0.2)


def _assert_explained(port: int, record: dict[str, Any]) -> None:
    """Explained exactly, per input feature and, on request, per model column."""
    status, answer = _post(port, {"record": record, "explain": "expanded"})
    assert status == 200, answer
    (explained,) = answer["explanations"]
    assert (explained["method"], explained["space"]) == ("tree_shap", "log_odds")
    assert set(explained["attributions"]) == set(record)
    assert {"plan=basic", "age__missing"} <= set(explained["expanded"])
    p = answer["probabilities"][0]["yes"]
    total = explained["base_value"][0] + sum(v[0] for v in explained["expanded"].values())
    assert abs(total - (math.log(p) - math.log1p(-p))) <= 1e-9
    status, refused = _post(port, {"record": record, "explain": "all"})
    assert status == 400
    assert _fields(refused) == ["explain"]


def test_a_mixed_type_table_trains_registers_and_serves_raw_records(
    local_runtime: dict[str, str], tmp_path: Path
) -> None:
    env = _env(local_runtime)
    # Given the example's table and config, copied where the user works
    subprocess.run(
        [sys.executable, str(EXAMPLE / "make_data.py"), str(tmp_path / "churn.csv"),
         "--rows", "1200"],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.copy(EXAMPLE / "churn.yaml", tmp_path / "churn.yaml")

    # When the schema is inferred, every kind of column is recognised
    inferred = _flywheel(env, tmp_path, "schema", "infer", "churn.csv", "--target", "churned")
    assert inferred.returncode == 0, inferred.stderr
    for line in ("plan: {type: categorical}", "support_note: {type: text}",
                 "autopay: {type: bool}", "age: {type: float}"):  # fmt: skip
        assert line in inferred.stdout
    assert "% missing" in inferred.stdout

    # And the model trains with its preprocessing inside the ONNX graph, parity checked
    trained = _flywheel(env, tmp_path, "--actor", "dee@example.com", "train", "churn.yaml")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    shown = _flywheel(env, tmp_path, "models", "show", "churn", "--version", "1", "--json")
    version = json.loads(shown.stdout)
    assert version["parity"]["passed"] is True
    assert version["parity"]["precision"] == "float64"  # preprocessing included
    assert version["parity"]["max_abs_diff"] <= 1e-12
    kinds = {f["name"]: f["dtype"] for f in version["input_schema"]["features"]}
    assert kinds["plan"] == "categorical"
    assert kinds["support_note"] == "text"
    # And the run and its search's trials are listed
    runs = _flywheel(env, tmp_path, "runs", "list", "churn", "--trials", "--json")
    assert runs.returncode == 0, runs.stderr
    listed = json.loads(runs.stdout)
    assert sum(1 for r in listed if ".t" in r["run_id"]) == 4
    for actor, command in (("ana@example.com", "approve"), ("sam@example.com", "promote")):
        done = _flywheel(env, tmp_path, "--actor", actor, command, "churn", "1", "-r", "ok")
        assert done.returncode == 0, done.stderr

    # Then the served model takes the raw record, strings and nulls included
    serve, port = _serving(env, tmp_path)
    try:
        record = json.loads((EXAMPLE / "record.json").read_text())
        status, answer = _post(port, {"record": record})
        assert status == 200, answer
        assert answer["predictions"][0] in ("yes", "no")
        # A region it never saw is scored as "other"; an unknown plan is refused by name
        status, _ = _post(port, {"record": {**record, "region": "mars"}})
        assert status == 200
        status, refused = _post(port, {"record": {**record, "plan": "gold"}})
        assert status == 422, refused
        assert _fields(refused) == ["plan"]
        assert "not a known category" in refused["error"]["errors"][0]["reason"]
        status, refused = _post(port, {"record": {**record, "support_note": "x" * 501}})
        assert status == 422
        assert _fields(refused) == ["support_note"]
        status, refused = _post(port, {"record": {**record, "tenure_months": "three"}})
        assert status == 422
        assert _fields(refused) == ["tenure_months"]
        _assert_explained(port, record)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
