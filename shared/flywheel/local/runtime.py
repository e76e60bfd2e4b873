"""The local runtime: Flywheel's workflows on moto, exactly as synthesized.

moto runs Amazon States Language (``execute_state_machine``) but, without Docker,
no Lambda code; it never delivers EventBridge events to state machines or Lambda
functions, never fires schedules, really sleeps in ``Wait`` states and retry back-offs,
and has no Bedrock ``Converse``. :class:`LocalRuntime` bridges exactly those gaps:

- Lambda invocations of the app's functions run the real handlers in-process
  (:mod:`flywheel.local.bridge`);
- events put on a bus reach their rules' ``states``, ``lambda`` and (recorded) ``sns``
  targets, with the rule's input transformer applied;
- schedules, ``Wait`` states and back-offs use a :class:`~flywheel.local.clock.SimulatedClock`;
- ``Converse`` is answered by the local stand-in (:mod:`flywheel.local.bedrock`);
- Batch and SageMaker ``.sync`` training jobs run in-process (:mod:`.training_jobs`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import types
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3

from flywheel.adapters.local_llm import LocalConverse
from flywheel.clock import isoformat
from flywheel.local.bedrock import install_converse, uninstall_converse
from flywheel.local.bridge import LambdaBridge
from flywheel.local.clock import SimulatedClock
from flywheel.local.deployment import LocalDeployment, Provisioned, ScheduledRule
from flywheel.local.scheduler import next_fire
from flywheel.local.synth import repo_root, templates
from flywheel.local.training_jobs import TrainingJobBridge

if TYPE_CHECKING:
    from pathlib import Path

    from flywheel.local.rest_api import LocalRestApi

#: The moto release whose internals the bridge patches (checked at install).
MOTO_VERSION = "5.2.5"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
#: Environment every handler gets locally: no X-Ray daemon here, and captured rows are
#: written at once (a local "execution environment" lives as long as the process).
#: Every bridged function: no X-Ray, capture flushed per request, and the records writer
#: takes the actor callers name (the local runtime allows --actor).
LOCAL_FUNCTION_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "FLYWHEEL_CAPTURE_MAX_ROWS": "1",
    "FLYWHEEL_TRUST_ASSERTED_ACTORS": "true",
}
#: Longest real time a held ``Wait`` state waits for :meth:`LocalRuntime.hold_waits`.
HELD_WAIT_LIMIT_SECONDS = 120.0
BRIDGED_TARGETS = frozenset({"states", "lambda", "sns"})
CLIENTS = (
    "iam", "dynamodb", "s3", "lambda", "stepfunctions", "events", "cloudwatch", "sqs", "kms",
    "ssm",
)  # fmt: skip


@dataclass
class ExecutionReport:
    arn: str
    status: str
    states: list[str]
    output: Any
    error: str | None = None
    cause: str | None = None
    retries: dict[str, int] = field(default_factory=dict)


class LocalRuntime:
    """Provision the synthesized app on moto and run its workflows in this process.

    Use inside ``moto.mock_aws(config=MOTO_CONFIG)`` (tests, ``flywheel demo``) or in
    the local moto server process (``flywheel local start``).
    """

    def __init__(
        self,
        *,
        stage: str = "dev",
        clock: SimulatedClock | None = None,
        extra_env: dict[str, str] | None = None,
        template_set: dict[str, dict[str, Any]] | None = None,
        functions_dir: Path | None = None,
    ) -> None:
        self.deployment = LocalDeployment(template_set or templates(stage))
        self.clock = clock or SimulatedClock()
        self.bridge = LambdaBridge(
            functions_dir=functions_dir or repo_root() / "functions",
            extra_env={**LOCAL_FUNCTION_ENV, **(extra_env or {})},
            now=self.clock.now,
        )
        #: Runs the Batch and SageMaker training jobs the workflow starts (ADR 85).
        self.training_jobs = TrainingJobBridge(
            self.deployment, extra_env=self.bridge.extra_env, now=self.clock.now
        )
        #: What answers Bedrock ``Converse`` calls here (inject faults on it).
        self.llm = LocalConverse()
        self.provisioned: Provisioned | None = None
        self._patches: list[tuple[Any, str, Any]] = []
        self._next_fires: dict[str, datetime] = {}
        self._notifications: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._stopping = False
        #: Set while ``Wait`` states are held (:meth:`hold_waits`); cleared lets them pass.
        self._waits_released = threading.Event()
        self._waits_released.set()

    # -- lifecycle -----
    def start(self) -> LocalRuntime:
        """Install the bridges and provision every resource of the app."""
        _check_moto_version()
        self.install()
        clients = {name: _client(name) for name in CLIENTS}
        self.provisioned = self.deployment.provision(clients)
        for function in self.provisioned.functions:
            self.bridge.register(function)
        now = self.clock.now()
        for schedule in self.provisioned.schedules:
            self._next_fires[schedule.name] = next_fire(schedule.expression, now)
        return self

    def install(self) -> None:
        from moto.events.models import Rule
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function import (
            wait_function,
        )

        self.bridge.install()
        install_converse(self.llm)
        runtime = self
        original_send = Rule.send_to_targets

        def send_to_targets(rule: Any, original_event: Any, transform_input: bool = True) -> None:
            # moto raises NotImplementedError for Step Functions and Lambda targets:
            # hand it only the targets it supports, deliver the others ourselves.
            all_targets = rule.targets
            supported = [t for t in all_targets if _service(t["Arn"]) not in BRIDGED_TARGETS]
            if supported:
                rule.targets = supported
                try:
                    original_send(rule, original_event, transform_input)
                finally:
                    rule.targets = all_targets
            if rule.event_pattern.matches_event(original_event):
                runtime.deliver(rule, original_event)

        self._patch(Rule, "send_to_targets", send_to_targets)

        def wait_interval(_self: Any, env: Any, wait_seconds: int) -> None:  # noqa: ARG001
            runtime.waits_pass(wait_seconds)

        self._patch(wait_function.WaitFunction, "_wait_interval", wait_interval)

        clock_time = types.SimpleNamespace(
            sleep=runtime.clock.sleep, time=time.time, monotonic=time.monotonic
        )
        # ``time`` as the retrier sees it: back-offs advance the simulated clock.
        self._patch(retrier_decl, "time", clock_time)

        from moto.stepfunctions.parser.asl.eval.evaluation_details import ExecutionDetails

        original_details_init = ExecutionDetails.__init__

        def details_init(details: Any, *args: Any, **kwargs: Any) -> None:
            # Step Functions' context object carries StartTime as ISO 8601 text; moto
            # passes a datetime, which then breaks DescribeExecution's JSON output.
            original_details_init(details, *args, **kwargs)
            start = details.start_time
            if isinstance(start, datetime):
                details.start_time = (
                    start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                )

        self._patch(ExecutionDetails, "__init__", details_init)

        from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
            state_task_factory,
        )

        self._patch(
            state_task_factory,
            "state_task_service_for",
            self.training_jobs.service_for(state_task_factory.__dict__["state_task_service_for"]),
        )

        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_callback as callback,
        )

        self._patch(
            callback.StateTaskServiceCallback,
            "_wait_for_task_token_heartbeat",
            _wait_for_task_token_heartbeat,
        )

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def stop(self, *, drain_seconds: float = 15.0) -> None:
        """Stop every running execution and let in-flight handlers finish, then uninstall.

        Executions left running would otherwise go on invoking functions and delivering
        events through the next runtime of this process (moto's state and our patches are
        process-wide).
        """
        self._stopping = True
        sfn = _client("stepfunctions")
        deadline = time.monotonic() + drain_seconds
        for arn in self.deployment.state_machine_arns().values():
            with contextlib.suppress(Exception):  # a machine that was never created
                pages = sfn.get_paginator("list_executions").paginate(
                    stateMachineArn=arn, statusFilter="RUNNING"
                )
                for page in pages:
                    for execution in page["executions"]:
                        with contextlib.suppress(Exception):
                            sfn.stop_execution(
                                executionArn=execution["executionArn"],
                                error="RuntimeStopped",
                                cause="the local runtime stopped",
                            )
        self.bridge.drain(max(0.0, deadline - time.monotonic()))
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()
        uninstall_converse()
        self.bridge.uninstall()

    # -- the REST API -----
    def rest_api(self) -> LocalRestApi | None:
        """The app's REST API, answering as API Gateway does (``None``: the app has none).

        Requests are authenticated with SigV4 against the credentials moto's IAM and STS
        issued; integrations invoke the functions through moto (so through the bridge).
        """
        from flywheel.local.iam_auth import MotoCredentials, SigV4Verifier
        from flywheel.local.rest_api import LocalRestApi, RestApiDefinition, lambda_invoker

        definition = RestApiDefinition.from_deployment(self.deployment)
        if definition is None:
            return None
        return LocalRestApi(
            definition,
            invoke=lambda_invoker(_client("lambda")),
            verifier=SigV4Verifier(MotoCredentials(), region=self.deployment.region),
            account=self.deployment.account,
            region=self.deployment.region,
        )

    def publish_api_url(self, url: str) -> list[str]:
        """Write ``url`` as ``api_url`` into the stage's platform record(s), as a deployed
        stage's record names its API; returns the parameters updated."""
        assert self.provisioned is not None
        ssm = _client("ssm")
        updated = []
        for name in self.provisioned.parameters:
            parameter = ssm.get_parameter(Name=name)["Parameter"]
            try:
                record = json.loads(parameter["Value"])
            except ValueError:
                continue
            if isinstance(record, dict) and "api_url" in record:
                record["api_url"] = url
                ssm.put_parameter(
                    Name=name, Value=json.dumps(record, separators=(",", ":")),
                    Type=parameter["Type"], Overwrite=True,
                )  # fmt: skip
                updated.append(name)
        return updated

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- EventBridge -----
    def hold_waits(self, hold: bool) -> None:
        """Hold every ``Wait`` state that starts from now on (``True``) until released
        (``False``): a canary's bake then lasts until the caller has sent its traffic.

        Simulated time makes a 30-minute bake take no time; holding it is how a local
        run puts real requests on a canary before it is judged. A held wait lets go by
        itself after ``HELD_WAIT_LIMIT_SECONDS`` of real time, so a forgotten hold can
        never hang a workflow.
        """
        if hold:
            self._waits_released.clear()
        else:
            self._waits_released.set()

    def waits_pass(self, seconds: float) -> None:
        """What a ``Wait`` state does here: wait for a release if held, then advance the
        simulated clock by ``seconds``."""
        self._waits_released.wait(HELD_WAIT_LIMIT_SECONDS)
        self.clock.sleep(seconds)

    def deliver(self, rule: Any, event: dict[str, Any]) -> None:
        """Send a matched event to the rule's Step Functions and Lambda targets; record
        what its SNS targets would publish."""
        from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

        if self._stopping:
            return

        if isinstance(event.get("time"), int | float):
            # moto keeps a Unix timestamp; EventBridge delivers ISO 8601 (second precision).
            stamp = datetime.fromtimestamp(float(event["time"]), tz=UTC)
            event = {**event, "time": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
        for target in rule.targets:
            arn: str = target["Arn"]
            service = _service(arn)
            if service not in BRIDGED_TARGETS:
                continue
            if service == "sns":
                self._record_notification(target, event)
                continue
            if "Input" in target:
                payload = json.loads(target["Input"])
            elif "InputTransformer" in target:
                transformer = target["InputTransformer"]
                payload = transform_input(
                    transformer.get("InputTemplate"), transformer.get("InputPathsMap", {}), event
                )
            else:
                payload = event
            region = arn.split(":")[3]
            if service == "states":
                sfn: Any = boto_client_for(region=region, service="stepfunctions")
                sfn.start_execution(
                    stateMachineArn=arn,
                    name=f"{rule.name[:40]}-{uuid.uuid4().hex[:12]}",
                    input=json.dumps(payload),
                )
            else:
                lam: Any = boto_client_for(region=region, service="lambda")
                lam.invoke(
                    FunctionName=arn, InvocationType="Event", Payload=json.dumps(payload).encode()
                )

    def _record_notification(self, target: dict[str, Any], event: dict[str, Any]) -> None:
        if "Input" in target:
            message = str(target["Input"])
        elif "InputTransformer" in target:
            transformer = target["InputTransformer"]
            message = render_template(
                transformer["InputTemplate"], transformer.get("InputPathsMap", {}), event
            )
        else:
            message = json.dumps(event)
        with self._lock:
            self._notifications.append(
                {
                    "topic": str(target["Arn"]).rsplit(":", 1)[-1],
                    "detail_type": event.get("detail-type"),
                    "message": message,
                    "time": isoformat(self.clock.now()),
                }
            )

    def notifications(self) -> list[dict[str, Any]]:
        """What the rules published to SNS topics, oldest first: ``topic`` (name),
        ``detail_type``, ``message`` (as the topic received it) and ``time`` (runtime clock)."""
        with self._lock:
            return [dict(n) for n in self._notifications]

    def put_event(self, detail_type: str, source: str, detail: dict[str, Any]) -> str:
        """Put one event on the project bus (what monitors and operators do)."""
        bus = self.deployment.resource_environment()["FLYWHEEL_EVENT_BUS"]
        response = boto3.client("events", region_name="us-east-1").put_events(
            Entries=[
                {
                    "EventBusName": bus,
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                }
            ]
        )
        return str(response["Entries"][0].get("EventId", ""))

    # -- schedules -----
    def advance(self, seconds: float) -> list[str]:
        """Move the simulated clock forward, firing each schedule at the time it comes due.

        Schedules fire in time order with the clock set to their due time, so a handler
        run by the second of two hourly firings sees a time one hour after the first.
        """
        from datetime import timedelta

        from moto.events.models import events_backends

        assert self.provisioned is not None
        target = self.clock.now() + timedelta(seconds=seconds)
        backend = events_backends[self.deployment.account][self.deployment.region]
        by_name = {s.name: s for s in self.provisioned.schedules}
        fired: list[str] = []
        while True:
            due_name = min(self._next_fires, key=self._next_fires.__getitem__, default=None)
            if due_name is None or self._next_fires[due_name] > target:
                break
            due = self._next_fires[due_name]
            schedule = by_name[due_name]
            self.clock.set(max(due, self.clock.now()))
            rule = backend.event_buses[schedule.bus].rules[schedule.name]
            if rule.state == "ENABLED":
                self.deliver(rule, _scheduled_event(schedule, due, self.deployment))
                fired.append(schedule.name)
            self._next_fires[due_name] = next_fire(schedule.expression, due)
        self.clock.set(max(target, self.clock.now()))
        return fired

    # -- executions -----
    def state_machine_arn(self, key: str) -> str:
        for name, arn in self.deployment.state_machine_arns().items():
            if name.endswith(f"-{key}"):
                return arn
        raise KeyError(key)

    def start_execution(self, key: str, payload: dict[str, Any]) -> str:
        client = boto3.client("stepfunctions", region_name="us-east-1")
        return str(
            client.start_execution(
                stateMachineArn=self.state_machine_arn(key),
                name=f"{key}-{uuid.uuid4().hex[:16]}",
                input=json.dumps(payload),
            )["executionArn"]
        )

    def executions(self, key: str) -> list[dict[str, Any]]:
        client = boto3.client("stepfunctions", region_name="us-east-1")
        executions: list[dict[str, Any]] = [
            dict(e)
            for e in client.list_executions(stateMachineArn=self.state_machine_arn(key))[
                "executions"
            ]
        ]
        return executions

    def wait(
        self, execution_arn: str, *, until_state: str | None = None, timeout: float = 120.0
    ) -> ExecutionReport:
        """Block until the execution ends (or enters ``until_state``); report what it did."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.report(execution_arn)
            if report.status != "RUNNING":
                return report
            if until_state and until_state in report.states:
                return report
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{execution_arn} still running after {timeout}s; states {report.states}"
                )
            time.sleep(0.02)

    def report(self, execution_arn: str) -> ExecutionReport:
        client = boto3.client("stepfunctions", region_name="us-east-1")
        described = client.describe_execution(executionArn=execution_arn)
        history = client.get_execution_history(executionArn=execution_arn, maxResults=1000)
        states: list[str] = []
        retries: dict[str, int] = {}
        current = None
        for event in history["events"]:
            if event["type"].endswith("StateEntered"):
                current = event["stateEnteredEventDetails"]["name"]
                states.append(current)
            scheduled = event["type"] in {"LambdaFunctionScheduled", "TaskScheduled"}
            if scheduled and current is not None:
                retries[current] = retries.get(current, -1) + 1
        output = described.get("output")
        return ExecutionReport(
            arn=execution_arn,
            status=described["status"],
            states=states,
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            retries={k: v for k, v in retries.items() if v > 0},
        )


def _scheduled_event(
    schedule: ScheduledRule, due: datetime, deployment: LocalDeployment
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": deployment.account,
        "time": isoformat(due).replace(".000000", "")[:19] + "Z",
        "region": deployment.region,
        "resources": [
            f"arn:aws:events:{deployment.region}:{deployment.account}:rule/{schedule.name}"
        ],
        "detail": {},
        "ingestion-time": due.timestamp(),
    }


def transform_input(template: str | None, paths: dict[str, str], event: dict[str, Any]) -> Any:
    """EventBridge's input transformer, as AWS applies it to a JSON template.

    A placeholder outside quotes takes the value as JSON (strings get their quotes,
    objects stay objects); inside a quoted string it takes the raw text. (moto's own
    parser inserts strings without quotes, which yields invalid JSON.)

    Examples
    --------
    >>> transform_input('{"m": <m>, "d": <d>, "s": "model <m>"}',
    ...                 {"m": "$.detail.m", "d": "$.detail"}, {"detail": {"m": "x"}})
    {'m': 'x', 'd': {'m': 'x'}, 's': 'model x'}
    """
    if template is None:
        return event
    values = _path_values(paths, event)
    for name in paths:
        values.setdefault(name, None)  # a path the event lacks renders as null
    return json.loads(_substitute(template, values, escape_in_strings=True))


def render_template(template: str, paths: dict[str, str], event: dict[str, Any]) -> str:
    r"""What a target receives from an input transformer, as EventBridge renders it.

    ``<name>`` takes the value at ``paths[name]``: inside a quoted string its raw text
    (EventBridge does not escape it), elsewhere its JSON. A path the event lacks leaves
    its placeholder as written. The template is not parsed: text templates (one JSON
    string per line) come back as the text they render to.

    Examples
    --------
    >>> render_template('"model <m> v<v>"\n<cli>', {"m": "$.detail.m", "v": "$.detail.v",
    ...     "cli": "$.detail.cli"}, {"detail": {"m": "churn", "v": 3, "cli": 'say "hi"'}})
    '"model churn v3"\n"say \\"hi\\""'
    """
    return _substitute(template, _path_values(paths, event), escape_in_strings=False)


def _path_values(paths: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    """Each input path's value in ``event`` (paths the event lacks are left out)."""
    from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

    values: dict[str, Any] = {}
    for name, path in paths.items():
        matches = parse(path).find(event)
        if matches:
            values[name] = matches[0].value
    return values


def _substitute(template: str, values: dict[str, Any], *, escape_in_strings: bool) -> str:
    """``template`` with each ``<name>`` of ``values`` replaced: as JSON outside quoted
    strings; inside them as the value's text, JSON-escaped when ``escape_in_strings``
    (what keeps a JSON template valid) or raw (as EventBridge renders text templates)."""
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(template):
        char = template[i]
        if char == "\\" and in_string:
            out.append(template[i : i + 2])
            i += 2
            continue
        if char == '"':
            in_string = not in_string
        elif char == "<":
            close = template.find(">", i)
            name = template[i + 1 : close] if close > i else ""
            if name in values:
                value = values[name]
                if in_string:
                    text = value if isinstance(value, str) else json.dumps(value)
                    out.append(json.dumps(text)[1:-1] if escape_in_strings else text)
                else:
                    out.append(json.dumps(value))
                i = close + 1
                continue
        out.append(char)
        i += 1
    return "".join(out)


def readable(message: str) -> str:
    r"""A notification as people read it: each line that is a JSON string, unquoted.

    Examples
    --------
    >>> print(readable('"Model churn waits"\n"run: flywheel approve \\"churn\\""'))
    Model churn waits
    run: flywheel approve "churn"
    """
    lines = []
    for line in message.splitlines():
        try:
            decoded = json.loads(line)
        except ValueError:
            decoded = None
        lines.append(decoded if isinstance(decoded, str) else line)
    return "\n".join(lines)


def _client(name: str) -> Any:
    return boto3.client(name, region_name="us-east-1")  # type: ignore[call-overload]


def _service(arn: str) -> str:
    return arn.split(":")[2] if arn.count(":") >= 2 else ""


def _check_moto_version() -> None:
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"the local runtime patches moto {MOTO_VERSION} internals; found {moto.__version__}. "
            "Install the pinned version (pip install -c constraints.txt -e '.[local]')."
        )


__all__ = ["MOTO_CONFIG", "ExecutionReport", "LocalRuntime", "readable", "render_template"]


#: How often a waiting ``waitForTaskToken`` task with a heartbeat looks at its outcome.
_TOKEN_POLL_SECONDS = 0.2


def _wait_for_task_token_heartbeat(
    state: Any,  # noqa: ARG001
    env: Any,
    callback_endpoint: Any,
    heartbeat_endpoint: Any,
) -> Any:
    """moto's heartbeat wait of a ``waitForTaskToken`` task, without its lost wake-up.

    moto sets the heartbeat up only after the task's Lambda has returned, then waits for
    a heartbeat before it reads the outcome; a ``SendTaskSuccess`` that arrived while the
    Lambda still ran (an approval decided at once) set the outcome but woke nobody, so the
    execution waited for the whole heartbeat. This reads the outcome first and between
    short waits; a heartbeat that does not come in time still times the task out.
    """
    from moto.stepfunctions.parser.asl.eval.callback.callback import HeartbeatTimedOut

    deadline = time.monotonic() + heartbeat_endpoint._heartbeat_seconds
    event = heartbeat_endpoint._next_heartbeat_event
    while env.is_running():
        outcome = callback_endpoint.get_outcome()
        if outcome is not None:
            return outcome
        if event.wait(timeout=_TOKEN_POLL_SECONDS):
            event.clear()  # a heartbeat (or the outcome's wake-up): the clock starts again
            deadline = time.monotonic() + heartbeat_endpoint._heartbeat_seconds
        elif time.monotonic() >= deadline:
            return HeartbeatTimedOut()
    return None
