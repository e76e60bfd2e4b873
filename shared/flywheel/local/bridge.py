"""Run Lambda handlers in-process when moto invokes a function.

moto without Docker runs no Lambda code (its "simple" backend echoes the payload).
:class:`LambdaBridge` patches moto's Lambda ``invoke`` so that a function
registered with the bridge runs its real handler in this process, with the
function's environment variables, and returns or fails exactly as Lambda does:
a handler exception becomes ``FunctionError: Unhandled`` with an
``{"errorType", "errorMessage"}`` payload, which Step Functions maps to the error
name ``errorType`` (what ``Retry``/``Catch`` match on).

Faults can be injected per function (``Lambda.TooManyRequestsException`` or any
handler error) to test retries and failure paths.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

Handler = Callable[[Any, Any], Any]

THROTTLE = "Lambda.TooManyRequestsException"
#: Held while :func:`scoped_environment` adds or removes variables.  Code that iterates
#: ``os.environ`` on another thread (botocore does, creating a client) takes it too:
#: iterating while a key disappears raises ``KeyError``.
ENVIRONMENT_LOCK = threading.RLock()


class InjectedFaultError(Exception):
    """Raised inside a handler by a fault the test or demo injected."""


@dataclass(frozen=True)
class LocalFunction:
    """What the bridge needs to run a function: its handler string and environment."""

    name: str
    handler: str
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 60
    memory_mb: int = 128


@dataclass
class Invocation:
    function: str
    qualifier: str | None
    error: str | None
    request_id: str
    message: str | None = None


class LambdaContext:
    """The parts of Lambda's context object handlers and Powertools read."""

    def __init__(self, function: LocalFunction, qualifier: str | None) -> None:
        self.function_name = function.name
        self.function_version = qualifier or "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function.name}"
            + (f":{qualifier}" if qualifier else "")
        )
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = "local"
        self._timeout_ms = function.timeout_seconds * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self._timeout_ms


class LambdaBridge:
    """Registry of in-process functions plus the moto patch that dispatches to them.

    Examples
    --------
    >>> from pathlib import Path
    >>> bridge = LambdaBridge(functions_dir=Path("functions"))
    >>> bridge.register(LocalFunction(name="f", handler="pkg.mod.handler"))
    >>> sorted(bridge.functions)
    ['f']
    """

    def __init__(
        self,
        *,
        functions_dir: Path,
        extra_env: Mapping[str, str] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.functions_dir = functions_dir
        self.now = now
        self.random = random.Random()
        self.functions: dict[str, LocalFunction] = {}
        self.extra_env = dict(extra_env or {})
        self.invocations: list[Invocation] = []
        self._faults: dict[str, list[str | BaseException]] = {}
        self._lock = threading.RLock()
        self._originals: list[tuple[type, str, Any]] = []

    # -- configuration -----
    def register(self, function: LocalFunction) -> None:
        self.functions[function.name] = function

    def inject(self, function_name: str, *faults: str | BaseException) -> None:
        """Make the next invocations of ``function_name`` fail, one fault per call.

        A string fault ``THROTTLE`` is a Lambda service throttle (HTTP 429); any other
        string raises :class:`InjectedFaultError` with that message inside the handler.
        """
        with self._lock:
            self._faults.setdefault(function_name, []).extend(faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- moto patch -----
    def install(self) -> None:
        """Patch moto's Lambda backends (Docker and simple) to call registered handlers."""
        from moto.awslambda.models import LambdaBackend
        from moto.awslambda_simple.models import LambdaSimpleBackend

        if str(self.functions_dir) not in sys.path:
            sys.path.insert(0, str(self.functions_dir))
        bridge = self
        for cls in (LambdaBackend, LambdaSimpleBackend):
            original = cls.__dict__.get("invoke")
            if original is None:
                continue
            self._originals.append((cls, "invoke", original))

            def invoke(
                backend: Any,
                function_name: str,
                qualifier: str | None,
                body: Any,
                headers: Any,
                response_headers: Any,
                _original: Any = original,
            ) -> Any:
                parts = function_name.rsplit(":function:", maxsplit=1)[-1].split(":")
                name = parts[0]
                if name not in bridge.functions:
                    return _original(
                        backend, function_name, qualifier, body, headers, response_headers
                    )
                qualifier = qualifier or (parts[1] if len(parts) > 1 else None)
                qualifier = bridge.route(backend, name, qualifier)
                fn = backend.get_function(name, qualifier)
                return bridge.dispatch(name, fn, qualifier, body, response_headers)

            setattr(cls, "invoke", invoke)  # noqa: B010

    def uninstall(self) -> None:
        for cls, name, original in reversed(self._originals):
            setattr(cls, name, original)
        self._originals.clear()

    # -- invocation -----
    def dispatch(
        self, name: str, moto_fn: Any, qualifier: str | None, body: Any, response_headers: Any
    ) -> bytes:
        function = self.functions[name]
        environment = dict(function.environment)
        # A published version snapshots its own configuration (e.g. FLYWHEEL_MODEL_VERSION).
        environment.update(getattr(moto_fn, "environment_vars", None) or {})
        resolved_qualifier = qualifier or getattr(moto_fn, "version", None)
        if self.now is not None:
            # Handlers read time through flywheel.clock.EnvironmentClock.
            environment["FLYWHEEL_NOW"] = self.now().isoformat()
        event = json.loads(body) if body else {}
        with self._lock:
            fault = self._next_fault(name)
            request_id = str(uuid.uuid4())
            if fault == THROTTLE:
                self.invocations.append(Invocation(name, resolved_qualifier, THROTTLE, request_id))
                raise _throttle_error()
            try:
                with scoped_environment({**self.extra_env, **environment}):
                    if fault is not None:
                        raise (
                            fault if isinstance(fault, BaseException) else InjectedFaultError(fault)
                        )
                    handler = self._load(function.handler)
                    result = handler(event, LambdaContext(function, str(resolved_qualifier)))
                payload = json.dumps(result, default=str)
                self.invocations.append(Invocation(name, resolved_qualifier, None, request_id))
            except Exception as exc:
                response_headers["x-amz-function-error"] = "Unhandled"
                error_type = type(exc).__name__
                self.invocations.append(
                    Invocation(name, resolved_qualifier, error_type, request_id, str(exc)[:2000])
                )
                payload = json.dumps(
                    {
                        "errorType": error_type,
                        "errorMessage": str(exc),
                        "requestId": request_id,
                        "stackTrace": traceback.format_exception(exc)[-3:],
                    }
                )
        response_headers["Content-Length"] = str(len(payload))
        return payload.encode()

    def route(self, backend: Any, name: str, qualifier: str | None) -> str | None:
        """Resolve an alias with a routing config to one version, by weight, as Lambda does."""
        if qualifier is None or qualifier.isdigit() or qualifier == "$LATEST":
            return qualifier
        for alias in backend.list_aliases(name):
            if alias.name != qualifier:
                continue
            weights = (alias.routing_config or {}).get("AdditionalVersionWeights") or {}
            draw = self.random.random()
            for version, weight in weights.items():
                if draw < float(weight):
                    return str(version)
                draw -= float(weight)
            return str(alias.function_version)
        return qualifier

    def _next_fault(self, name: str) -> str | BaseException | None:
        queue = self._faults.get(name)
        return queue.pop(0) if queue else None

    @staticmethod
    def _load(handler: str) -> Handler:
        module_name, _, attribute = handler.rpartition(".")
        module = importlib.import_module(module_name)
        fn: Handler = getattr(module, attribute)
        return fn


def _throttle_error() -> Exception:
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError("TooManyRequestsException", "Rate exceeded (injected)")
    error.code = 429
    return error


@contextmanager
def scoped_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of one invocation, then restore them.

    Examples
    --------
    >>> with scoped_environment({"FLYWHEEL_X": "1"}):
    ...     os.environ["FLYWHEEL_X"]
    '1'
    >>> "FLYWHEEL_X" in os.environ
    False
    """
    with ENVIRONMENT_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        with ENVIRONMENT_LOCK:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
