"""Every import contract binds: adding one forbidden import to a copy of the code breaks it.

Each case copies the runtime packages (``shared/flywheel``, ``functions``, ``infra``) and
``pyproject.toml`` to a temporary folder, appends one import to one module and runs
``lint-imports`` on the copy: the named contract must be reported broken, naming the
module that was changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "cdk.out")

#: (contract id, module file relative to the repo, the import appended, the module named)
CASES = [
    # the layers: a core package reaching up into a use case
    ("layers", "shared/flywheel/drift/statistics.py", "import flywheel.monitoring.runs",
     "flywheel.drift.statistics"),
    # the layers: the composition root reaching up into the CLI
    ("layers", "shared/flywheel/composition/clients.py", "import flywheel.cli.app",
     "flywheel.composition.clients"),
    # the LLM core and training are independent: neither imports the other
    ("layers", "shared/flywheel/llm/prompts.py", "import flywheel.training.config",
     "flywheel.llm.prompts"),
    # the LLM gateway sits above serving and the workflows: they never import it
    ("layers", "shared/flywheel/serving/routing.py", "import flywheel.gateway.routing",
     "flywheel.serving.routing"),
    # the gateway's use case reaching for the DynamoDB ledger (the composition root wires it)
    ("domain-without-adapters", "shared/flywheel/gateway/service.py",
     "import flywheel.adapters.dynamodb_budgets", "flywheel.gateway.service"),
    # a use case importing an adapter
    ("domain-without-adapters", "shared/flywheel/serving/service.py",
     "import flywheel.adapters.s3_capture", "flywheel.serving.service"),
    # a core module importing boto3 directly
    ("domain-without-adapters", "shared/flywheel/registry/service.py", "import boto3",
     "flywheel.registry.service"),
    # a use case reaching boto3 only through a module of its own layer's neighbour
    ("domain-without-adapters", "shared/flywheel/monitoring/runs.py",
     "import flywheel.composition", "flywheel.monitoring.runs"),
    # the provider port reaching for boto3 (the Bedrock adapter is the one that may)
    ("domain-without-adapters", "shared/flywheel/llm/providers.py", "import boto3",
     "flywheel.llm.providers"),
    ("moto-only-in-local", "shared/flywheel/adapters/dynamodb.py", "import moto",
     "flywheel.adapters.dynamodb"),
    ("boto3-in-adapters", "shared/flywheel/sdk.py", "import boto3", "flywheel.sdk"),
    ("handlers-without-toolkit", "functions/feedback/handler.py", "import flywheel.sdk",
     "functions.feedback.handler"),
    ("handlers-without-toolkit", "functions/inference/handler.py",
     "import flywheel.local.server", "functions.inference.handler"),
    ("runtime-without-infra", "shared/flywheel/serving/http.py", "import infra.catalog",
     "flywheel.serving.http"),
    # the explanation algorithms (loaded by serving) reaching for shap
    ("explain-numpy-only", "shared/flywheel/explain/trees.py", "import shap",
     "flywheel.explain.trees"),
]  # fmt: skip


def _contract_ids() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["id"] for c in config["tool"]["importlinter"]["contracts"]}


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "shared" / "flywheel", tmp_path / "shared" / "flywheel", ignore=IGNORE)
    shutil.copytree(ROOT / "functions", tmp_path / "functions", ignore=IGNORE)
    shutil.copytree(ROOT / "infra", tmp_path / "infra", ignore=IGNORE)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(copy: Path, contract: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        # The copy comes before the editable install of the checkout.
        "PYTHONPATH": os.pathsep.join([str(copy / "shared"), str(copy)]),
    }
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--contract", contract],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_contract_has_a_breaking_case() -> None:
    assert _contract_ids() == {case[0] for case in CASES}


@pytest.mark.parametrize(
    ("contract", "module", "line", "named"),
    CASES,
    ids=[f"{c[0]}:{c[3]}" for c in CASES],
)
def test_a_forbidden_import_breaks_the_contract(
    tmp_path: Path, contract: str, module: str, line: str, named: str
) -> None:
    copy = _copy(tmp_path)
    # Given the contract holds on the unchanged copy
    kept = _lint(copy, contract)
    assert kept.returncode == 0, kept.stdout + kept.stderr

    # When one forbidden import is added
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    broken = _lint(copy, contract)

    # Then lint-imports fails, reporting the contract broken at that module
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "BROKEN" in broken.stdout
    assert named in broken.stdout
