"""The layer build (infra/build_assets.py) and the function catalogue, without pip or network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra import build_assets
from infra.catalog import (
    FUNCTIONS,
    IMAGES,
    LAYERS,
    PROMOTION_STEPS,
    TRAINING_STEPS,
    ZIP_UNZIPPED_LIMIT_BYTES,
)

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


@pytest.fixture(scope="module")
def build() -> Any:
    return build_assets


def test_pip_targets_lambdas_platform_and_python_with_wheels_only(
    build: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    build.pip_install(INFRA / "layers/base/requirements.txt", tmp_path)
    (cmd,) = calls
    joined = " ".join(cmd)
    assert "--only-binary=:all:" in cmd
    assert "--no-deps" in cmd
    assert "--python-version 3.12" in joined
    assert "--platform manylinux_2_28_x86_64" in joined
    assert "--platform manylinux2014_x86_64" in joined
    assert f"--target {tmp_path}" in joined


def test_trim_drops_tests_caches_headers_and_tools_but_never_shared_objects(
    build: Any, tmp_path: Path
) -> None:
    files = {
        "onnxruntime/capi/onnxruntime_pybind11_state.so": 1000,
        "onnxruntime/capi/libonnxruntime.so.1.32.0": 1000,
        "onnxruntime/__init__.py": 10,
        "onnxruntime/transformers/big.py": 500,
        "numpy/_core/tests/test_x.py": 300,
        "numpy/_core/include/numpy/ndarray.h": 200,
        "numpy/__pycache__/x.cpython-312.pyc": 100,
        "numpy/__init__.pyi": 50,
        "numpy/testing/__init__.py": 20,
    }
    for rel, size in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    saved = build.trim(tmp_path, "onnxruntime")
    assert saved == 500 + 300 + 200 + 100 + 50
    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert left == {
        "onnxruntime/capi/onnxruntime_pybind11_state.so",
        "onnxruntime/capi/libonnxruntime.so.1.32.0",
        "onnxruntime/__init__.py",
        "numpy/testing/__init__.py",  # imported at run time by some libraries: kept
    }


def test_size_check_fails_when_a_function_and_its_layers_exceed_250_mb(
    build: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def sized(key: str, size: int) -> Any:
        return build.Sized(key, ROOT, size)

    mib = 1024 * 1024
    layers = {"domain": sized("domain", 1 * mib), "base": sized("base", 60 * mib),
              "onnxruntime": sized("onnxruntime", 70 * mib)}  # fmt: skip
    images = {"training": sized("training", 430 * mib)}
    rows, ok = build.report(layers, images, ROOT / "functions")
    assert ok
    inference = next(r for r in rows if r["function"] == "inference")
    assert inference["layers"] == ["domain", "base", "onnxruntime"]
    assert inference["bytes"] >= 131 * mib
    assert inference["limit_bytes"] == ZIP_UNZIPPED_LIMIT_BYTES
    out = capsys.readouterr().out
    assert "inference (per model)" in out
    assert "does not fit in 250 MiB" in out

    layers["onnxruntime"] = sized("onnxruntime", 200 * mib)
    _, ok = build.report(layers, images, ROOT / "functions")
    assert not ok
    assert "OVER" in capsys.readouterr().out


def test_requirements_are_fully_pinned() -> None:
    files = [layer.requirements for layer in LAYERS.values() if layer.requirements]
    files += [image.requirements for image in IMAGES.values()]
    for path in (INFRA / f for f in files):
        lines = [line.strip() for line in path.read_text().splitlines()]
        requirements = [line for line in lines if line and not line.startswith("#")]
        assert requirements, path
        assert all("==" in line for line in requirements), path
    serving = (INFRA / "layers/base/requirements.txt").read_text() + (
        INFRA / "layers/onnxruntime/requirements.txt"
    ).read_text()
    for heavy in ("scikit-learn", "scipy", "skl2onnx", "pandas", "lightgbm", "xgboost"):
        assert heavy not in serving  # the serving path ships no training libraries


def test_training_image_copies_the_built_dependencies_instead_of_installing() -> None:
    dockerfile = (INFRA / IMAGES["training"].dockerfile).read_text()
    assert "FROM public.ecr.aws/lambda/python:3.12" in dockerfile
    assert "COPY python/ ${LAMBDA_TASK_ROOT}/" in dockerfile
    assert "COPY flywheel/ ${LAMBDA_TASK_ROOT}/flywheel/" in dockerfile
    assert "pip install" not in dockerfile


def test_catalogue_matches_the_function_contract() -> None:
    handlers = {spec.handler for spec in FUNCTIONS.values()}
    assert {"inference.handler.handler", "approval_api.handler.handler",
            "feedback.handler.handler", "drift_scorer.handler.handler",
            "performance_monitor.handler.handler"} <= handlers  # fmt: skip
    assert {f"training_steps.handler.{s}" for s in TRAINING_STEPS} <= handlers
    assert {f"promotion_steps.handler.{s}" for s in PROMOTION_STEPS} <= handlers
    for spec in FUNCTIONS.values():
        assert set(spec.layers) <= set(LAYERS), spec.key
        if spec.packaging == "zip":
            assert "domain" in spec.layers, spec.key  # the domain ships as a layer, once
        else:
            assert spec.image in IMAGES, spec.key
            assert not spec.layers, spec.key


def test_shipped_versions_are_the_tested_versions() -> None:
    # constraints.txt pins what the test suite ran with; the layers and the image ship
    # exactly those versions.
    constraints = ROOT / "constraints.txt"
    if not constraints.exists():
        pytest.skip("no constraints.txt")

    def pins(text: str) -> dict[str, str]:
        found = {}
        for raw in text.splitlines():
            line = raw.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                found[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
        return found

    tested = pins(constraints.read_text())
    files = [layer.requirements for layer in LAYERS.values() if layer.requirements]
    files += [image.requirements for image in IMAGES.values()]
    for path in (INFRA / f for f in files):
        for name, version in pins(path.read_text()).items():
            if name in tested:
                assert tested[name] == version, f"{path.name}: {name} {version} != {tested[name]}"


def test_domain_layer_ships_the_domain_without_the_developer_toolkit(
    build: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the domain layer is built
    layer = build.build_domain(tmp_path)
    shipped = {
        p.relative_to(layer.path / "python").as_posix()
        for p in (layer.path / "python").rglob("*.py")
    }

    # Then it holds every domain module but none of the CLI, the SDK or the local runtime
    source = ROOT / "shared" / "flywheel"
    expected = {
        f"flywheel/{p.relative_to(source).as_posix()}"
        for p in source.rglob("*.py")
        if p.relative_to(source).parts[0] not in {"cli", "local", "sdk.py"}
    }
    assert shipped == expected
    assert not any(name.startswith(("flywheel/cli/", "flywheel/local/")) for name in shipped)
    assert "flywheel/sdk.py" not in shipped
    assert {"flywheel/composition/platform.py", "flywheel/adapters/dynamodb.py"} <= shipped
    # and its size is reported (a few MB of the 250 MB budget; the embedded toxicity
    # classifier's weights are 0.7 MB of it)
    assert (
        "MiB (copy of the flywheel package without cli, local, sdk.py)" in capsys.readouterr().out
    )
    assert layer.bytes < 4 * 1024 * 1024


def test_every_handler_imports_from_the_domain_layer_alone(build: Any, tmp_path: Path) -> None:
    # Given the domain layer and the functions/ asset laid out as Lambda does (/opt, task root)
    layer = build.build_domain(tmp_path)
    handlers = sorted({spec.handler.rsplit(".", 1)[0] for spec in FUNCTIONS.values()})
    script = f"""
import importlib, json, sys
for name in {handlers!r}:
    importlib.import_module(name)
import flywheel
assert flywheel.__file__.startswith({str(layer.path)!r}), flywheel.__file__
missing = []
for toolkit in ("flywheel.cli", "flywheel.sdk", "flywheel.local"):
    try:
        importlib.import_module(toolkit)
    except ModuleNotFoundError:
        missing.append(toolkit)
print(json.dumps(missing))
"""
    # When each handler module is imported there, with the checkout's flywheel out of reach:
    # -S skips site-packages' .pth files (an editable install's import finder would
    # otherwise serve flywheel.* from the checkout), and the third-party packages are
    # put back on the path by hand, after the layer, as Lambda orders /opt and the runtime.
    import sysconfig

    packages = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT / "functions",
        env={
            "PYTHONPATH": ":".join(
                [str(layer.path / "python"), str(ROOT / "functions"), *packages]
            ),
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PATH": "/usr/bin:/bin",
        },
    )

    # Then every handler loads, and the toolkit is not there to import
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "flywheel.cli",
        "flywheel.sdk",
        "flywheel.local",
    ]


def test_the_drift_scorer_ships_the_serving_runtime_for_the_champion_it_explains() -> None:
    # Attribution drift loads the champion as serving does (an ONNX Runtime session and
    # the verified explainer; a sampling explainer runs the model), so the function
    # carries the serving runtime's layers (ADR 73).
    assert FUNCTIONS["drift-scorer"].layers == FUNCTIONS["inference"].layers
    assert "onnxruntime" in FUNCTIONS["drift-scorer"].layers
