"""What gets deployed as code: every function, its handler, packaging and layers.

Plain data with no CDK import, shared by the CDK constructs and by
``infra/build_assets.py`` (which checks every function plus its layers against Lambda's
size limit), so the two can never disagree about which function carries which dependencies.

All zip functions share one code asset, the ``functions/`` directory; the domain package
``flywheel`` ships once, as the ``domain`` layer. Training steps need scikit-learn,
SciPy, skl2onnx, ONNX and ONNX Runtime together, which does not fit in 250 MB
unzipped (measured by ``infra/build_assets.py``), so they run from one container image.

Examples
--------
>>> FUNCTIONS["inference"].layers
('domain', 'base', 'onnxruntime')
>>> sorted({f.packaging for f in FUNCTIONS.values()})
['image', 'zip']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Lambda's limit on function code plus all its layers, unzipped (262 144 000 bytes).
ZIP_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
#: Lambda's limit on a container image (uncompressed).
IMAGE_LIMIT_BYTES = 10 * 1024 * 1024 * 1024

#: What of the domain package never ships to Lambda (layer or image): the developer
#: toolkit (CLI, SDK, local runtime).  An import contract keeps handlers off them.
DOMAIN_EXCLUDES = ("cli", "local", "sdk.py")
#: Lambda's Python runtime; the layers are built for exactly this ABI.
PYTHON_VERSION = "3.12"
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")


@dataclass(frozen=True)
class LayerSpec:
    """A Lambda layer built by ``infra/build_assets.py`` into ``<build>/<key>/python``."""

    key: str
    description: str
    #: Pinned, complete requirements (installed with ``--no-deps``), relative to the
    #: ``infra`` package; ``None`` for the domain layer, a copy of the ``flywheel`` package.
    requirements: str | None


@dataclass(frozen=True)
class ImageSpec:
    """A container image for functions whose dependencies exceed the zip limit (paths
    relative to the ``infra`` package)."""

    key: str
    dockerfile: str
    requirements: str


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function (per model when ``per_model``)."""

    key: str
    handler: str
    packaging: Literal["zip", "image"]
    layers: tuple[str, ...]
    memory_mb: int
    timeout_seconds: int
    description: str
    per_model: bool = False
    image: str | None = None
    #: Lambda SnapStart on published versions: the init phase (imports, model fetch,
    #: SHA-256 check, ONNX session) runs once when a version is published, and new
    #: execution environments resume from that snapshot.
    snap_start: bool = False


LAYERS: dict[str, LayerSpec] = {
    "domain": LayerSpec("domain", "The flywheel domain package", None),
    "base": LayerSpec(
        "base",
        "numpy, pydantic, pydantic-settings, Powertools (tracer), PyYAML",
        "layers/base/requirements.txt",
    ),
    "onnxruntime": LayerSpec(
        "onnxruntime",
        "ONNX Runtime for serving (no training libraries)",
        "layers/onnxruntime/requirements.txt",
    ),
}

IMAGES: dict[str, ImageSpec] = {
    "training": ImageSpec(
        "training", "layers/training/Dockerfile", "layers/training/requirements.txt"
    ),
}

#: The serving runtime: domain + numpy/pydantic/Powertools + ONNX Runtime.
RUNTIME_LAYERS = ("domain", "base", "onnxruntime")
#: Control-plane functions that never score a model.
CONTROL_LAYERS = ("domain", "base")

TRAINING_STEPS = (
    "acquire_run_lock",
    "validate_data",
    "build_training_set",
    "train",
    "evaluate",
    "gate",
    "register",
    "request_approval",
    "release_run_lock",
)
#: The steps around a Train step that runs on AWS Batch or SageMaker (ADR 85): created
#: only in stages with a model whose ``training.engine`` is not ``lambda``.
TRAINING_JOB_STEPS = ("prepare_training_job", "collect_training_job")
PROMOTION_STEPS = (
    "evaluate_candidate",
    "publish_version",
    "shift_alias",
    "check_canary",
    "promote_all",
    "rollback",
    "record_failure",
)
#: The promotion step that answers a prompt version's evaluation set with the version and
#: its champion (two provider calls an item, scored by the evaluators; ADR 81).
EVALUATION_STEP = "evaluate_candidate"
#: Promotion steps that take longer than a minute (publishing waits for the new version).
PROMOTION_STEP_TIMEOUTS = {"publish_version": 120, EVALUATION_STEP: 900}
#: Training steps that crunch data get the stage's training memory and 15 minutes.
HEAVY_TRAINING_STEPS = frozenset({"validate_data", "build_training_set", "train", "evaluate"})


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _functions() -> dict[str, FunctionSpec]:
    specs = [
        FunctionSpec(
            "inference",
            "inference.handler.handler",
            "zip",
            RUNTIME_LAYERS,
            1024,
            10,
            "Scores requests with one pinned model version (alias live)",
            per_model=True,
            snap_start=True,
        ),
        FunctionSpec(
            "approval-api",
            "approval_api.handler.handler",
            "zip",
            RUNTIME_LAYERS,
            512,
            15,
            "POST /v1/approvals/{id}: the only function allowed to approve a version",
        ),
        FunctionSpec(
            "retrain-api",
            "retrain_api.handler.handler",
            "zip",
            CONTROL_LAYERS,
            512,
            15,
            "POST /v1/models/{name}/retrain and /promotions: RetrainRequested, PromotionRequested",
        ),
        FunctionSpec(
            "prompt-api",
            "prompt_api.handler.handler",
            "zip",
            CONTROL_LAYERS,
            512,
            15,
            "POST /v1/prompts/{name}/versions: registers a prompt version as the caller",
        ),
        FunctionSpec(
            "feedback",
            "feedback.handler.handler",
            "zip",
            RUNTIME_LAYERS,
            512,
            15,
            "POST /v1/feedback: delayed ground-truth labels",
        ),
        FunctionSpec(
            "llm-gateway",
            "llm_gateway.handler.handler",
            "zip",
            CONTROL_LAYERS,  # no model to score: the provider answers
            512,
            # API Gateway gives an integration 29 s; the gateway's provider calls end
            # sooner (infra.constructs.llm_gateway) and it answers 504 itself.
            29,
            "POST /v1/prompts/{name}/invoke: a prompt's version answers through its provider",
        ),
        FunctionSpec(
            "drift-scorer",
            "drift_scorer.handler.handler",
            "zip",
            RUNTIME_LAYERS,  # attribution drift loads the verified champion (ADR 73)
            2048,
            900,
            "Scheduled: captured window vs reference profile; emits DriftDetected",
        ),
        FunctionSpec(
            "performance-monitor",
            "performance_monitor.handler.handler",
            "zip",
            CONTROL_LAYERS,
            1024,
            300,
            "Scheduled: joins delayed labels; emits PerformanceDegraded",
        ),
        FunctionSpec(
            "llm-monitor",
            "llm_monitor.handler.handler",
            "zip",
            CONTROL_LAYERS,  # the embedded evaluators need numpy only
            1024,
            900,
            "Scheduled: prompts' captured calls scored; emits LlmQualityDegraded",
        ),
        FunctionSpec(
            "records-writer",
            "records_writer.handler.handler",
            "zip",
            CONTROL_LAYERS,
            512,
            30,
            "The only writer of the registry and the audit trail; signs audit heads",
        ),
        FunctionSpec(
            "audit-anchor",
            "audit_anchor.handler.handler",
            "zip",
            CONTROL_LAYERS,
            512,
            300,
            "Scheduled: verifies each audit chain and copies its signed head to the anchors bucket",
        ),
        FunctionSpec(
            "llm-budgets",
            "llm_budgets.handler.handler",
            "zip",
            CONTROL_LAYERS,
            256,
            60,
            "Scheduled: LLM budgets' share spent; BudgetThresholdReached once per period",
        ),
        FunctionSpec(
            "feature-materializer",
            "feature_materializer.handler.handler",
            "image",  # reads the offline store's Parquet files: pyarrow, like training
            (),
            3008,
            900,
            "Scheduled: new offline feature rows to the online store (incremental, idempotent)",
            image="training",
        ),
    ]
    for step in (*TRAINING_STEPS, *TRAINING_JOB_STEPS):
        heavy = step in HEAVY_TRAINING_STEPS
        specs.append(
            FunctionSpec(
                f"training-{_kebab(step)}",
                f"training_steps.handler.{step}",
                "image",
                (),
                3008 if heavy else 512,
                900 if heavy else 60,
                f"Training workflow step {step}",
                image="training",
            )
        )
    for step in PROMOTION_STEPS:
        specs.append(
            FunctionSpec(
                f"promotion-{_kebab(step)}",
                f"promotion_steps.handler.{step}",
                "zip",
                CONTROL_LAYERS,
                1024 if step == EVALUATION_STEP else 512,
                PROMOTION_STEP_TIMEOUTS.get(step, 60),
                f"Promotion workflow step {step}",
            )
        )
    return {s.key: s for s in specs}


FUNCTIONS: dict[str, FunctionSpec] = _functions()


def training_function_key(step: str) -> str:
    """``train`` -> ``training-train``."""
    return f"training-{_kebab(step)}"


def promotion_function_key(step: str) -> str:
    """``publish_version`` -> ``promotion-publish-version``."""
    return f"promotion-{_kebab(step)}"
