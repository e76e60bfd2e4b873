"""The whole model lifecycle on the local runtime: what ``flywheel demo`` runs.

seed data → training workflow (as synthesized) → the approvers' notification (the
``ApprovalRequested`` rule's message to the stage's topic) → approval through the
approval API (actor + reason) → promotion with a canary on alias ``live`` → predictions served by
the inference function → drifted traffic → scheduled drift scorer → ``DriftDetected``
→ a retraining run starts (a second trigger inside the cooldown is suppressed and
audited) → the new candidate waits for approval → delayed labels through
``POST /v1/feedback`` (true ones for the normal traffic, wrong ones for the drifted
traffic) → scheduled performance monitor → ``PerformanceDegraded`` → suppressed and
audited (the drift run is in progress) → ``audit verify`` → the champion's model card.

Every AWS call goes through boto3 (to moto in this process, or to the local moto
server); every Lambda runs its real handler through the local runtime's bridge.
"""

from __future__ import annotations

import csv
import io
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flywheel.local.runtime import readable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from datetime import datetime
    from pathlib import Path

    from flywheel.audit.chain import VerifyReport
    from flywheel.local.runtime import LocalRuntime
    from flywheel.settings import Settings
    from flywheel.workflows.records import ApprovalDoc

MODEL = "breast-cancer"
APPROVER = "arn:aws:iam::123456789012:user/ana.approver"
OPERATOR = "arn:aws:iam::123456789012:user/sam.operator"
DATASET_KEY = "datasets/breast-cancer/2026-01.csv"
TRAINING = "training"
PROMOTION = "promotion"


class Driver(Protocol):
    """Where the lifecycle runs: moto in this process, or the local moto server."""

    settings: Settings

    def client(self, service: str) -> Any: ...

    def advance(self, seconds: float) -> list[str]: ...

    def inject(self, function: str, *faults: str) -> None: ...

    def state_machine_arn(self, key: str) -> str: ...

    def function_name(self, suffix: str) -> str: ...

    def notifications(self) -> list[dict[str, Any]]: ...

    def hold_waits(self, hold: bool) -> None: ...

    def inject_llm(self, *faults: str) -> None: ...

    def clear_llm_faults(self) -> None: ...

    def recycle(self, function: str) -> None: ...

    def now(self) -> datetime: ...


@dataclass
class Stage:
    name: str
    seconds: float
    result: str


@dataclass
class LifecycleRun:
    stages: list[Stage] = field(default_factory=list)
    executions: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    verified: bool = False
    facts: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, progress: Callable[[str], None]) -> Iterator[list[str]]:
        notes: list[str] = []
        progress(f"{name} …")
        started = time.perf_counter()
        yield notes
        elapsed = time.perf_counter() - started
        self.stages.append(Stage(name, elapsed, "; ".join(notes)))
        progress(f"✓ {name} ({elapsed:.2f}s) {'; '.join(notes)}")


def model_config(bucket: str) -> dict[str, Any]:
    return {
        "name": MODEL,
        "training": {
            "task": "classification",
            "dataset": {"source": f"s3://{bucket}/{DATASET_KEY}", "target": "diagnosis"},
            "estimator": "logistic_regression",
            "hyperparameters": {"C": 1.0, "max_iter": 1000},
            "seed": 7,
            "description": "logistic regression on the breast-cancer data",
            "owner": "ml-platform-team",
            "intended_use": (
                "Demonstrates the lifecycle: scores a fine-needle aspirate's 30 "
                "cell-nucleus measurements as benign or malignant."
            ),
            "limitations": [
                "Not for clinical use; trained on 569 samples from one hospital.",
                "Measurements must come from the dataset's imaging and feature extraction.",
            ],
        },
        "gate": {"metric": "roc_auc", "minimums": {"accuracy": 0.9}},
        "retraining": {"cooldown_minutes": 60},
        "approval": {"timeout_hours": 24, "require_distinct_approver": True},
        "monitoring": {
            "window_hours": 24,
            "performance": {"metric": "accuracy", "max_relative_drop": 0.1, "min_labels": 100},
            "bias": {"attribute": "mean radius", "threshold": 14, "favorable": "benign"},
        },
    }


def dataset_csv() -> tuple[bytes, list[dict[str, float]]]:
    """The breast-cancer data as CSV, and some rows to score later."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*names, "diagnosis"])
    for row, target in zip(data.data, data.target, strict=True):
        writer.writerow([*(f"{v:.6g}" for v in row), str(data.target_names[target])])
    records = [dict(zip(names, map(float, row), strict=True)) for row in data.data]
    return out.getvalue().encode(), records


def diagnoses() -> list[str]:
    """The true class of each row of :func:`dataset_csv` (what feedback reports later)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return [str(data.target_names[t]) for t in data.target]


@dataclass
class Served:
    """One answered prediction request: which rows it scored and what came back."""

    request_id: str
    rows: list[int]
    predictions: list[str]
    shift: float


class Lifecycle:
    """Drive the lifecycle step by step (tests call the steps; the demo calls :meth:`run`)."""

    def __init__(
        self, driver: Driver, *, progress: Callable[[str], None] = lambda _: None,
        model: str = MODEL,
    ) -> None:  # fmt: skip
        self.driver = driver
        self.model = model
        self.progress = progress
        self.settings = driver.settings
        self.run_record = LifecycleRun()
        self.served: list[Served] = []

    # -- helpers -----
    def sdk(self, actor: str) -> Any:
        """The SDK acting as ``actor`` (the local runtime lets the demo name its people)."""
        from flywheel.composition import AwsPlatform
        from flywheel.sdk import Flywheel

        return Flywheel(AwsPlatform(self.settings), actor=actor)

    def executions(self, key: str) -> list[dict[str, Any]]:
        sfn = self.driver.client("stepfunctions")
        found = sfn.list_executions(stateMachineArn=self.driver.state_machine_arn(key))
        return sorted(found["executions"], key=lambda e: e["startDate"])

    def history(self, arn: str) -> tuple[str, list[str], dict[str, Any]]:
        sfn = self.driver.client("stepfunctions")
        described = sfn.describe_execution(executionArn=arn)
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        states = [
            e["stateEnteredEventDetails"]["name"]
            for e in events
            if e["type"].endswith("StateEntered")
        ]
        return described["status"], states, described

    def wait(
        self, arn: str, *, until: str | None = None, timeout: float = 300
    ) -> tuple[str, list[str]]:
        deadline = time.monotonic() + timeout
        while True:
            status, states, _ = self.history(arn)
            if status != "RUNNING" or (until and until in states):
                return status, states
            if time.monotonic() > deadline:
                raise TimeoutError(f"{arn}: still {status} after {timeout}s in {states[-3:]}")
            time.sleep(0.05)

    def wait_for_new_execution(
        self, key: str, known: int, timeout: float = 180, *, reason: str | None = None
    ) -> dict[str, Any]:
        """The newest execution once there are more than ``known`` (started by a trigger
        with ``reason``, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.executions(key)[known:] if self._started_by(e, reason)]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no new {key} execution after {timeout}s")
            time.sleep(0.05)

    def _started_by(self, execution: dict[str, Any], reason: str | None) -> bool:
        if reason is None:
            return True
        _, _, described = self.history(execution["executionArn"])
        trigger = json.loads(described.get("input") or "{}").get("trigger") or {}
        return bool(trigger.get("reason") == reason)

    def put_event(self, source: str, detail_type: str, detail: dict[str, Any]) -> None:
        self.driver.client("events").put_events(
            Entries=[
                {
                    "EventBusName": self.settings.event_bus,
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                }
            ]
        )

    def invoke_api(
        self, function: str, method: str, path: str, body: dict[str, Any], *,
        path_parameters: dict[str, str], caller: str | None = None, qualifier: str | None = None,
    ) -> tuple[int, dict[str, Any]]:  # fmt: skip
        from flywheel.local.api_gateway import rest_proxy_event

        event = rest_proxy_event(
            method,
            path,
            "",
            {"Content-Type": "application/json"},
            json.dumps(body).encode(),
            path_parameters=path_parameters,
        )
        if caller:
            event["requestContext"]["identity"]["userArn"] = caller
        # API Gateway invokes the alias ARN; a qualified name does the same (moto 5.2.5 drops
        # the separate Qualifier parameter).
        target = f"{function}:{qualifier}" if qualifier else function
        kwargs: dict[str, Any] = {"FunctionName": target, "Payload": json.dumps(event).encode()}
        response = self.driver.client("lambda").invoke(**kwargs)
        payload = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise RuntimeError(f"{function} failed: {payload}")
        return int(payload["statusCode"]), json.loads(payload.get("body") or "{}")

    def function_name(self, suffix: str) -> str:
        return self.driver.function_name(suffix)

    def notification(self, detail_type: str, mentions: str, timeout: float = 60) -> dict[str, Any]:
        """The first notification of ``detail_type`` whose message mentions ``mentions``."""
        deadline = time.monotonic() + timeout
        while True:
            for notice in self.driver.notifications():
                if notice["detail_type"] == detail_type and mentions in notice["message"]:
                    return notice
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {detail_type} notification mentions {mentions!r}")
            time.sleep(0.05)

    # -- steps -----
    def seed(self) -> list[dict[str, float]]:
        body, records = dataset_csv()
        self.driver.client("s3").put_object(
            Bucket=self.settings.resource("features_bucket"), Key=DATASET_KEY, Body=body
        )
        self.sdk(OPERATOR).configure_model(
            MODEL, _write_temp_config(model_config(self.settings.resource("features_bucket"))),
            reason="onboard breast-cancer",
        )  # fmt: skip
        return records

    def train_until_approval(self, trigger: Callable[[], object]) -> tuple[str, int, str]:
        known = len(self.executions(TRAINING))
        trigger()
        execution = self.wait_for_new_execution(TRAINING, known)
        status, states = self.wait(execution["executionArn"], until="RequestApproval")
        if status != "RUNNING":
            raise RuntimeError(f"training ended {status} before approval: {states}")
        version = self.sdk(OPERATOR).get_model(self.model).latest_version
        approval_id = self._approval_id(version)
        return execution["executionArn"], version, approval_id

    def _approval_id(self, version: int, timeout: float = 120) -> str:
        return self.approval(version, timeout).approval_id

    def approval(self, version: int, timeout: float = 120) -> ApprovalDoc:
        """The approval request of ``version``, once RequestApproval has stored it."""
        from flywheel.composition import AwsPlatform

        service = AwsPlatform(self.settings).approval_service()
        deadline = time.monotonic() + timeout
        while True:
            found = service.find_for_version(self.model, version)
            if found is not None:
                return found[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no approval request for version {version}")
            time.sleep(0.05)

    def approve(self, approval_id: str, reason: str) -> tuple[int, dict[str, Any]]:
        return self.invoke_api(
            self.function_name("approval-api"),
            "POST",
            f"/v1/approvals/{approval_id}",
            {"decision": "approve", "reason": reason},
            path_parameters={"approval_id": approval_id},
            caller=APPROVER,
        )

    def request_retrain(self, reason: str, *, caller: str = OPERATOR) -> tuple[int, dict[str, Any]]:
        """``POST /v1/models/{name}/retrain`` through the retrain function, as ``caller``."""
        return self.invoke_api(
            self.function_name("retrain-api"),
            "POST",
            f"/v1/models/{self.model}/retrain",
            {"reason": reason},
            path_parameters={"name": self.model},
            caller=caller,
        )

    def predict(
        self, records: list[dict[str, float]], *, explain: bool = False
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"records": records}
        if explain:
            body["explain"] = True
        return self.invoke_api(
            self.function_name(f"inference-{self.model}"),
            "POST",
            f"/v1/models/{self.model}/predict",
            body,
            path_parameters={"name": self.model},
            qualifier="live",
        )

    def serve_traffic(
        self, records: list[dict[str, float]], *, requests: int, batch: int = 20,
        shift: float = 1.0,
    ) -> dict[str, int]:  # fmt: skip
        """Score ``requests`` batches (features multiplied by ``shift``); count the variants."""
        variants: dict[str, int] = {}
        for i in range(requests):
            start = (i * batch) % max(1, len(records) - batch)
            chunk = [
                {k: v * shift for k, v in record.items()}
                for record in records[start : start + batch]
            ]
            status, body = self.predict(chunk)
            if status != 200:
                raise RuntimeError(f"prediction failed with {status}: {body}")
            variants[body["variant"]] = variants.get(body["variant"], 0) + 1
            self.served.append(
                Served(
                    request_id=body["request_id"],
                    rows=list(range(start, start + len(chunk))),
                    predictions=[str(p) for p in body["predictions"]],
                    shift=shift,
                )
            )
        return variants

    def feedback(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``POST /v1/feedback`` through the feedback function (as API Gateway invokes it)."""
        return self.invoke_api(
            self.function_name("feedback"), "POST", "/v1/feedback", body, path_parameters={}
        )

    def label_traffic(self, *, wrong_when_shifted: bool = True) -> list[tuple[int, dict[str, Any]]]:
        """Send the delayed ground truth of every served request, one batch per request.

        Normal traffic gets its true diagnosis; with ``wrong_when_shifted`` the drifted
        traffic gets the class the model did not predict (a concept shift: the model is
        now wrong on all of it).
        """
        truth = diagnoses()
        answers = []
        for served in self.served:
            labels = []
            for row, (index, predicted) in enumerate(
                zip(served.rows, served.predictions, strict=True)
            ):
                label = truth[index]
                if wrong_when_shifted and served.shift != 1.0:
                    label = "benign" if predicted == "malignant" else "malignant"
                labels.append({"request_id": served.request_id, "row": row, "label": label})
            answers.append(self.feedback({"model": MODEL, "labels": labels}))
        return answers

    def monitoring_reports(self) -> dict[str, Any]:
        """The newest JSON result of each monitor (drift, performance) of the model."""
        s3 = self.driver.client("s3")
        newest: dict[str, Any] = {}
        for kind in ("drift", "performance"):
            listed = s3.list_objects_v2(
                Bucket=self.settings.artifacts_bucket, Prefix=f"reports/{MODEL}/{kind}/"
            )
            keys = sorted(
                o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".json")
            )
            if keys:
                body = s3.get_object(Bucket=self.settings.artifacts_bucket, Key=keys[-1])["Body"]
                newest[kind] = json.loads(body.read())
        return newest

    @staticmethod
    def one_label(served: Served, row: int, label: str) -> dict[str, Any]:
        return {"model": MODEL, "request_id": served.request_id, "row": row, "label": label}

    def events_of(self, action: str, trigger: str) -> list[dict[str, Any]]:
        """Audit entries of ``action`` (``retrain_suppressed``, ...) for one trigger reason."""
        return [
            e.model_dump(mode="json")
            for e in self.sdk(OPERATOR).audit_entries(MODEL)
            if str(e.action) == action and e.details.get("trigger") == trigger
        ]

    def audit_actions(self) -> list[str]:
        return [str(e.action) for e in self.sdk(OPERATOR).audit_entries(MODEL)]

    def verify(self) -> VerifyReport:
        """What ``flywheel audit verify`` checks: links, the signed head, the anchors the
        scheduled anchor job wrote, the registry against the trail and the artifacts."""
        sdk = self.sdk(OPERATOR)
        self.run_record.audit = [e.model_dump(mode="json") for e in sdk.audit_entries(self.model)]
        report: VerifyReport = sdk.verify(self.model)
        self.run_record.verified = report.ok
        return report


def _write_temp_config(config: dict[str, Any]) -> Path:
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / f"{config['name']}.json"
    path.write_text(json.dumps(config))
    return path


def _api_functions(functions: Iterable[str]) -> dict[str, str]:
    """The API's functions the SDK calls as people would call the routes."""
    found: dict[str, str] = {}
    for name in functions:
        if name.endswith("-approval-api"):
            found["approval_function"] = name
        elif name.endswith("-retrain-api"):
            found["retrain_function"] = name
    return found


class InProcessDriver:
    """The lifecycle on moto in this process (inside ``mock_aws(config=MOTO_CONFIG)``)."""

    def __init__(self, runtime: LocalRuntime) -> None:
        from flywheel.settings import Settings

        self.runtime = runtime
        self.settings = Settings.of_deployment(
            runtime.deployment.resource_environment(),
            backend="aws",
            **_api_functions(runtime.bridge.functions),
        )
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """One client per service; created while no in-process invocation edits the
        environment (handlers run on moto's execution threads)."""
        import boto3

        from flywheel.local.bridge import ENVIRONMENT_LOCK

        if service not in self._clients:
            with ENVIRONMENT_LOCK:
                self._clients[service] = boto3.client(  # type: ignore[call-overload]
                    service, region_name="us-east-1"
                )
        return self._clients[service]

    def advance(self, seconds: float) -> list[str]:
        return self.runtime.advance(seconds)

    def inject(self, function: str, *faults: str) -> None:
        self.runtime.bridge.inject(self.function_name(function), *faults)

    def state_machine_arn(self, key: str) -> str:
        return self.runtime.state_machine_arn(key)

    def function_name(self, suffix: str) -> str:
        matches = [n for n in self.runtime.bridge.functions if n.endswith(f"-{suffix}")]
        if len(matches) != 1:
            raise KeyError(f"no single function ending in {suffix!r}: {matches}")
        return matches[0]

    def notifications(self) -> list[dict[str, Any]]:
        return self.runtime.notifications()

    def hold_waits(self, hold: bool) -> None:
        self.runtime.hold_waits(hold)

    def inject_llm(self, *faults: str) -> None:
        self.runtime.llm.inject(*faults)

    def clear_llm_faults(self) -> None:
        self.runtime.llm.clear()

    def recycle(self, function: str) -> None:
        """A new execution environment for ``function`` (suffix) on its next call."""
        self.runtime.bridge.recycle(self.function_name(function))

    def now(self) -> datetime:
        return self.runtime.clock.now()


class ServerDriver:
    """The lifecycle against the local moto server (``flywheel local start``)."""

    def __init__(self, port: int) -> None:
        from flywheel.local import server
        from flywheel.settings import Settings

        self.port = port
        self.resources = server.control(port, "/resources")
        self.settings = Settings.of_deployment(
            self.resources["environment"],
            backend="local",
            local_port=port,
            endpoint_url=server.endpoint(port),
            **_api_functions(self.resources["functions"]),
        )

    def client(self, service: str) -> Any:
        from flywheel.composition.clients import ClientFactory

        return ClientFactory.for_settings(self.settings).client(service)

    def advance(self, seconds: float) -> list[str]:
        from flywheel.local import server

        fired: list[str] = server.control(self.port, "/advance", {"seconds": seconds})["fired"]
        return fired

    def inject(self, function: str, *faults: str) -> None:
        from flywheel.local import server

        body = {"function": self.function_name(function), "faults": list(faults)}
        server.control(self.port, "/faults", body)

    def state_machine_arn(self, key: str) -> str:
        for name, arn in self.resources["state_machines"].items():
            if name.endswith(f"-{key}"):
                return str(arn)
        raise KeyError(key)

    def function_name(self, suffix: str) -> str:
        matches = [n for n in self.resources["functions"] if n.endswith(f"-{suffix}")]
        if len(matches) != 1:
            raise KeyError(f"no single function ending in {suffix!r}: {matches}")
        return str(matches[0])

    def notifications(self) -> list[dict[str, Any]]:
        from flywheel.local import server

        found: list[dict[str, Any]] = server.control(self.port, "/notifications")["notifications"]
        return found

    def hold_waits(self, hold: bool) -> None:
        from flywheel.local import server

        server.control(self.port, "/hold-waits", {"hold": hold})

    def inject_llm(self, *faults: str) -> None:
        from flywheel.local import server

        server.control(self.port, "/llm-faults", {"faults": list(faults)})

    def clear_llm_faults(self) -> None:
        from flywheel.local import server

        server.control(self.port, "/llm-faults", {"faults": [], "clear": True})

    def recycle(self, function: str) -> None:
        """A new execution environment for ``function`` (suffix) on its next call."""
        from flywheel.local import server

        server.control(self.port, "/recycle", {"function": self.function_name(function)})

    def now(self) -> datetime:
        from datetime import datetime

        from flywheel.local import server

        return datetime.fromisoformat(server.control(self.port, "/resources")["now"])


def run_demo(driver: Driver, *, progress: Callable[[str], None], report_dir: Path) -> LifecycleRun:
    """The whole loop, as ``flywheel demo`` shows it; returns what happened."""
    life = Lifecycle(driver, progress=progress)
    run = life.run_record
    total = time.perf_counter()
    with run.stage("seed data and onboard the model", progress) as notes:
        records = life.seed()
        notes.append(f"{len(records)} rows in s3://{life.settings.features_bucket}/{DATASET_KEY}")
    with run.stage("training workflow (POST /v1/models/{name}/retrain)", progress) as notes:
        arn, version, approval_id = life.train_until_approval(
            lambda: life.request_retrain("first model of breast-cancer")
        )
        candidate = life.sdk(OPERATOR).get_version(MODEL, version)
        notes.append(
            f"v{version} waits for approval; roc_auc {candidate.metrics.get('roc_auc', 0):.4f}, "
            f"parity max|Δ| {candidate.parity.max_abs_diff if candidate.parity else 0:.1e}"
        )
    notice = life.notification("ApprovalRequested", approval_id)
    text = readable(notice["message"])
    run.facts["approval_notification"] = {**notice, "text": text}
    progress(f"✓ approvers notified: {text.splitlines()[0]}")
    with run.stage("approval through POST /v1/approvals/{id}", progress) as notes:
        status, body = life.approve(approval_id, "holdout metrics and parity reviewed")
        notes.append(f"HTTP {status}: {body.get('status')} by {body.get('decided_by')}")
        life.wait(arn)
    with run.stage("promotion workflow (canary, bake, alarms)", progress) as notes:
        promotion = life.wait_for_new_execution(PROMOTION, 0)
        status_text, states = life.wait(promotion["executionArn"])
        notes.append(f"{status_text}: {' → '.join(states[1:])}")
    with run.stage("predictions served on alias live", progress) as notes:
        variants = life.serve_traffic(records, requests=10, shift=1.0)
        notes.append(f"10 requests x 20 rows → {variants}")
    with run.stage("an explained prediction (explain: true)", progress) as notes:
        notes.append(_explained(life, records[0], run))
    from flywheel.local.llm_demo import run_prompt_demo

    run_prompt_demo(life, run, progress)
    with run.stage("drifted traffic, hourly drift scorer", progress) as notes:
        life.serve_traffic(records, requests=10, shift=1.8)
        fired = driver.advance(3600 + 60)
        notes.append(f"schedules fired: {sorted(set(fired))}")
        notes.extend(_drift_summary(life.monitoring_reports().get("drift")))
    _retraining(life, run, progress)
    _labels_and_performance(life, run, progress)
    _verify(life, run, progress)
    with run.stage("model card of the champion (flywheel models card)", progress) as notes:
        notes.append(_model_card(life, run, report_dir))
    for key in (TRAINING, PROMOTION):
        for execution in life.executions(key):
            status_text, states, _ = life.history(execution["executionArn"])
            run.executions.append(
                {
                    "workflow": key,
                    "name": execution["name"],
                    "status": status_text,
                    "states": states,
                }
            )
    run.facts["notifications"] = [
        {**n, "text": readable(n["message"])} for n in driver.notifications()
    ]
    run.facts["total_seconds"] = time.perf_counter() - total
    write_report(run, report_dir)
    return run


def _explained(life: Lifecycle, record: dict[str, float], run: LifecycleRun) -> str:
    """One record scored with ``explain: true``: its label and its three largest SHAP values."""
    status, body = life.predict([record], explain=True)
    if status != 200 or not body.get("explanations"):
        return f"HTTP {status}: {body.get('error', {}).get('message', 'no explanation')}"
    explanation = body["explanations"][0]
    top = sorted(explanation["attributions"].items(), key=lambda kv: -abs(kv[1][0]))[:3]
    run.facts["explanation"] = {"prediction": body["predictions"][0], **explanation}
    shown = ", ".join(f"{name} {values[0]:+.2f}" for name, values in top)
    return (
        f"{body['predictions'][0]}; {explanation['method']} in {explanation['space']} "
        f"(base {explanation['base_value'][0]:+.2f}): {shown}"
    )


def _retraining(life: Lifecycle, run: LifecycleRun, progress: Callable[[str], None]) -> None:
    """``DriftDetected`` starts a run whose candidate waits for approval; a second trigger
    during that run is suppressed and audited."""
    with run.stage("DriftDetected → retraining run", progress) as notes:
        retrain = life.wait_for_new_execution(TRAINING, 1)
        status_text, states = life.wait(retrain["executionArn"], until="RequestApproval")
        new_version = life.sdk(OPERATOR).get_model(MODEL).latest_version
        notes.append(f"v{new_version} waits for approval ({status_text} at {states[-1]})")
        notes.append(f"global importance {_importance_at_evaluation(life, new_version)}")
    with run.stage("second trigger inside the run/cooldown", progress) as notes:
        life.put_event("flywheel.monitoring", "DriftDetected", {"model_name": MODEL})
        second = life.wait_for_new_execution(TRAINING, 2)
        status_text, states = life.wait(second["executionArn"])
        notes.append(f"{status_text} at {states[-1]} (audited as retrain_suppressed)")


def _importance_at_evaluation(life: Lifecycle, version: int) -> str:
    """The candidate's importance against the champion's, as its approvers were told."""
    from flywheel.workflows.approvals import importance_line

    return importance_line(life.approval(version).summary)


def _model_card(life: Lifecycle, run: LifecycleRun, report_dir: Path) -> str:
    """Write the champion's model card (HTML and Markdown) next to the run report."""
    from flywheel.workflows.card_pages import render_html, render_markdown

    card = life.sdk(OPERATOR).model_card(MODEL)
    report_dir.mkdir(parents=True, exist_ok=True)
    page = report_dir / f"{MODEL}-v{card.overview.version}-card.html"
    page.write_text(render_html(card), encoding="utf-8")
    page.with_suffix(".md").write_text(render_markdown(card), encoding="utf-8")
    decided = card.decision
    approved = f"approved by {decided.actor}" if decided is not None else "not approved"
    run.facts["model_card"] = {
        "html": str(page),
        "markdown": str(page.with_suffix(".md")),
        "version": card.overview.version,
        "owner": card.overview.owner,
        "approved_by": decided.actor if decided is not None else None,
        "history": [event.action for event in card.history],
        "top_features": list(card.importance)[:3],
        "chain_ok": card.chain.ok if card.chain is not None else None,
    }
    return (
        f"v{card.overview.version} ({', '.join((card.overview.status, *card.overview.aliases))})"
        f", owner {card.overview.owner}, {approved}; top features "
        f"{', '.join(list(card.importance)[:3])}; written to {page}"
    )


def _verify(life: Lifecycle, run: LifecycleRun, progress: Callable[[str], None]) -> None:
    """The last stage: the full check ``flywheel audit verify`` makes."""
    with run.stage("audit verify (signed head, anchors)", progress) as notes:
        report = life.verify()
        notes.append(f"{'OK' if report.ok else 'BROKEN'}: {len(run.audit)} entries")
        notes.append(report.evidence)
        run.facts["audit_evidence"] = report.evidence


def _drift_summary(drift: dict[str, Any] | None) -> list[str]:
    """What the newest drift report found, in a line or two."""
    if drift is None:
        return []
    drifted = [f["feature"] for f in drift["features"] if f["drifted"]]
    notes = [
        f"{len(drifted)} of {drift['scored_features']} features drifted "
        f"({', '.join(drifted[:3])}{', ...' if len(drifted) > 3 else ''})"
    ]
    predictions = drift.get("prediction_drift")
    if predictions is not None:
        notes.append(
            f"scores vs holdout: PSI {predictions['psi']:.2f}, "
            f"{'moved' if predictions['drifted'] else 'stable'}"
        )
    attribution = drift.get("attribution_drift")
    if attribution is not None and attribution.get("ndcg") is not None:
        notes.append(
            f"importance ranking vs training: NDCG {attribution['ndcg']:.3f} over "
            f"{attribution['sample_rows']} explained rows, "
            f"{'changed' if attribution['drifted'] else 'stable'}"
        )
    elif attribution is not None:
        notes.append(f"importance ranking not compared: {attribution.get('reason')}")
    return notes


def _labels_and_performance(
    life: Lifecycle, run: LifecycleRun, progress: Callable[[str], None]
) -> None:
    """Labels through the API → the performance monitor → ``PerformanceDegraded``, which the
    run lock suppresses (the drift run still waits for approval), audited with its reason."""
    with run.stage("delayed labels through POST /v1/feedback", progress) as notes:
        answers = life.label_traffic(wrong_when_shifted=True)
        stored = sum(body.get("stored", 0) for _, body in answers)
        statuses = sorted({status for status, _ in answers})
        first = life.served[0]
        true_label = diagnoses()[first.rows[0]]
        other = "benign" if true_label == "malignant" else "malignant"
        resent = [life.feedback(life.one_label(first, 0, label)) for label in (true_label, other)]
        run.facts["labels_stored"] = stored
        run.facts["labels_resent"] = [status for status, _ in resent]
        notes.append(
            f"HTTP {statuses}: {stored} labels stored (true for the normal traffic, wrong for "
            f"the drifted traffic); the same label again → HTTP {resent[0][0]} "
            f"{resent[0][1]['results'][0]['status']}, another label → HTTP {resent[1][0]}"
        )
    with run.stage("performance monitor (6-hourly) → PerformanceDegraded", progress) as notes:
        known = len(life.executions(TRAINING))
        fired = life.driver.advance(5 * 3600)
        performance_runs = [f for f in fired if f.endswith("performance-monitor-schedule")]
        suppressed = life.wait_for_new_execution(TRAINING, known, reason="performance")
        status_text, states = life.wait(suppressed["executionArn"])
        [audited] = life.events_of("retrain_suppressed", "performance")
        run.facts["performance_suppressed"] = audited["reason"]
        result = life.monitoring_reports()["performance"]["performance"]
        notes.append(
            f"{len(performance_runs)} performance run: {result['metric']} {result['value']:.3f} "
            f"vs holdout {result['baseline']:.3f} on {result['window']['labelled']} labels → "
            f"{result['verdict']}; retraining {status_text} at {states[-1]}: {audited['reason']}"
        )


def write_report(run: LifecycleRun, report_dir: Path) -> Path:
    """The run report: stages with times, every state visited, every audit entry."""
    import html

    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "demo.json").write_text(
        json.dumps(
            {
                "stages": [s.__dict__ for s in run.stages],
                "executions": run.executions,
                "audit": run.audit,
                "verified": run.verified,
                "facts": run.facts,
            },
            indent=2,
            default=str,
        )
    )
    e = html.escape
    stages = "".join(
        f"<tr><td>{e(s.name)}</td><td>{s.seconds:.2f}</td><td>{e(s.result)}</td></tr>"
        for s in run.stages
    )
    executions = "".join(
        f"<tr><td>{e(x['workflow'])}</td><td>{e(x['name'])}</td><td>{e(x['status'])}</td>"
        f"<td>{e(' → '.join(x['states']))}</td></tr>"
        for x in run.executions
    )
    notifications = "".join(
        f"<tr><td>{e(n['time'])}</td><td>{e(n['topic'])}</td><td>{e(str(n['detail_type']))}</td>"
        f"<td><pre>{e(n['text'])}</pre></td></tr>"
        for n in run.facts.get("notifications", [])
    )
    audit = "".join(
        f"<tr><td>{a['seq']}</td><td>{e(a['timestamp'])}</td><td>{e(a['actor'])}</td>"
        f"<td>{e(a['action'])}</td><td>{a.get('version') or ''}</td>"
        f"<td>{e(a.get('reason') or '')}</td><td><code>{a['hash'][:16]}</code></td></tr>"
        for a in run.audit
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flywheel lifecycle run</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse;
margin-bottom:2rem}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;
vertical-align:top}}</style></head><body>
<h1>Flywheel lifecycle run</h1>
<p>Audit chain: <strong>{"intact" if run.verified else "BROKEN"}</strong>;
total {run.facts.get("total_seconds", 0):.1f}s.</p>
<h2>Stages</h2><table><tr><th>stage</th><th>seconds</th><th>result</th></tr>{stages}</table>
<h2>Notifications (what the stage's topic received)</h2>
<table><tr><th>time</th><th>topic</th><th>event</th><th>message</th></tr>
{notifications}</table>
<h2>Workflow executions (every state visited)</h2>
<table><tr><th>workflow</th><th>execution</th><th>status</th><th>states</th></tr>
{executions}</table>
<h2>Audit trail of {e(MODEL)}</h2>
<table><tr><th>seq</th><th>when</th><th>actor</th><th>action</th><th>version</th><th>reason</th>
<th>hash</th></tr>{audit}</table></body></html>
"""
    path = report_dir / "demo.html"
    path.write_text(page)
    return path
