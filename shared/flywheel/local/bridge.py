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
import importlib.util
import json
import os
import random
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import types
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
    """The parts of Lambda's context object handlers and Powertools read.

    ``invoked_as`` is the qualifier the caller named (an alias, say); the invoked ARN
    carries it, as Lambda's does, while ``function_version`` is the version that ran.
    """

    def __init__(
        self, function: LocalFunction, qualifier: str | None, invoked_as: str | None = None
    ) -> None:
        self.function_name = function.name
        self.function_version = qualifier or "$LATEST"
        named = invoked_as or qualifier
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function.name}"
            + (f":{named}" if named else "")
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
        self._function_locks: dict[str, threading.Lock] = {}
        self._active = 0
        self._idle = threading.Condition()
        self._originals: list[tuple[type, str, Any]] = []
        self._environ: ThreadEnvironment | None = None
        self._modules: dict[str, types.ModuleType] = {}

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

    def recycle(self, function_name: str) -> bool:
        """Give ``function_name`` a new execution environment on its next invocation (what
        Lambda does to an idle one): its handler module is loaded again, so nothing it
        cached (clients, routing, settings) survives. Whether it had one."""
        with self._lock:
            module = self._modules.pop(function_name, None)
        if module is not None:
            sys.modules.pop(module.__name__, None)
        return module is not None

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
                named = qualifier or (parts[1] if len(parts) > 1 else None)
                qualifier = bridge.route(backend, name, named)
                fn = backend.get_function(name, qualifier)
                return bridge.dispatch(
                    name, fn, qualifier, body, response_headers, invoked_as=named
                )

            setattr(cls, "invoke", invoke)  # noqa: B010
        self._environ = install_thread_environment()

    def uninstall(self) -> None:
        for cls, name, original in reversed(self._originals):
            setattr(cls, name, original)
        self._originals.clear()
        if self._environ is not None:
            uninstall_thread_environment(self._environ)
            self._environ = None

    # -- invocation -----
    def dispatch(
        self,
        name: str,
        moto_fn: Any,
        qualifier: str | None,
        body: Any,
        response_headers: Any,
        *,
        invoked_as: str | None = None,
    ) -> bytes:
        """Run ``name``'s handler: one invocation of a function at a time, as one execution
        environment does; other functions run alongside (a handler may invoke another),
        each with its own environment variables (:func:`scoped_environment`)."""
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
            environment_lock = self._function_locks.setdefault(name, threading.Lock())
        with self._idle:
            self._active += 1
        try:
            return self._run(name, function, environment, event, resolved_qualifier, invoked_as,
                             response_headers, environment_lock)  # fmt: skip
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no invocation is running (at most ``timeout`` seconds)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout=timeout)

    def _run(
        self,
        name: str,
        function: LocalFunction,
        environment: dict[str, str],
        event: Any,
        resolved_qualifier: str | None,
        invoked_as: str | None,
        response_headers: Any,
        environment_lock: threading.Lock,
    ) -> bytes:
        with environment_lock:
            with self._lock:
                fault = self._next_fault(name)
            request_id = str(uuid.uuid4())
            if fault == THROTTLE:
                self._record(Invocation(name, resolved_qualifier, THROTTLE, request_id))
                raise _throttle_error()
            try:
                with scoped_environment({**self.extra_env, **environment}):
                    if fault is not None:
                        raise (
                            fault if isinstance(fault, BaseException) else InjectedFaultError(fault)
                        )
                    handler = self._load(function)
                    context = LambdaContext(function, str(resolved_qualifier), invoked_as)
                    result = handler(event, context)
                payload = json.dumps(result, default=str)
                self._record(Invocation(name, resolved_qualifier, None, request_id))
            except Exception as exc:
                response_headers["x-amz-function-error"] = "Unhandled"
                error_type = type(exc).__name__
                self._record(
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

    def _record(self, invocation: Invocation) -> None:
        with self._lock:
            self.invocations.append(invocation)

    def _next_fault(self, name: str) -> str | BaseException | None:
        queue = self._faults.get(name)
        return queue.pop(0) if queue else None

    def _load(self, function: LocalFunction) -> Handler:
        """``function``'s handler, from its own instance of the handler module, executed in
        its environment: what a module caches (settings, clients, Powertools' ``service``)
        belongs to one function, as in Lambda, even where functions share a module."""
        module_name, _, attribute = function.handler.rpartition(".")
        with self._lock:
            module = self._modules.get(function.name)
        if module is None:
            module = _module_instance(module_name, f"{module_name}[{function.name}]")
            with self._lock:
                module = self._modules.setdefault(function.name, module)
        fn: Handler = getattr(module, attribute)
        return fn


def _module_instance(module_name: str, instance_name: str) -> types.ModuleType:
    """A new instance of ``module_name``, registered (and named) as ``instance_name``."""
    found = importlib.util.find_spec(module_name)
    if found is None or found.origin is None:
        raise ModuleNotFoundError(f"no handler module {module_name!r}")
    spec = importlib.util.spec_from_file_location(instance_name, found.origin)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[instance_name] = module
    spec.loader.exec_module(module)
    return module


def _throttle_error() -> Exception:
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError("TooManyRequestsException", "Rate exceeded (injected)")
    error.code = 429
    return error


class ThreadEnvironment(MutableMapping[str, str]):
    """``os.environ`` with a per-thread overlay: what :func:`scoped_environment` sets is
    seen by the calling thread only, so handlers of different functions can run at once
    (and one can invoke another) each with its own variables.

    Reads and writes outside a scope go to the process environment.

    Examples
    --------
    >>> environ = ThreadEnvironment({"A": "1"})
    >>> environ.push({"B": "2"})
    >>> sorted(environ.items())
    [('A', '1'), ('B', '2')]
    >>> environ.pop_scope()
    >>> "B" in environ
    False
    """

    _DELETED = object()

    def __init__(self, base: MutableMapping[str, str]) -> None:
        self.base = base
        self._local = threading.local()

    def _scopes(self) -> list[dict[str, object]]:
        scopes: list[dict[str, object]] = self._local.__dict__.setdefault("scopes", [])
        return scopes

    def push(self, values: Mapping[str, str]) -> None:
        self._scopes().append(dict(values))

    def pop_scope(self) -> None:
        self._scopes().pop()

    def __getitem__(self, key: str) -> str:
        for scope in reversed(self._scopes()):
            if key in scope:
                value = scope[key]
                if value is self._DELETED:
                    raise KeyError(key)
                return str(value)
        return self.base[key]

    def __setitem__(self, key: str, value: str) -> None:
        scopes = self._scopes()
        if scopes:
            scopes[-1][key] = value
        else:
            self.base[key] = value

    def __delitem__(self, key: str) -> None:
        scopes = self._scopes()
        if scopes:
            self[key]  # KeyError if absent, as os.environ does
            scopes[-1][key] = self._DELETED
        else:
            del self.base[key]

    def _view(self) -> dict[str, str]:
        merged: dict[str, object] = dict(self.base)
        for scope in self._scopes():
            merged.update(scope)
        return {k: str(v) for k, v in merged.items() if v is not self._DELETED}

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    def copy(self) -> dict[str, str]:
        return self._view()


def install_thread_environment() -> ThreadEnvironment | None:
    """Make ``os.environ`` a :class:`ThreadEnvironment` (once per process)."""
    if isinstance(os.environ, ThreadEnvironment):
        return None
    environ = ThreadEnvironment(os.environ)
    os.environ = environ  # type: ignore[assignment]  # noqa: B003 - replace the mapping, keep its contents
    return environ


def uninstall_thread_environment(environ: ThreadEnvironment) -> None:
    if os.environ is environ:
        os.environ = environ.base  # type: ignore[assignment]  # noqa: B003


@contextmanager
def scoped_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of one invocation, then restore them.

    Under the bridge (:func:`install_thread_environment`) they are set for this thread
    only; elsewhere for the process, one scope at a time.

    Examples
    --------
    >>> with scoped_environment({"FLYWHEEL_X": "1"}):
    ...     os.environ["FLYWHEEL_X"]
    '1'
    >>> "FLYWHEEL_X" in os.environ
    False
    """
    environ = os.environ
    if isinstance(environ, ThreadEnvironment):
        environ.push({k: str(v) for k, v in values.items()})
        try:
            yield
        finally:
            environ.pop_scope()
        return
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
