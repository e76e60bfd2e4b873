"""Synthesize the CDK app once and cache its templates, for the local runtime.

The local runtime runs the very resources the CDK app defines: this module runs
``infra.app.build_app`` (stub assets, no cdk-nag) in a subprocess and caches the
CloudFormation templates under ``.flywheel/templates/<hash>/``, keyed by a hash of
everything that shapes them (``infra/``, ``cdk.json``, the domain's resource
definitions and the stage).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import flywheel

_SYNTH = """
import json, sys
from infra.app import build_app
app = build_app(stage=sys.argv[1], assets="stub", outdir=sys.argv[2], nag=False)
app.synth()
"""


def repo_root() -> Path:
    """The checkout this package runs from (the runtime needs ``infra/`` and ``functions/``)."""
    configured = os.environ.get("FLYWHEEL_REPO_ROOT")
    root = Path(configured) if configured else Path(flywheel.__file__).resolve().parents[2]
    if not (root / "infra" / "app.py").is_file() or not (root / "functions").is_dir():
        raise RuntimeError(
            f"the local runtime needs a Flywheel checkout (infra/ and functions/); not found at "
            f"{root}; set FLYWHEEL_REPO_ROOT"
        )
    return root


def fingerprint(root: Path, stage: str) -> str:
    digest = hashlib.sha256(stage.encode())
    paths = [
        *sorted((root / "infra").rglob("*.py")),
        root / "cdk.json",
        root / "shared" / "flywheel" / "resources.py",
    ]
    for path in paths:
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def templates(stage: str = "dev", *, cache_dir: Path | None = None) -> dict[str, dict[str, object]]:
    """The synthesized CloudFormation templates of every stack, by stack id."""
    root = repo_root()
    cache = (cache_dir or root / ".flywheel" / "templates") / fingerprint(root, stage)
    if not (cache / "manifest.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(root), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
        result = subprocess.run(
            [sys.executable, "-c", _SYNTH, stage, str(cache)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"cdk synth failed:\n{result.stderr[-4000:]}")
    return {
        stack: json.loads((cache / f"{stack}.template.json").read_text()) for stack in stacks(cache)
    }


def stacks(cache: Path) -> list[str]:
    """The stack ids of a synthesized app, in the manifest's (deployment) order."""
    manifest = json.loads((cache / "manifest.json").read_text())
    return [
        name
        for name, artifact in manifest["artifacts"].items()
        if artifact.get("type") == "aws:cloudformation:stack"
    ]
