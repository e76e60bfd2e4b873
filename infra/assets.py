"""Where code comes from: the shared ``functions/`` asset, the layers, the training image.

Modes (context ``flywheel:assets`` or env ``FLYWHEEL_ASSETS``):

``build``
    Layers from ``layers/build/<layer>`` (made by ``layers/build.py``); fails if missing.
``stub``
    A tiny placeholder for every layer, so synth needs neither pip nor network (the infra
    tests use this). Stub templates get a CloudFormation rule that fails any deployment.
``auto`` (default)
    ``build`` when every layer has been built, ``stub`` otherwise (with a warning).

No mode needs Docker at synth time: the training image is only staged as a build context;
``cdk deploy`` builds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aws_cdk import (
    Annotations,
    CfnParameter,
    CfnRule,
    CfnRuleAssertion,
    Fn,
    IgnoreMode,
    Stack,
)
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_

from infra.catalog import DOMAIN_EXCLUDES, FUNCTIONS_DIR, IMAGES, LAYERS

#: The checkout, or the site-packages folder of an installed Flywheel (``functions/`` sits
#: next to ``infra/`` in both).
REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_BUILD_DIR = REPO_ROOT / "layers" / "build"
STUB_ASSETS_DIR = Path(__file__).resolve().parent / "stub_assets"
STUB_LAYER_DIR = STUB_ASSETS_DIR / "layer"
#: An installed Flywheel has no image build context; stub synths stage this placeholder.
STUB_IMAGE_DIR = STUB_ASSETS_DIR / "image"

AssetMode = Literal["build", "stub", "auto"]
CONTEXT_KEY = "flywheel:assets"
ENV_VAR = "FLYWHEEL_ASSETS"

#: Never shipped with the function code.
CODE_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/tests", "**/.pytest_cache"]
#: The training image's build context is the repo root; the image may see only these.
IMAGE_CONTEXT_EXCLUDES = [
    "*",
    "!functions",
    "!shared/flywheel",
    "!layers/training",
    "!layers/build/training",
    *(f"shared/flywheel/{name}" for name in DOMAIN_EXCLUDES),
    "**/__pycache__",
    "**/*.pyc",
    "**/tests",
]
#: Stub synths stage the image context without the (large) built dependencies.
STUB_IMAGE_CONTEXT_EXCLUDES = [p for p in IMAGE_CONTEXT_EXCLUDES if p != "!layers/build/training"]


def resolve_mode(requested: str | None) -> Literal["build", "stub"]:
    """Turn the requested mode into ``build`` or ``stub`` (``auto`` looks for a build)."""
    mode = (requested or os.environ.get(ENV_VAR) or "auto").lower()
    if mode not in ("build", "stub", "auto"):
        raise ValueError(f"{CONTEXT_KEY} must be build, stub or auto, not {mode!r}")
    built = all((LAYER_BUILD_DIR / key / "python").is_dir() for key in LAYERS)
    if mode == "build" and not built:
        missing = [k for k in LAYERS if not (LAYER_BUILD_DIR / k / "python").is_dir()]
        raise FileNotFoundError(
            f"layers not built ({', '.join(missing)}): run `.venv/bin/python layers/build.py` "
            f"or synthesize with `-c {CONTEXT_KEY}=stub`"
        )
    if mode == "auto":
        return "build" if built else "stub"
    return mode  # type: ignore[return-value]


@dataclass
class Assets:
    """Code assets for one app; creates one ``Code`` object per stack (CDK requires it)."""

    mode: Literal["build", "stub"]
    root: Path = REPO_ROOT
    _code: dict[str, lambda_.Code] = field(default_factory=dict)
    _guarded: set[str] = field(default_factory=set)

    @property
    def is_stub(self) -> bool:
        return self.mode == "stub"

    def function_code(self, scope: Stack) -> lambda_.Code:
        """The one code asset every zip function shares: the ``functions/`` directory."""
        key = f"code:{scope.node.path}"
        if key not in self._code:
            path = self.root / FUNCTIONS_DIR
            if not path.is_dir():
                if not self.is_stub:
                    raise FileNotFoundError(f"{path} does not exist")
                path = STUB_LAYER_DIR  # only before the handlers exist; stub mode only
            self._code[key] = lambda_.Code.from_asset(str(path), exclude=CODE_EXCLUDES)
        self.guard(scope)
        return self._code[key]

    def layer_code(self, scope: Stack, layer: str) -> lambda_.Code:
        key = f"layer:{layer}:{scope.node.path}"
        if key not in self._code:
            path = STUB_LAYER_DIR if self.is_stub else LAYER_BUILD_DIR / layer
            self._code[key] = lambda_.Code.from_asset(str(path))
        self.guard(scope)
        return self._code[key]

    def image_code(self, scope: Stack, image: str, handler: str) -> lambda_.DockerImageCode:
        """Container image code; staged at synth, built by ``cdk deploy`` (needs Docker then)."""
        spec = IMAGES[image]
        self.guard(scope)
        if self.is_stub and not (self.root / spec.dockerfile).is_file():
            return lambda_.DockerImageCode.from_image_asset(
                str(STUB_IMAGE_DIR), cmd=[handler], platform=ecr_assets.Platform.LINUX_AMD64
            )
        return lambda_.DockerImageCode.from_image_asset(
            str(self.root),
            file=spec.dockerfile,
            cmd=[handler],
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=STUB_IMAGE_CONTEXT_EXCLUDES if self.is_stub else IMAGE_CONTEXT_EXCLUDES,
            ignore_mode=IgnoreMode.DOCKER,
        )

    def guard(self, scope: Stack) -> None:
        """In stub mode, make the stack undeployable (a rule that can never hold)."""
        if not self.is_stub or scope.node.path in self._guarded:
            return
        self._guarded.add(scope.node.path)
        marker = CfnParameter(
            scope,
            "FlywheelAssetsMode",
            type="String",
            default="stub",
            allowed_values=["stub"],
            description="Synthesized with stub layers; run layers/build.py before deploying.",
        )
        CfnRule(
            scope,
            "StubAssetsAreNotDeployable",
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_not(Fn.condition_equals(marker.value_as_string, "stub")),
                    assert_description=(
                        "This template was synthesized with stub Lambda layers "
                        "(flywheel:assets=stub). Run `.venv/bin/python layers/build.py`, "
                        "synthesize again, then deploy."
                    ),
                )
            ],
        )
        Annotations.of(scope).add_info(
            "Stub layer assets: this synth is for tests and review only, not deployable."
        )
