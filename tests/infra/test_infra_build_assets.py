"""Deployable assets from wherever Flywheel is installed: the layers, the training image's
context, a manifest that makes synth refuse a stale build (pip replaced by a fake)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from infra import build_assets
from infra.build_assets import AssetsError, Sources, build, build_problems, default_build_dir
from infra.catalog import IMAGES, LAYERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pip_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """pip, replaced: each install writes one module named after its requirements' folder."""
    calls: list[str] = []

    def install(requirements: Path, target: Path) -> None:
        calls.append(requirements.parent.name)
        (target / f"{requirements.parent.name}_wheels.py").write_text("# installed\n")

    monkeypatch.setattr(build_assets, "pip_install", install)
    return calls


@pytest.fixture
def sources(tmp_path: Path) -> Sources:
    """A copy of the checkout's sources, free to edit."""
    copy = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "shared" / "flywheel", copy / "flywheel", ignore=ignore)
    shutil.copytree(ROOT / "functions", copy / "functions", ignore=ignore)
    shutil.copytree(ROOT / "infra" / "layers", copy / "infra" / "layers", ignore=ignore)
    return Sources(domain=copy / "flywheel", functions=copy / "functions", infra=copy / "infra")


def test_the_checkout_is_found_and_builds_into_layers_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    located = Sources.located()
    assert located.is_checkout
    assert located.domain == ROOT / "shared" / "flywheel"
    assert located.functions == ROOT / "functions"
    assert located.dockerfile("training") == ROOT / "infra/layers/training/Dockerfile"
    monkeypatch.delenv(build_assets.ASSETS_DIR_ENV, raising=False)
    assert default_build_dir(located) == ROOT / "layers" / "build"
    monkeypatch.setenv(build_assets.ASSETS_DIR_ENV, str(tmp_path))
    assert default_build_dir(located) == tmp_path


def test_installed_sources_build_under_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sources: Sources
) -> None:
    # Given sources that are not a checkout (site-packages-like: flywheel next to infra)
    monkeypatch.delenv(build_assets.ASSETS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert not sources.is_checkout
    # Then the build goes to the team repository's build/ folder
    assert default_build_dir(sources) == tmp_path / "build" / "flywheel-assets"


def test_a_build_holds_every_layer_and_a_self_contained_image_context(
    tmp_path: Path, sources: Sources, pip_calls: list[str]
) -> None:
    out = tmp_path / "build"
    build(out, sources)

    assert sorted(pip_calls) == sorted([*(k for k, v in LAYERS.items() if v.requirements), *IMAGES])
    assert (out / "base" / "python" / "base_wheels.py").is_file()
    assert (out / "domain" / "python" / "flywheel" / "project" / "loader.py").is_file()
    context = out / "training"
    assert (context / "Dockerfile").read_text() == sources.dockerfile("training").read_text()
    assert (context / "python" / "training_wheels.py").is_file()
    assert (context / "functions" / "training_steps" / "handler.py").is_file()
    shipped = {
        p.relative_to(context / "flywheel").parts[0] for p in (context / "flywheel").rglob("*")
    }
    assert {"registry", "training", "project"} <= shipped
    assert not shipped & {"cli", "local", "sdk.py"}  # the toolkit never ships
    assert not list(out.rglob("__pycache__"))
    assert build_problems(out, sources) == []


def test_a_second_build_runs_pip_only_for_changed_requirements(
    tmp_path: Path, sources: Sources, pip_calls: list[str]
) -> None:
    out = tmp_path / "build"
    build(out, sources)
    pip_calls.clear()
    build(out, sources)
    assert pip_calls == []

    requirements = sources.requirements("onnxruntime")
    requirements.write_text(requirements.read_text() + "# touched\n")
    build(out, sources)
    assert pip_calls == ["onnxruntime"]

    build(out, sources, force=True)
    assert len(pip_calls) == 1 + len([v for v in LAYERS.values() if v.requirements]) + len(IMAGES)


def test_synth_refuses_a_build_whose_code_or_requirements_changed(
    tmp_path: Path, sources: Sources, pip_calls: list[str]
) -> None:
    from infra.assets import resolve_mode

    out = tmp_path / "build"
    build(out, sources)
    assert resolve_mode("build", out, sources) == "build"

    # When a handler changes after the build, a deploy would ship the old copy: refused.
    handler = sources.functions / "inference" / "handler.py"
    handler.write_text(handler.read_text() + "\n# changed\n")
    assert build_problems(out, sources) == [
        "the flywheel or functions code changed since the build"
    ]
    with pytest.raises(AssetsError, match="code changed since the build"):
        resolve_mode("build", out, sources)
    with pytest.warns(UserWarning, match="stale"):
        assert resolve_mode("auto", out, sources) == "stub"

    # Rebuilding (no pip: the requirements are the same) makes it deployable again.
    pip_calls.clear()
    build(out, sources)
    assert pip_calls == []
    assert resolve_mode("build", out, sources) == "build"

    requirements = sources.requirements("base")
    requirements.write_text(requirements.read_text().replace("PyYAML==", "pyyaml=="))
    assert build_problems(out, sources) == ["the requirements of base changed since the build"]


def test_a_build_without_the_image_is_not_deployable(
    tmp_path: Path, sources: Sources, pip_calls: list[str]
) -> None:
    out = tmp_path / "build"
    build(out, sources, skip_image=True)
    assert "training" not in pip_calls
    assert build_problems(out, sources) == ["the training image's context is not built"]


def test_a_build_mode_synth_takes_the_layers_and_the_image_context_from_the_build(
    tmp_path: Path, pip_calls: list[str]
) -> None:
    from infra.app import build_app

    # Given a build of the checkout's own sources (pip faked)
    out = tmp_path / "build"
    build(out, Sources.located())
    # When the app synthesizes in build mode from that directory
    app = build_app(
        stage="dev", assets="build", assets_dir=out, outdir=str(tmp_path / "cdk.out"), nag=False
    )
    app.synth()
    # Then the staged image context is the build's, and no stub guard is in the templates
    cdk_out = tmp_path / "cdk.out"
    manifest = json.loads((cdk_out / "FlywheelWorkflows.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    staged = cdk_out / image["source"]["directory"]
    assert {p.name for p in staged.iterdir()} == {"Dockerfile", "python", "flywheel", "functions"}
    assert (staged / "python" / "training_wheels.py").is_file()
    assert not (staged / "flywheel" / "cli").exists()
    files = json.loads((cdk_out / "FlywheelServing.assets.json").read_text())["files"]
    layers = {
        p.name
        for f in files.values()
        for p in (cdk_out / f["source"]["path"]).glob("python/*")
        if (cdk_out / f["source"]["path"]).is_dir()
    }
    assert {"base_wheels.py", "onnxruntime_wheels.py", "flywheel"} <= layers
    serving = json.loads((cdk_out / "FlywheelServing.template.json").read_text())
    assert "StubAssetsAreNotDeployable" not in serving.get("Rules", {})
