"""What the Train step costs on each engine (ADR 85): measured here, priced from list prices.

Run: ``.venv/bin/python bench/training_engines.py [--rows 10000 100000 1000000]``

For each size, a fresh process builds a synthetic classification table (20 numeric
features, ``rows`` rows, seed 0), runs the workflow's own steps on the in-memory platform
(lock, validate, snapshot, then the Train step as a container job runs it:
``run_training_job``, HistGradientBoosting with its defaults) and reports the Train
step's wall time (one thread: ``OMP_NUM_THREADS=1``) and the process's peak resident
memory. The cost of that run on each engine is then computed from the list prices below
(us-east-1, on-demand, x86, taken from the AWS pricing pages; check them for your region):
the time on this machine stands for the time on the engine's CPU, a simplification the
table says out loud.

Engines: Lambda at the smallest memory size (1 GB steps) above 1.5 x the peak, when the
run fits in 15 minutes and 10 GB; Fargate (Batch) at the smallest size that fits, 2 vCPU
or more, billed per second with a 1-minute minimum *including the image pull* (Fargate
bills from the pull; the pull itself is an assumption, ``FARGATE_PULL_SECONDS``);
SageMaker ml.m5.xlarge (or the smallest ml.m5 that fits), billed per second of training.
Spot: the Fargate Spot and SageMaker managed-spot discounts below are typical, not
guaranteed (AWS sets them by capacity).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

#: List prices, us-east-1, on-demand, Linux x86.
LAMBDA_GB_SECOND = 0.0000166667
FARGATE_VCPU_HOUR = 0.04048
FARGATE_GB_HOUR = 0.004445
SAGEMAKER_HOUR = {"ml.m5.xlarge": 0.23, "ml.m5.2xlarge": 0.461, "ml.m5.4xlarge": 0.922}
SAGEMAKER_MEMORY_GB = {"ml.m5.xlarge": 16, "ml.m5.2xlarge": 32, "ml.m5.4xlarge": 64}
#: Typical discounts (not guaranteed).
FARGATE_SPOT_DISCOUNT = 0.70
SAGEMAKER_SPOT_DISCOUNT = 0.70
#: Assumed seconds Fargate spends pulling the ~1.5 GB training image (billed).
FARGATE_PULL_SECONDS = 60
LAMBDA_MAX_SECONDS = 900
LAMBDA_MAX_GB = 10


def _one(rows: int) -> dict[str, Any]:
    """Run the Train step once on ``rows`` rows; its seconds and the peak memory (GB)."""
    import numpy as np

    from flywheel.composition import InMemoryPlatform
    from flywheel.workflows.config import parse_model_config
    from flywheel.workflows.state import TrainingState

    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 20))
    target = (features[:, :5].sum(axis=1) + rng.normal(scale=2.0, size=rows) > 0).astype(int)
    folder = Path(tempfile.mkdtemp())
    table = folder / "data.csv"
    header = ",".join([*(f"f{i}" for i in range(20)), "label"])
    np.savetxt(
        table, np.column_stack([features, target]), delimiter=",", header=header, comments="",
        fmt=[*["%.6f"] * 20, "%d"],
    )  # fmt: skip
    steps = InMemoryPlatform().training_steps()
    steps.configs.put(
        parse_model_config({
            "name": "bench", "gate": {"metric": "roc_auc"},
            "training": {"task": "classification",
                         "dataset": {"source": str(table), "target": "label"},
                         "estimator": "hist_gradient_boosting", "seed": 0},
        }),
        actor="bench",
    )  # fmt: skip
    run = {
        "execution_id": "arn:aws:states:us-east-1:123456789012:execution:training:bench",
        "execution_name": "bench", "started_at": "2026-01-01T00:00:00Z",
        "state_machine": "training",
    }  # fmt: skip
    state: dict[str, Any] = {"model_name": "bench", "trigger": {"reason": "manual"}, "run": run}
    for key, step in (
        ("lock", steps.acquire_run_lock),
        ("validation", steps.validate_data),
        ("training_set", steps.build_training_set),
    ):
        state[key] = {"Payload": step(TrainingState.model_validate(state)).model_dump(mode="json")}
    prepared = steps.prepare_training_job(TrainingState.model_validate(state))
    started = time.perf_counter()
    result = steps.run_training_job(prepared.input)
    seconds = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    return {"rows": rows, "seconds": seconds, "peak_gb": peak_gb, "auc": result.metrics["roc_auc"]}


def _fargate_size(memory_gb: float) -> tuple[float, int]:
    """The smallest Fargate size of at least 2 vCPU whose memory holds ``memory_gb``."""
    from flywheel.training.engines import FARGATE_MEMORY, fargate_memory_options

    for vcpu in FARGATE_MEMORY:
        if vcpu < 2:
            continue
        for memory_mb in fargate_memory_options(vcpu):
            if memory_mb / 1024 >= memory_gb:
                return vcpu, memory_mb
    raise ValueError(f"{memory_gb} GB does not fit Fargate")


def costs(seconds: float, peak_gb: float) -> dict[str, str]:
    """USD per run on each engine (``-`` where the run does not fit)."""
    need = max(1.0, 1.5 * peak_gb)
    out: dict[str, str] = {}
    lambda_gb = math.ceil(need)
    if seconds <= LAMBDA_MAX_SECONDS and lambda_gb <= LAMBDA_MAX_GB:
        out["lambda"] = f"{lambda_gb * seconds * LAMBDA_GB_SECOND:.5f} ({lambda_gb} GB)"
    else:
        out["lambda"] = "does not fit"
    vcpu, memory_mb = _fargate_size(need)
    billed = max(60.0, seconds + FARGATE_PULL_SECONDS) / 3600
    fargate = (vcpu * FARGATE_VCPU_HOUR + memory_mb / 1024 * FARGATE_GB_HOUR) * billed
    out["batch"] = f"{fargate:.5f} ({vcpu:g} vCPU, {memory_mb // 1024} GB)"
    out["batch_spot"] = f"{fargate * (1 - FARGATE_SPOT_DISCOUNT):.5f}"
    instance = next(i for i, gb in SAGEMAKER_MEMORY_GB.items() if gb >= need)
    sagemaker = SAGEMAKER_HOUR[instance] * seconds / 3600
    out["sagemaker"] = f"{sagemaker:.5f} ({instance})"
    out["sagemaker_spot"] = f"{sagemaker * (1 - SAGEMAKER_SPOT_DISCOUNT):.5f}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one)))
        return 0
    print("| rows | Train step (s) | peak (GB) | Lambda USD | Batch USD | Batch spot | "
          "SageMaker USD | SageMaker spot |")  # fmt: skip
    print("|---:|---:|---:|---|---|---:|---|---:|")
    for rows in args.rows:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(rows)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        c = costs(measured["seconds"], measured["peak_gb"])
        print(
            f"| {rows:,} | {measured['seconds']:.1f} | {measured['peak_gb']:.2f} | {c['lambda']} "
            f"| {c['batch']} | {c['batch_spot']} | {c['sagemaker']} | {c['sagemaker_spot']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
