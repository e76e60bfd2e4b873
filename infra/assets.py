"""Where code comes from: the shared ``functions/`` asset, the layers, the training image.

Modes (context ``flywheel:assets`` or env ``FLYWHEEL_ASSETS``):

``build``
    Layers and the training image's context from the build directory (made by
    ``python -m infra.build_assets``; context ``flywheel:assets_dir`` or env
    ``FLYWHEEL_ASSETS_DIR``, see :func:`infra.build_assets.default_build_dir`). Fails
    when it is missing, or was built from other code or requirements than these.
``stub``
    A tiny placeholder for every layer and the image, so synth needs neither pip nor
    network (the infra tests use this). Stub templates get a CloudFormation rule that
    fails any deployment.
``auto`` (default)
    ``build`` when a fresh build exists, ``stub`` otherwise (with a warning).

No mode needs Docker at synth time: the training image is only staged as a build context;
``cdk deploy`` (or a pipeline's asset publishing) builds it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aws_cdk import (
    Annotations,
    CfnParameter,
    CfnRule,
    CfnRuleAssertion,
    Fn,
    Stack,
)
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_

from infra.build_assets import AssetsError, Sources, build_problems, default_build_dir

if TYPE_CHECKING:
    from constructs import Construct

STUB_ASSETS_DIR = Path(__file__).resolve().parent / "stub_assets"
STUB_LAYER_DIR = STUB_ASSETS_DIR / "layer"
#: The placeholder build context stub synths stage for the training image.
STUB_IMAGE_DIR = STUB_ASSETS_DIR / "image"

AssetMode = Literal["build", "stub", "auto"]
CONTEXT_KEY = "flywheel:assets"
DIR_CONTEXT_KEY = "flywheel:assets_dir"
ENV_VAR = "FLYWHEEL_ASSETS"

#: Never shipped with the function code.
CODE_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/tests", "**/.pytest_cache"]
BUILD_COMMAND = "python -m infra.build_assets"


def resolve_mode(
    requested: str | None, build_dir: Path | None = None, sources: Sources | None = None
) -> Literal["build", "stub"]:
    """Turn the requested mode into ``build`` or ``stub`` (``auto`` looks for a fresh build).

    Raises
    ------
    AssetsError
        ``build`` requested and the build is missing or stale (the message says why and
        what to run).
    """
    mode = (requested or os.environ.get(ENV_VAR) or "auto").lower()
    if mode not in ("build", "stub", "auto"):
        raise AssetsError(f"{CONTEXT_KEY} must be build, stub or auto, not {mode!r}")
    if mode == "stub":
        return "stub"
    sources = sources or Sources.located()
    build_dir = build_dir or default_build_dir(sources)
    problems = build_problems(build_dir, sources)
    if not problems:
        return "build"
    command = (
        BUILD_COMMAND
        if build_dir == default_build_dir(sources)
        else (f"{BUILD_COMMAND} --out {build_dir}")
    )
    if mode == "build":
        raise AssetsError(
            f"assets in {build_dir} cannot be deployed ({'; '.join(problems)}): run "
            f"`{command}`, or synthesize with `-c {CONTEXT_KEY}=stub`"
        )
    if (build_dir / "domain").is_dir():
        warnings.warn(
            f"stub assets: the build in {build_dir} is stale ({'; '.join(problems)}); "
            f"run `{command}`",
            stacklevel=2,
        )
    return "stub"


@dataclass
class Assets:
    """Code assets for one app; creates one ``Code`` object per stack (CDK requires it)."""

    mode: Literal["build", "stub"]
    #: Where ``python -m infra.build_assets`` built the layers and the image context.
    build_dir: Path = field(default_factory=default_build_dir)
    sources: Sources = field(default_factory=Sources.located)
    _code: dict[str, lambda_.Code] = field(default_factory=dict)
    _guarded: set[str] = field(default_factory=set)

    @property
    def is_stub(self) -> bool:
        return self.mode == "stub"

    def function_code(self, scope: Stack) -> lambda_.Code:
        """The one code asset every zip function shares: the ``functions/`` directory."""
        key = f"code:{scope.node.path}"
        if key not in self._code:
            path = self.sources.functions
            self._code[key] = lambda_.Code.from_asset(str(path), exclude=CODE_EXCLUDES)
        self.guard(scope)
        return self._code[key]

    def layer_code(self, scope: Stack, layer: str) -> lambda_.Code:
        key = f"layer:{layer}:{scope.node.path}"
        if key not in self._code:
            path = STUB_LAYER_DIR if self.is_stub else self.build_dir / layer
            self._code[key] = lambda_.Code.from_asset(str(path))
        self.guard(scope)
        return self._code[key]

    def image_code(self, scope: Stack, image: str, handler: str) -> lambda_.DockerImageCode:
        """Container image code; staged at synth, built by ``cdk deploy`` (needs Docker then).

        The context is ``<build>/<image>`` (Dockerfile, pinned wheels, code copies), or the
        stub placeholder.
        """
        self.guard(scope)
        context = STUB_IMAGE_DIR if self.is_stub else self.build_dir / image
        return lambda_.DockerImageCode.from_image_asset(
            str(context),
            cmd=[handler],
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=CODE_EXCLUDES,
        )

    def image_asset(
        self, scope: Construct, construct_id: str, image: str
    ) -> ecr_assets.DockerImageAsset:
        """The same image as :meth:`image_code`'s, for AWS Batch and SageMaker (ADR 85): the
        same context and options give the same asset hash, so one image is built and pushed
        and every engine runs it."""
        self.guard(Stack.of(scope))
        context = STUB_IMAGE_DIR if self.is_stub else self.build_dir / image
        return ecr_assets.DockerImageAsset(
            scope,
            construct_id,
            directory=str(context),
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=CODE_EXCLUDES,
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
            description=f"Synthesized with stub layers; run {BUILD_COMMAND} before deploying.",
        )
        CfnRule(
            scope,
            "StubAssetsAreNotDeployable",
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_not(Fn.condition_equals(marker.value_as_string, "stub")),
                    assert_description=(
                        "This template was synthesized with stub Lambda layers "
                        f"(flywheel:assets=stub). Run `{BUILD_COMMAND}`, "
                        "synthesize again, then deploy."
                    ),
                )
            ],
        )
        Annotations.of(scope).add_info(
            "Stub layer assets: this synth is for tests and review only, not deployable."
        )
