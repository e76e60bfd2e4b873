"""Asset modes: stub synths for tests/review can never be deployed; builds are never guessed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infra import assets
from infra.config import STAGES, ApiConfig
from tests.infra.synth import STACKS, Synth

ROOT = Path(__file__).resolve().parents[2]


def test_stub_synth_carries_a_rule_that_fails_any_deployment(dev: Synth) -> None:
    for stack in ("FlywheelServing", "FlywheelWorkflows", "FlywheelMonitoring"):
        template = dev.templates[stack]
        (assertion,) = template["Rules"]["StubAssetsAreNotDeployable"]["Assertions"]
        assert assertion["Assert"] == {
            "Fn::Not": [{"Fn::Equals": [{"Ref": "FlywheelAssetsMode"}, "stub"]}]
        }
        assert template["Parameters"]["FlywheelAssetsMode"]["AllowedValues"] == ["stub"]


def test_build_mode_refuses_a_missing_build_and_auto_falls_back_to_stubs(tmp_path: Path) -> None:
    sources = assets.Sources.located()
    with pytest.raises(assets.AssetsError, match=r"python -m infra\.build_assets --out") as refused:
        assets.resolve_mode("build", tmp_path, sources)
    assert "layer domain is not built" in str(refused.value)
    assert assets.resolve_mode("auto", tmp_path, sources) == "stub"
    assert assets.resolve_mode("stub", tmp_path, sources) == "stub"
    with pytest.raises(assets.AssetsError, match="build, stub or auto"):
        assets.resolve_mode("docker", tmp_path, sources)


def test_a_stub_synth_stages_the_placeholder_image_not_the_code(dev: Synth) -> None:
    manifest = json.loads((dev.outdir / "FlywheelWorkflows.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    staged = dev.outdir / image["source"]["directory"]
    assert {p.name for p in staged.iterdir()} == {"Dockerfile"}
    assert (staged / "Dockerfile").read_text() == (assets.STUB_IMAGE_DIR / "Dockerfile").read_text()


def test_cognito_authorization_is_a_stage_option(tmp_path: Path) -> None:
    from infra.app import build_app

    config = STAGES["dev"].model_copy(
        update={
            "api": ApiConfig(
                auth="COGNITO",
                cognito_user_pool_arn="arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Ab12",
            )
        }
    )
    build_app(config=config, assets="stub", outdir=str(tmp_path)).synth()  # nag passes too
    template = json.loads((tmp_path / "FlywheelServing.template.json").read_text())
    methods = [r for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::Method"]
    assert {m["Properties"]["AuthorizationType"] for m in methods} == {"COGNITO_USER_POOLS"}
    assert all("AuthorizerId" in m["Properties"] for m in methods)


@pytest.mark.skipif(
    not (ROOT / "node_modules" / ".bin" / "cdk").exists() or shutil.which("node") is None,
    reason="the pinned CDK CLI is not installed (npm ci)",
)
def test_the_pinned_cli_synthesizes_the_app_offline(tmp_path: Path) -> None:
    # Given the CLI pinned in package.json and cdk.json's app command;
    # When `cdk synth` runs with stub assets; Then every stack's template is produced.
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    result = subprocess.run(
        [
            str(ROOT / "node_modules/.bin/cdk"),
            "synth",
            "--quiet",
            "--no-notices",
            "-c",
            "flywheel:assets=stub",
            "-o",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {f"{s}.template.json" for s in STACKS} <= {p.name for p in tmp_path.iterdir()}
