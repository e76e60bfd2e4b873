"""Synthesize the CDK app once and cache its templates, for the local runtime.

The local runtime runs the very resources the CDK app defines: this module runs
``infra.app.build_app`` (stub assets, no cdk-nag) in a subprocess and caches the
CloudFormation templates under ``.flywheel/templates/<hash>/``, keyed by a hash of
everything that shapes them (``infra/``, its feature flags, the ``flywheel`` package the
app reads its settings and resource definitions from, the installed CDK version, the
project file and the stage). The project file is ``FLYWHEEL_PROJECT``
(``flywheel demo --project``) or the CDK app's example project; its stage is synthesized
environment-agnostic, since the runtime plays its own account and region. Processes
that need the same templates at once (the workers of a test run, a demo and a CLI
command) synthesize them once: the first holds a lock while it synthesizes, the others
wait for it and read its result.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import flywheel

_SYNTH = """
import sys
from flywheel.project import ProjectError, load_project
from infra.app import build_app
from infra.config import load_stage_config
try:
    project = load_project(sys.argv[3]) if sys.argv[3] else None
    config = load_stage_config(sys.argv[1], project)
except (ProjectError, KeyError) as err:
    sys.exit(str(err.args[0]))
config = config.model_copy(update={"account": None, "region": None})
build_app(config=config, assets="stub", outdir=sys.argv[2], nag=False).synth()
"""


def repo_root() -> Path:
    """The checkout this package runs from (the runtime needs ``infra/`` and ``functions/``)."""
    configured = os.environ.get("FLYWHEEL_REPO_ROOT")
    package = Path(flywheel.__file__).resolve().parent
    # A checkout (shared/flywheel), else an installed wheel (site-packages/flywheel).
    found = [p for p in (package.parents[1], package.parent) if (p / "infra" / "app.py").is_file()]
    root = Path(configured) if configured else (found or [package.parents[1]])[0]
    if not (root / "infra" / "app.py").is_file() or not (root / "functions").is_dir():
        raise RuntimeError(
            f"the local runtime needs a Flywheel checkout (infra/ and functions/); not found at "
            f"{root}; set FLYWHEEL_REPO_ROOT"
        )
    return root


def project_file() -> Path | None:
    """The project file the runtime runs (``FLYWHEEL_PROJECT``), or ``None`` for the
    CDK app's example project."""
    configured = os.environ.get("FLYWHEEL_PROJECT")
    return Path(configured).resolve() if configured else None


def fingerprint(root: Path, stage: str, project: Path | None = None) -> str:
    """The templates' cache key: the stage, the app's sources, the ``flywheel`` package, the
    installed CDK and the project file."""
    digest = hashlib.sha256(stage.encode())
    digest.update(f"aws-cdk-lib=={metadata.version('aws-cdk-lib')}".encode())
    infra = root / "infra"
    package = Path(flywheel.__file__).resolve().parent
    paths = [
        *sorted(p for p in infra.rglob("*") if p.suffix in {".py", ".json", ".yaml"}),
        *sorted(p for p in package.rglob("*") if p.suffix in {".py", ".json"}),
        *([project] if project else []),
    ]
    for path in paths:
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def templates(stage: str = "dev", *, cache_dir: Path | None = None) -> dict[str, dict[str, object]]:
    """The synthesized CloudFormation templates of every stack, by stack id."""
    root = repo_root()
    project = project_file()
    # A checkout keeps the cache; an installed Flywheel keeps it in the working directory.
    home = root if (root / "shared").is_dir() else Path.cwd()
    cache = (cache_dir or home / ".flywheel" / "templates") / fingerprint(root, stage, project)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with (cache.parent / f"{cache.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed
        if not (cache / "manifest.json").is_file():
            _synthesize(root, stage, project, cache)
    return {
        stack: json.loads((cache / f"{stack}.template.json").read_text()) for stack in stacks(cache)
    }


def _synthesize(root: Path, stage: str, project: Path | None, cache: Path) -> None:
    """Synthesize into ``cache`` (written aside, then renamed: never half a set)."""
    partial = cache.with_name(f"{cache.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(root), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    result = subprocess.run(
        [sys.executable, "-c", _SYNTH, stage, str(partial.resolve()), str(project or "")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        last = result.stderr.strip().splitlines()[-1:] or ["no output"]
        if project is not None and last[0].startswith(str(project)):
            raise RuntimeError(last[0])  # a bad project file: its one line
        raise RuntimeError(f"cdk synth failed:\n{result.stderr[-4000:]}")
    shutil.rmtree(cache, ignore_errors=True)  # an earlier synthesis that stopped half-way
    partial.rename(cache)


def stacks(cache: Path) -> list[str]:
    """The stack ids of a synthesized app, in the manifest's (deployment) order."""
    manifest = json.loads((cache / "manifest.json").read_text())
    return [
        name
        for name, artifact in manifest["artifacts"].items()
        if artifact.get("type") == "aws:cloudformation:stack"
    ]
