"""`flywheel init`, then what its README says: the generated tests, then the local demo with
the project's own model (separate processes, the local runtime, no AWS account)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _readme_commands(readme: str) -> list[str]:
    """The README's commands, after the virtualenv set-up (already done here)."""
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    return [line.rsplit(" && ", 1)[-1] for line in lines]


def test_init_scaffolds_a_project_whose_tests_and_demo_run(
    tmp_path: Path, local_runtime: dict[str, str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLYWHEEL_"))}
    env.update({**local_runtime, "OMP_NUM_THREADS": "1"})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "shared"), str(ROOT)])
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    # Given a new project, scaffolded by `flywheel init`;
    created = _run([sys.executable, "-m", "flywheel.cli", "init", "acme"], tmp_path, env)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "acme"
    demo, tests = _readme_commands((project / "README.md").read_text())
    assert demo == ".venv/bin/flywheel demo --project flywheel.yaml"
    assert tests == ".venv/bin/python -m pytest -q tests"
    # When its README's second command runs (its tests); Then they pass;
    ran = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
               project, env)  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:]
    # (the deployed-stack smoke tests skip without FLYWHEEL_BACKEND=aws and a stage)
    assert "2 passed, 3 skipped" in ran.stdout
    # When its first command runs (the local demo); Then the project's own model is trained,
    # approved, promoted and served, and its audit trail verifies.
    shown = _run([sys.executable, "-m", "flywheel.cli", "demo", "--project", "flywheel.yaml"],
                 project, env)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-3000:] + shown.stdout[-3000:]
    assert "iris: predictions on alias live" in shown.stdout
    assert "audit intact" in shown.stdout
    # And init refuses to write into a folder that is not empty.
    again = _run([sys.executable, "-m", "flywheel.cli", "init", "acme"], tmp_path, env)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0
    assert "not empty" in again.stderr
