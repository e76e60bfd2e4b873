"""In-memory workflow adapters with the AWS adapters' semantics (unit tests, notebooks)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flywheel.errors import ServingControlError, TaskTokenError
from flywheel.workflows.ports import AlarmState, AliasRouting, PublishedVersion

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass
class _Function:
    name: str
    environment: dict[str, str]
    #: Published versions: number -> pinned model version (``None`` for the bootstrap one).
    versions: dict[str, int | None] = field(default_factory=dict)
    alias: AliasRouting = field(default_factory=lambda: AliasRouting(primary="1"))


class InMemoryServingControl:
    """Inference functions as dicts: version ``1`` is the bootstrap version alias live starts on.

    ``fail_next`` makes the next call of an operation (``publish``, ``routing``,
    ``route``) raise :class:`~flywheel.errors.ServingControlError` (failure injection).

    Examples
    --------
    >>> serving = InMemoryServingControl({"churn": "churn-fn"})
    >>> published = serving.publish("churn", 3)
    >>> serving.route("churn", AliasRouting(primary="1", weights={published.lambda_version: 0.1}))
    >>> serving.routing("churn").weights
    {'2': 0.1}
    """

    def __init__(self, functions: Mapping[str, str]) -> None:
        self._lock = threading.RLock()
        self.functions = {
            model: _Function(name=fn, environment={}, versions={"1": None})
            for model, fn in functions.items()
        }
        self.fail_next: set[str] = set()
        self.calls: list[str] = []

    def _function(self, model: str, operation: str) -> _Function:
        self.calls.append(operation)
        if operation in self.fail_next:
            self.fail_next.discard(operation)
            raise ServingControlError(f"{operation} failed (injected)", field="alias")
        try:
            return self.functions[model]
        except KeyError:
            raise ServingControlError(
                f"model {model!r} has no inference function", field="model_name"
            ) from None

    def publish(self, model: str, model_version: int) -> PublishedVersion:
        with self._lock:
            fn = self._function(model, "publish")
            for number, pinned in fn.versions.items():
                if pinned == model_version:
                    return PublishedVersion(
                        function_name=fn.name, lambda_version=number, model_version=model_version
                    )
            number = str(max(int(n) for n in fn.versions) + 1)
            fn.versions[number] = model_version
            return PublishedVersion(
                function_name=fn.name, lambda_version=number, model_version=model_version
            )

    def routing(self, model: str) -> AliasRouting:
        with self._lock:
            return self._function(model, "routing").alias

    def route(self, model: str, routing: AliasRouting) -> None:
        with self._lock:
            fn = self._function(model, "route")
            unknown = [v for v in (routing.primary, *routing.weights) if v not in fn.versions]
            if unknown:
                raise ServingControlError(f"no Lambda versions {unknown}", field="alias")
            fn.alias = routing

    def model_version_served(self, model: str, lambda_version: str) -> int | None:
        """Which model version a Lambda version is pinned to (tests)."""
        return self.functions[model].versions.get(lambda_version)


class InMemoryCanaryHealth:
    """Alarm states set by the test.

    Examples
    --------
    >>> health = InMemoryCanaryHealth({"churn": ["errors", "latency"]})
    >>> health.set("churn", "errors", AlarmState.ALARM)
    >>> health.alarm_states("churn")["errors"]
    <AlarmState.ALARM: 'ALARM'>
    """

    def __init__(self, alarms: Mapping[str, list[str]]) -> None:
        self._states: dict[str, dict[str, AlarmState]] = {
            model: dict.fromkeys(names, AlarmState.OK) for model, names in alarms.items()
        }
        self.fail = False

    def set(self, model: str, alarm: str, state: AlarmState) -> None:
        self._states.setdefault(model, {})[alarm] = state

    def alarm_states(self, model: str) -> dict[str, AlarmState]:
        if self.fail:
            raise ServingControlError("alarm states could not be read (injected)")
        return dict(self._states.get(model, {}))


class InMemoryEventPublisher:
    """Keeps published events in a list.

    Examples
    --------
    >>> events = InMemoryEventPublisher()
    >>> _ = events.publish("VersionApproved", {"model_name": "churn", "version": 3})
    >>> events.events[0][0]
    'VersionApproved'
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str:
        self.events.append((detail_type, detail))
        return uuid.uuid4().hex


class InMemoryTaskTokens:
    """Records ``SendTaskSuccess``/``SendTaskFailure``; a token answers only once, like AWS.

    Examples
    --------
    >>> tokens = InMemoryTaskTokens()
    >>> tokens.succeed("t1", {"ok": True})
    >>> tokens.fail("t1", error="E", cause="c")
    Traceback (most recent call last):
    ...
    flywheel.errors.TaskTokenError: task token already used or timed out
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.dead: set[str] = set()

    def _use(self, token: str) -> None:
        if token in self.dead:
            raise TaskTokenError("task token already used or timed out", field="task_token")
        self.dead.add(token)

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self._use(token)
        self.sent.append(("success", token, output))

    def fail(self, token: str, *, error: str, cause: str) -> None:
        self._use(token)
        self.sent.append(("failure", token, {"error": error, "cause": cause}))
