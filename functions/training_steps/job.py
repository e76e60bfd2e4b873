"""The Train step as a container job: AWS Batch on Fargate or a SageMaker training job.

The training image runs it when started with the argument ``train`` (SageMaker's own
convention; the Batch job definition's command says the same). It reads the workflow
state that PrepareTrainingJob stored (``FLYWHEEL_TRAINING_JOB_INPUT``: the artifact ref,
verified by its SHA-256), runs the same Train step the Lambda function runs, and writes
its result where CollectTrainingJob reads it (ADR 85). A failure exits non-zero, so the
job fails and the workflow's ``Catch`` takes the failure path; on SageMaker the reason
also goes to ``/opt/ml/output/failure`` (the job's ``FailureReason``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from flywheel.composition import AwsPlatform, check_environment
from flywheel.registry.models import ArtifactRef
from flywheel.settings import Settings

if TYPE_CHECKING:
    from flywheel.workflows.state import TrainResult

logger = Logger()

INPUT_VARIABLE = "FLYWHEEL_TRAINING_JOB_INPUT"
#: Where SageMaker looks for a failed job's reason (absent on Batch).
SAGEMAKER_FAILURE = Path("/opt/ml/output/failure")


def run() -> TrainResult:
    """Train on the stored state and store the result; errors propagate."""
    check_environment(Settings)
    raw = os.environ.get(INPUT_VARIABLE)
    if not raw:
        raise RuntimeError(f"{INPUT_VARIABLE} is not set: start this job from the workflow")
    input_ref = ArtifactRef.model_validate_json(raw)
    steps = AwsPlatform(Settings()).training_steps()
    result = steps.run_training_job(input_ref)
    logger.info(
        "training job finished",
        extra={
            "run_id": result.run_id,
            "artifact_sha256": result.artifact.sha256,
            "parity_passed": result.parity.passed,
            "n_train": result.n_train,
        },
    )
    return result


def main() -> int:
    """The process entry point: 0 when the result is stored, 1 otherwise."""
    try:
        run()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"[:1024]
        logger.exception("training job failed", extra={"reason": reason})
        if SAGEMAKER_FAILURE.parent.is_dir():
            SAGEMAKER_FAILURE.write_text(reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
