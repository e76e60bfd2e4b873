"""Every synthesized state machine passes asl-validator (the States Language's own schema
and its path and ARN checks), the training engines' ``.sync`` states included.

asl-validator is pinned in ``package.json`` beside the CDK CLI (``npm ci``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from flywheel.local.deployment import LocalDeployment
from infra.nag_report import engines_config
from tests.infra.synth import Synth, synthesize

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"

pytestmark = pytest.mark.skipif(
    not VALIDATOR.exists() or shutil.which("node") is None,
    reason="asl-validator is not installed (npm ci)",
)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-engines"), engines_config())


def _definitions(synth: Synth) -> dict[str, str]:
    deployment = LocalDeployment(synth.templates)
    return {
        machine.name: json.dumps(deployment.definition(machine.name))
        for machine in deployment.of_type("AWS::StepFunctions::StateMachine")
    }


def _validate(definitions: dict[str, str], where: Path) -> subprocess.CompletedProcess[str]:
    paths: list[str] = []
    for name, text in sorted(definitions.items()):
        path = where / f"{name}.asl.json"
        path.write_text(text)
        paths += ["--json-path", str(path)]
    return subprocess.run(
        [str(VALIDATOR), *paths], capture_output=True, text=True, timeout=120, check=False
    )


def test_every_state_machine_of_a_stage_is_valid_asl(dev: Synth, tmp_path: Path) -> None:
    definitions = _definitions(dev)
    assert {f"{dev.prefix}-training", f"{dev.prefix}-promotion"} <= set(definitions)

    result = _validate(definitions, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_batch_and_sagemaker_sync_states_are_valid_asl(engines: Synth, tmp_path: Path) -> None:
    definitions = _definitions(engines)
    training = definitions[f"{engines.prefix}-training"]
    assert "batch:submitJob.sync" in training
    assert "sagemaker:createTrainingJob.sync" in training

    result = _validate(definitions, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_refuses_a_broken_definition(tmp_path: Path) -> None:
    # The check can fail: a state that names a successor which does not exist
    broken = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}

    result = _validate({"broken": json.dumps(broken)}, tmp_path)

    assert result.returncode != 0
