"""A team project's own models through the lifecycle on the local runtime.

What ``flywheel demo --project flywheel.yaml`` runs once the runtime serves the project's
stage: for each model the stage serves, onboard its workflow config (``model.yaml``),
train through the training workflow, approve through the approval API, promote with the
canary on alias ``live``, score a few rows of its training data, verify the audit trail.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from flywheel.local.lifecycle import OPERATOR, PROMOTION, Lifecycle, LifecycleRun

if TYPE_CHECKING:
    from collections.abc import Callable

    from flywheel.local.lifecycle import Driver
    from flywheel.project import LoadedProject


def sample_records(project: LoadedProject, model: str, rows: int = 5) -> list[dict[str, Any]]:
    """The first ``rows`` rows of ``model``'s training data, as prediction records."""
    from flywheel.training.datasets import load_dataset

    training = project.model_configs[model].training
    data = load_dataset(
        training.dataset.source, target=training.dataset.target, features=None, task=training.task
    )
    return [
        {name: _plain(value) for name, value in zip(data.feature_names, row, strict=True)}
        for row in data.X[:rows]
    ]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def run_project_demo(
    driver: Driver, project: LoadedProject, *, stage: str, progress: Callable[[str], None]
) -> LifecycleRun:
    """Onboard, train, approve, promote and serve every model of ``stage``; verify each trail."""
    run = LifecycleRun()
    run.verified = True
    for model in project.project.models_in(stage):
        life = Lifecycle(driver, progress=progress, model=model.name)
        with run.stage(
            f"{model.name}: onboard {project.project.config_path(model.name)}", progress
        ):
            life.sdk(OPERATOR).configure_model(
                model.name, project.model_config_path(model.name), reason="onboard from project"
            )
        with run.stage(f"{model.name}: training workflow", progress) as notes:
            arn, version, approval_id = life.train_until_approval(
                functools.partial(life.request_retrain, "first model")
            )
            candidate = life.sdk(OPERATOR).get_version(model.name, version)
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in sorted(candidate.metrics.items())[:3])
            notes.append(f"v{version} waits for approval; {metrics}")
        with run.stage(f"{model.name}: approval and promotion", progress) as notes:
            known = len(life.executions(PROMOTION))
            status, body = life.approve(approval_id, "holdout metrics reviewed")
            if status != 200:
                raise RuntimeError(f"approval of {model.name} failed with {status}: {body}")
            life.wait(arn)
            promotion = life.wait_for_new_execution(PROMOTION, known)
            outcome, states = life.wait(promotion["executionArn"])
            notes.append(f"{outcome}: {' → '.join(states[1:])}")
        with run.stage(f"{model.name}: predictions on alias live", progress) as notes:
            status, body = life.predict(sample_records(project, model.name))
            if status != 200:
                raise RuntimeError(f"prediction of {model.name} failed with {status}: {body}")
            notes.append(f"{body['variant']}: {body['predictions']}")
            run.facts.setdefault("predictions", {})[model.name] = body["predictions"]
        with run.stage(f"{model.name}: audit verify", progress) as notes:
            report = life.verify()
            run.verified = run.verified and report.ok
            notes.append("intact" if report.ok else "BROKEN")
    return run
