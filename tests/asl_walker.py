"""Walk the synthesized state machine definitions with handlers called in-process.

A test helper, not the local runtime: it interprets exactly the subset of Amazon States
Language that ``infra/workflows`` emits (Pass with ``$$`` context, Lambda tasks with
``Payload.$: $`` and ``ResultSelector``, ``.waitForTaskToken`` callbacks, Choice on a
boolean, Wait, Succeed, Fail, Retry and Catch), so the handlers are tested against the
very state shapes the definitions produce. Wait states take no time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]


class FakeContext:
    """What Powertools reads from a Lambda context."""

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def get_path(document: Any, path: str) -> Any:
    """``$``, ``$.a.b`` (the only JSONPath forms the definitions use)."""
    if path == "$":
        return document
    value = document
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def set_path(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    if path == "$":
        return value  # type: ignore[no-any-return]
    result = json.loads(json.dumps(document))
    target = result
    parts = path.removeprefix("$.").split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return result


@dataclass
class Execution:
    definition: dict[str, Any]
    handlers: Mapping[str, Handler]
    name: str
    state_machine: str
    state: dict[str, Any]
    visited: list[str] = field(default_factory=list)
    status: str = "RUNNING"
    error: str | None = None
    current: str | None = None
    task_token: str | None = None
    invocations: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def execution_id(self) -> str:
        return f"arn:aws:states:us-east-1:123456789012:execution:{self.state_machine}:{self.name}"

    # -- driving -------------------------------------------------------------------------------
    def run(self) -> Execution:
        """Advance until the execution ends or waits for a task token."""
        if self.current is None:
            self.current = self.definition["StartAt"]
        while self.status == "RUNNING":
            name = self.current
            spec = self.definition["States"][name]
            self.visited.append(name)
            kind = spec["Type"]
            if kind == "Pass":
                self._pass(spec)
            elif kind == "Task":
                if spec["Resource"].endswith(".waitForTaskToken"):
                    self._start_callback(spec)
                    if self.status == "WAITING":
                        return self
                else:
                    self._task(spec)
            elif kind == "Choice":
                self.current = self._choose(spec)
            elif kind == "Wait":
                self.current = spec["Next"]
            elif kind == "Succeed":
                self.status = "SUCCEEDED"
            elif kind == "Fail":
                self.status = "FAILED"
                self.error = spec["Error"]
            else:  # pragma: no cover - the definitions use nothing else
                raise AssertionError(f"unsupported state type {kind}")
        return self

    def send_task_success(self, token: str, output: dict[str, Any]) -> Execution:
        assert self.status == "WAITING", "the execution is not waiting for a task token"
        assert token == self.task_token, "unknown task token"
        spec = self.definition["States"][self.current]
        self.state = set_path(self.state, spec["ResultPath"], output)
        return self._resume(spec)

    def send_task_failure(self, token: str, error: str, cause: str) -> Execution:
        assert self.status == "WAITING", "the execution is not waiting for a task token"
        assert token == self.task_token, "unknown task token"
        spec = self.definition["States"][self.current]
        self._catch(spec, error, cause)
        self.status = "RUNNING"
        self.task_token = None
        return self.run()

    def time_out(self) -> Execution:
        """The waiting task hits its ``TimeoutSeconds``."""
        return self.send_task_failure(self.task_token or "", "States.Timeout", "the task timed out")

    # -- states --------------------------------------------------------------------------------
    def _resume(self, spec: dict[str, Any]) -> Execution:
        self.status = "RUNNING"
        self.task_token = None
        self.current = spec["Next"]
        return self.run()

    def _context(self) -> dict[str, Any]:
        return {
            "Execution": {
                "Id": self.execution_id,
                "Name": self.name,
                "StartTime": "2026-01-01T00:00:00.000Z",
            },
            "StateMachine": {"Name": self.state_machine},
            "Task": {"Token": self.task_token},
        }

    def _resolve(self, parameters: dict[str, Any]) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for key, value in parameters.items():
            if key.endswith(".$"):
                path = str(value)
                source = self._context() if path.startswith("$$.") else self.state
                resolved[key[:-2]] = get_path(source, path.replace("$$.", "$.", 1))
            elif isinstance(value, dict):
                resolved[key] = self._resolve(value)
            else:
                resolved[key] = value
        return resolved

    def _pass(self, spec: dict[str, Any]) -> None:
        value = self._resolve(spec["Parameters"])
        self.state = set_path(self.state, spec["ResultPath"], value)
        self.current = spec["Next"]

    def _invoke(self, function: str, payload: dict[str, Any]) -> Any:
        handler = self.handlers[function]
        self.invocations.append((self.current or "", function))
        return json.loads(
            json.dumps(handler(json.loads(json.dumps(payload)), FakeContext(function)))
        )

    def _task(self, spec: dict[str, Any]) -> None:
        parameters = self._resolve(spec["Parameters"])
        attempts: dict[int, int] = {}
        while True:
            try:
                result = self._invoke(parameters["FunctionName"], parameters["Payload"])
            except Exception as exc:  # every handler error becomes a task error
                error = type(exc).__name__
                retry = self._retrier(spec, error)
                if retry is not None:
                    index, rule = retry
                    attempts[index] = attempts.get(index, 0) + 1
                    if attempts[index] <= rule["MaxAttempts"]:
                        continue
                cause = json.dumps({"errorMessage": str(exc), "errorType": error})
                self._catch(spec, error, cause)
                return
            break
        selected = {"Payload": result} if "ResultSelector" in spec else result
        self.state = set_path(self.state, spec["ResultPath"], selected)
        self.current = spec.get("Next")
        if spec.get("End"):
            self.status = "SUCCEEDED"

    @staticmethod
    def _retrier(spec: dict[str, Any], error: str) -> tuple[int, dict[str, Any]] | None:
        for index, rule in enumerate(spec.get("Retry", [])):
            if error in rule["ErrorEquals"] or "States.ALL" in rule["ErrorEquals"]:
                return index, rule
        return None

    def _start_callback(self, spec: dict[str, Any]) -> None:
        self.task_token = f"token-{uuid.uuid4().hex}"
        parameters = self._resolve(spec["Parameters"])
        try:
            self._invoke(parameters["FunctionName"], parameters["Payload"])
        except Exception as exc:  # the invoke itself failed: no wait
            error = type(exc).__name__
            self._catch(spec, error, json.dumps({"errorMessage": str(exc), "errorType": error}))
            self.task_token = None
            return
        self.status = "WAITING"

    def _catch(self, spec: dict[str, Any], error: str, cause: str) -> None:
        for catcher in spec.get("Catch", []):
            if error in catcher["ErrorEquals"] or "States.ALL" in catcher["ErrorEquals"]:
                self.state = set_path(
                    self.state, catcher["ResultPath"], {"Error": error, "Cause": cause}
                )
                self.current = catcher["Next"]
                return
        self.status = "FAILED"
        self.error = error

    def _choose(self, spec: dict[str, Any]) -> str:
        for choice in spec["Choices"]:
            try:
                value = get_path(self.state, choice["Variable"])
            except (KeyError, TypeError):
                continue
            if value is choice["BooleanEquals"]:
                return str(choice["Next"])
        return str(spec["Default"])


def start(
    definition: dict[str, Any],
    handlers: Mapping[str, Handler],
    execution_input: dict[str, Any],
    *,
    state_machine: str,
    name: str | None = None,
) -> Execution:
    """Start an execution and run it until it ends or waits for a task token."""
    return Execution(
        definition=definition,
        handlers=handlers,
        name=name or uuid.uuid4().hex,
        state_machine=state_machine,
        state=json.loads(json.dumps(execution_input)),
    ).run()
