"""A synthesized stage, as the infra tests see it (see conftest.py for the fixtures).

Synthesis is the slow part of the infra tests, and every xdist worker would otherwise
synthesize the same stages for itself. :func:`synthesize` therefore keeps each cloud
assembly in a cache shared by the workers of one test session (a directory under
pytest's base temporary directory, see :func:`use_cache`): the first worker to need an
assembly synthesizes it under a lock, the others wait for it and read it. An assembly is
keyed by everything that shapes it: the stage's configuration, the sources of the app
(``infra/``, ``shared/flywheel/``, ``functions/``, ``cdk.json``), the installed CDK,
cdk-nag and jsii versions, and the ``CDK_*``/``FLYWHEEL_*`` environment. The construct
tree (:attr:`Synth.app`, for cdk-nag and construct tests) is built only when a test asks
for it, unless this worker synthesized the assembly itself.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.app import STACK_IDS

STACKS = STACK_IDS
ROOT = Path(__file__).resolve().parents[2]
#: What the app is built from: a change to any file here synthesizes anew.
SOURCES = ("infra", "shared/flywheel", "functions", "cdk.json")
#: The installed packages whose versions shape the templates.
PACKAGES = ("aws-cdk-lib", "constructs", "cdk-nag", "jsii")
ERROR_FILE = "synth-error.txt"
_cache: dict[str, Path] = {}


@dataclass
class Synth:
    """One stage's synthesized cloud assembly."""

    stage: str
    prefix: str
    outdir: Path
    error: str | None
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    _assertions: dict[str, Any] = field(default_factory=dict)
    _app: Any = None
    _build: Callable[[], Any] | None = None

    @property
    def app(self) -> Any:
        """The synthesized ``App`` (its construct tree): built on first use when the
        assembly came from the cache."""
        if self._app is None:
            assert self._build is not None
            self._app = self._build()
        return self._app

    def template(self, stack: str) -> Any:
        """``aws_cdk.assertions.Template`` of one stack (built once, from the JSON)."""
        if stack not in self._assertions:
            from aws_cdk.assertions import Template

            self._assertions[stack] = Template.from_json(self.templates[stack])
        return self._assertions[stack]

    def resources(self, resource_type: str, stack: str | None = None) -> dict[str, dict[str, Any]]:
        """Raw resources of one type (all stacks unless ``stack``), keyed by ``stack/logical``."""
        found = {}
        for name, template in self.templates.items():
            if stack and name != stack:
                continue
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == resource_type:
                    found[f"{name}/{logical_id}"] = resource
        return found

    def stack_names(self) -> dict[str, str]:
        """Each stack's CloudFormation name, by construct id (the assembly's manifest)."""
        manifest = json.loads((self.outdir / "manifest.json").read_text())
        return {
            artifact_id: artifact.get("properties", {}).get("stackName", artifact_id)
            for artifact_id, artifact in manifest["artifacts"].items()
            if artifact["type"] == "aws:cloudformation:stack"
        }

    def validation_report(self) -> dict[str, Any]:
        return json.loads((self.outdir / "validation-report.json").read_text())


def use_cache(directory: Path | None) -> None:
    """Keep assemblies in ``directory`` (shared by the session's workers); ``None``: no cache."""
    if directory is None:
        _cache.pop("dir", None)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        _cache["dir"] = directory


@functools.cache
def sources_digest() -> str:
    """A digest of the app's sources and of the installed packages that shape its templates."""
    digest = hashlib.sha256(sys.version.encode())
    for package in PACKAGES:
        digest.update(f"{package}=={metadata.version(package)}\n".encode())
    for name in SOURCES:
        top = ROOT / name
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(f"{path.relative_to(ROOT)}\n".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_key(stage: str, config: Any) -> str:
    """The key of one stage's assembly: its configuration, the sources, the environment."""
    environment = {k: v for k, v in os.environ.items() if k.startswith(("CDK_", "FLYWHEEL_"))}
    digest = hashlib.sha256(sources_digest().encode())
    digest.update(stage.encode())
    digest.update(config.model_dump_json().encode())
    digest.update(json.dumps(environment, sort_keys=True).encode())
    return digest.hexdigest()[:24]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (another process waits for it to be released)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_and_synth(config: Any, outdir: Path) -> tuple[Any, str | None]:
    """The app with the rule packs registered, synthesized into ``outdir``; its error, if any."""
    from infra.app import build_app

    app = build_app(config=config, assets="stub", outdir=str(outdir))
    try:
        app.synth()
    except Exception as exc:
        return app, str(exc)
    return app, None


def _read(stage: str, prefix: str, assembly: Path, error: str | None) -> Synth:
    synth = Synth(stage, prefix, assembly, error)
    for stack in STACK_IDS:
        path = assembly / f"{stack}.template.json"
        if path.exists():
            synth.templates[stack] = json.loads(path.read_text())
    return synth


def synthesize(stage: str, outdir: Path, config: Any = None) -> Synth:
    """The stage as configured, or ``config`` (a ``StageConfig`` variant of it).

    Without a cache (:func:`use_cache`) the app synthesizes into ``outdir``. With one,
    the assembly is the cached one and ``outdir`` is where the app synthesizes if a test
    asks for its construct tree.
    """
    from infra.config import load_stage_config

    config = config or load_stage_config(stage)
    cache = _cache.get("dir")
    if cache is None:
        app, error = _build_and_synth(config, outdir)
        synth = _read(stage, config.prefix, outdir, error)
        synth._app = app
        return synth
    key = cache_key(stage, config)
    assembly = cache / key
    app = None
    with _locked(cache / f"{key}.lock"):
        if not (assembly / "manifest.json").is_file() and not (assembly / ERROR_FILE).is_file():
            # Written aside and renamed: a reader never sees half an assembly.
            partial = cache / f"{key}.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            try:
                app, error = _build_and_synth(config, partial)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)  # the app cannot even be built
                raise
            if error is not None:
                (partial / ERROR_FILE).write_text(error)
            shutil.rmtree(assembly, ignore_errors=True)
            partial.rename(assembly)
    failed = assembly / ERROR_FILE
    synth = _read(stage, config.prefix, assembly, failed.read_text() if failed.exists() else None)
    synth._app = app
    synth._build = lambda: _build_and_synth(config, outdir)[0]
    return synth


def function_by_name(synth: Synth, function_name: str) -> tuple[str, dict[str, Any]]:
    """(stack, resource) of the Lambda function with this physical name."""
    for key, resource in synth.resources("AWS::Lambda::Function").items():
        if resource["Properties"]["FunctionName"] == function_name:
            return key.split("/")[0], resource
    raise KeyError(function_name)


def role_statements(synth: Synth, function_name: str) -> list[dict[str, Any]]:
    """Every IAM statement attached to the execution role of ``function_name``."""
    stack, function = function_by_name(synth, function_name)
    return statements_of_role(synth, stack, function["Properties"]["Role"]["Fn::GetAtt"][0])


def role_named(synth: Synth, role_name: str) -> tuple[str, str]:
    """(stack, logical id) of the role with this fixed name."""
    for key, resource in synth.resources("AWS::IAM::Role").items():
        if resource["Properties"].get("RoleName") == role_name:
            stack, logical_id = key.split("/")
            return stack, logical_id
    raise KeyError(role_name)


def statements_of_role(synth: Synth, stack: str, role_id: str) -> list[dict[str, Any]]:
    """The role's inline policies, the policies attached to it and its managed policies
    defined in any stack of the app (by ``Ref`` or by name)."""
    role = synth.templates[stack]["Resources"][role_id]
    statements = [
        s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]
    ]
    for policy in synth.resources("AWS::IAM::Policy", stack).values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    for arn in role["Properties"].get("ManagedPolicyArns", []):
        statements.extend(_managed_policy(synth, stack, arn)["PolicyDocument"]["Statement"])
    return statements


def _managed_policy(synth: Synth, stack: str, arn: Any) -> dict[str, Any]:
    if isinstance(arn, dict) and set(arn) == {"Ref"}:
        properties: dict[str, Any] = synth.templates[stack]["Resources"][arn["Ref"]]["Properties"]
        return properties
    from infra.nag import flatten_reference

    name = flatten_reference(arn).rsplit(":policy/", 1)[1]
    for policy in synth.resources("AWS::IAM::ManagedPolicy").values():
        if policy["Properties"]["ManagedPolicyName"] == name:
            return dict(policy["Properties"])
    raise KeyError(f"managed policy {name} is defined in no stack of the app")


def actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def resources_text(statement: dict[str, Any]) -> str:
    """The statement's resources, intrinsics flattened the way cdk-nag does."""
    from infra.nag import flatten_reference

    resources = statement["Resource"]
    resources = resources if isinstance(resources, list) else [resources]
    return " ".join(flatten_reference(r) for r in resources)


def allowed(synth: Synth, function_name: str, action: str, resource_part: str = "") -> bool:
    """Whether the function's role allows ``action`` on a resource containing ``resource_part``."""
    import fnmatch

    for statement in role_statements(synth, function_name):
        if statement["Effect"] != "Allow":
            continue
        if any(
            fnmatch.fnmatchcase(action, pattern) for pattern in actions_of(statement)
        ) and resource_part in resources_text(statement):
            return True
    return False


def can(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """Whether ``statements`` allow ``action`` on ``resource`` and deny neither.

    ``resource`` is a flattened ARN (``<AWS::Partition>``, ``<Api>`` ...) matched the way
    IAM matches ``*`` and ``?``; conditions are ignored, so an allow counts even if its
    condition would not hold (a conservative answer for "cannot" assertions).
    """
    import fnmatch

    def matches(statement: dict[str, Any]) -> bool:
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        patterns = [_unhashed(flatten(r)) for r in resources]
        return any(fnmatch.fnmatchcase(action, a) for a in actions_of(statement)) and any(
            fnmatch.fnmatchcase(resource, pattern) for pattern in patterns
        )

    from infra.nag import flatten_reference as flatten

    if any(s["Effect"] == "Deny" and matches(s) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in statements)


def _unhashed(text: str) -> str:
    """``<ApiCD79AAA0>`` -> ``<Api>``: tests name resources without their hashes."""
    import re

    return re.sub(r"<([A-Za-z0-9]+?)[0-9A-F]{8}((?:\.[A-Za-z]+)?)>", r"<\1\2>", text)
