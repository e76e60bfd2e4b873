"""The LLM gateway use case: one prompt call, routed, budgeted, checked, captured, measured.

One :class:`PromptGateway` lives per execution environment (built once by the handler's
cached composition root); what a call does is under Notes.

Notes
-----
1. finds the prompt's routing (:class:`~flywheel.gateway.routing.PromptRouter`: read on
   a prompt's first call, then refreshed in the background) and picks the version and
   variant (canary by weight, A/B arm by ``assignment_key``);
2. renders the version's verified spec (422 ``invalid_variables`` naming each variable);
   when the prompt's policy has an input guardrail, judges the caller's variables: a
   blocked input is answered (200) with the policy's message and a ``guardrail`` object,
   and is never sent, reserved or charged (:mod:`flywheel.llm.guardrails`, ADR 83);
3. reserves the call's worst case against every budget that applies (429
   ``budget_exceeded``, nothing charged);
4. calls the version's provider (throttled and unavailable calls retried with jitter;
   a timeout is a 504, any other failure a 502);
5. for a version with an output schema, parses the answer and checks it; a bad answer
   gets exactly one repair retry (its own reservation) that tells the model what was
   wrong, and a second bad answer is a 502 ``invalid_output`` naming the problems;
6. settles every reservation to what the provider reported (0 when it timed out);
   with an output guardrail, judges the (schema-checked) answer: a blocked answer is
   replaced by the policy's message (its usage stays charged); a judge that fails is a
   503 ``guardrail_unavailable`` unless the policy says ``on_error: allow``;
7. hands the call to the capture writer (never waits), reports its metrics, answers;
8. when a shadow experiment runs, queues a copy for the shadow version on background
   threads (bounded: a full queue skips the copy, counted); the copy is budgeted and
   captured as variant ``shadow`` and never delays or changes the answer.

Examples
--------
>>> from flywheel.adapters.memory_metrics import InMemoryGatewayMetrics
>>> from flywheel.composition import InMemoryPlatform
>>> from flywheel.llm.invocation import InvokeRequest
>>> from flywheel.gateway.settings import GatewaySettings
>>> from flywheel.llm.prompts import parse_prompt
>>> platform = InMemoryPlatform(GatewaySettings(backend="local"))
>>> catalog = platform.prompt_catalog()
>>> spec = parse_prompt({"name": "greet", "description": "Greets", "owner": "ana",
...     "provider": "local", "model_id": "local.stand-in", "template": "Say hi to {{ who }}",
...     "variables": {"who": {}}, "parameters": {"max_tokens": 20}})
>>> _ = catalog.register(spec, actor="ana", environment="0" * 64)
>>> _ = platform.registry.request_approval("greet", 1, actor="ana")
>>> _ = platform.registry.approve("greet", 1, actor="bo", reason="reviewed")
>>> _ = platform.registry.promote("greet", 1, actor="bo", reason="first")
>>> gateway = platform.prompt_gateway(metrics=InMemoryGatewayMetrics(), background=False)
>>> answer = gateway.invoke("greet", InvokeRequest(variables={"who": "Bo"}), request_id="r1")
>>> answer.variant, answer.text, answer.usage.output_tokens, answer.cost
('champion', 'Say hi to Bo', 4, '0.000012')
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from flywheel.errors import (
    BudgetExceededError,
    ConfigError,
    FlywheelError,
    GuardrailUnavailableError,
    InvalidOutputError,
    PromptVariablesError,
    ProviderError,
    http_status_for,
)
from flywheel.gateway.capture import CapturedCall, llm_capture_key
from flywheel.gateway.metrics import CallReport
from flywheel.gateway.routing import PromptRouter, read_routes
from flywheel.llm.budgets import BudgetCall, estimate_input_tokens
from flywheel.llm.guardrails import embedded_judges, input_item, judge, output_item
from flywheel.llm.invocation import InvokeResponse, InvokeUsage
from flywheel.llm.output import read_output, repair_message
from flywheel.llm.prompts import RenderedPrompt, render
from flywheel.llm.providers import Turn, Usage, request_for
from flywheel.serving.capture import CaptureWriter
from flywheel.serving.http import INTERNAL_ERROR_CODE
from flywheel.serving.models import Variant

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from flywheel.gateway.metrics import GatewayMetrics
    from flywheel.gateway.routing import PromptRoutes
    from flywheel.gateway.settings import GatewaySettings
    from flywheel.llm.budgets import Budgets, Reservation
    from flywheel.llm.catalog import PromptCatalog
    from flywheel.llm.evaluation import EvaluationInput, Evaluator
    from flywheel.llm.guardrails import (
        GuardrailJudges,
        GuardrailJudgesFactory,
        GuardrailOutcome,
        GuardrailPolicy,
    )
    from flywheel.llm.invocation import InvokeRequest
    from flywheel.llm.policy import LlmPolicy, PromptPolicy
    from flywheel.llm.prompts import PromptSpec, Provider
    from flywheel.llm.providers import Completion, CompletionProvider, CompletionRequest
    from flywheel.registry.ports import RegistryStorage
    from flywheel.serving.capture import CaptureSink

__all__ = ["PromptGateway"]

#: The variants a call is answered as (a shadow's answer never reaches the caller).
_ANSWERED: dict[Variant, Literal["champion", "canary", "a", "b"]] = {
    Variant.CHAMPION: "champion",
    Variant.CANARY: "canary",
    Variant.A: "a",
    Variant.B: "b",
}
_NOTHING = Usage(input_tokens=0, output_tokens=0)
#: The assistant turn a repair retry shows when the bad answer had no text at all.
_EMPTY_ANSWER = "(no text)"
#: The stop reason of an answer a guardrail replaced (the provider's own value for it).
_GUARDRAIL_STOP = "guardrail_intervened"


@dataclass(slots=True)
class _Call:
    """What one call has done so far (read by capture and metrics, also on failure)."""

    name: str
    version: int
    variant: Variant
    spec: PromptSpec
    policy: PromptPolicy
    rendered_sha256: str | None = None
    called: bool = False
    provider_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = field(default_factory=Decimal)
    attempts: int = 0
    repair_retries: int = 0
    repaired: bool = False
    settle_failures: int = 0
    text: str | None = None
    output: Any = None
    output_valid: bool | None = None
    stop_reason: str = ""
    #: What a guardrail blocked (the answer is then the policy's message).
    guardrail: GuardrailOutcome | None = None
    guardrail_failures: int = 0

    @property
    def guardrails(self) -> GuardrailPolicy | None:
        return self.policy.guardrails

    def reply(self) -> str | None:
        """The text the caller gets: the answer, or the guardrail's message."""
        guardrails = self.guardrails
        if self.guardrail is None or guardrails is None:
            return self.text if self.spec.output_schema is None else None
        if self.guardrail.stage == "input":
            return guardrails.blocked_input
        return guardrails.blocked_output


class PromptGateway:
    """Answer prompt calls (see the module docstring); build it with :meth:`start`.

    Thread-safe: concurrent callers share the routing, the specs, the providers and the
    capture writer.

    Parameters
    ----------
    router
        Each prompt's routing and specs.
    budgets
        Reservations and settlements against the stage's budgets.
    policy
        Teams and capture policy per prompt.
    providers
        The provider port of each provider kind (built once each, on first use).
    metrics
        Where call reports go.
    capture
        The capture writer (``None``: capture off).
    shadow_queue, shadow_workers
        Shadow calls allowed to wait, and threads making them.
    guardrails
        The judges of a prompt's guardrail policy, built on its first call (default: the
        embedded evaluators).
    timer, clock, draw
        Monotonic seconds, epoch seconds (capture partitions), and the canary draw.
    """

    def __init__(
        self,
        *,
        router: PromptRouter,
        budgets: Budgets,
        policy: LlmPolicy,
        providers: Callable[[Provider], CompletionProvider],
        metrics: GatewayMetrics,
        capture: CaptureWriter | None = None,
        shadow_queue: int = 16,
        shadow_workers: int = 2,
        guardrails: GuardrailJudgesFactory = embedded_judges,
        timer: Callable[[], float] = time.perf_counter,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.router = router
        self.budgets = budgets
        self.policy = policy
        self.metrics = metrics
        self.capture = capture
        self._make_provider = providers
        self._providers: dict[Provider, CompletionProvider] = {}
        self._timer = timer
        self._clock = clock
        self._draw = draw
        self._shadows = _ShadowRunner(self, shadow_queue, shadow_workers)
        self._make_judges = guardrails
        self._judges: dict[str, GuardrailJudges] = {}

    @classmethod
    def start(
        cls,
        settings: GatewaySettings,
        *,
        records: RegistryStorage,
        catalog: PromptCatalog,
        policy: LlmPolicy,
        budgets: Budgets,
        providers: Callable[[Provider], CompletionProvider],
        metrics: GatewayMetrics,
        sink: CaptureSink | None = None,
        background: bool = True,
        draw: Callable[[], float] = random.random,
        guardrails: GuardrailJudgesFactory = embedded_judges,
    ) -> PromptGateway:
        """The gateway of a stage: routing read from ``records``, specs from ``catalog``
        (verified, cached per version), calls reserved and settled on ``budgets`` (its clock
        also dates the captured calls), teams and capture policies from ``policy``.

        ``background=False``: capture is written only by :meth:`flush` (tests); ``draw``
        is the canary split's uniform draw per call; ``guardrails`` builds the judges of a
        prompt's guardrail policy.
        """
        time_source = budgets.clock
        specs: dict[tuple[str, int], PromptSpec] = {}

        def load(name: str, version: int) -> PromptSpec:
            key = (name, version)
            spec = specs.get(key)
            if spec is None:  # versions never change: each is read (and verified) once
                spec = specs[key] = catalog.get(name, version).spec
            return spec

        router = PromptRouter(
            lambda name: read_routes(
                records, name, load=load, default_canary_weight=settings.canary_weight
            ),
            ttl_seconds=settings.role_refresh_seconds,
            max_prompts=settings.max_routed_prompts,
        )
        capture = None
        if sink is not None and settings.capture_enabled:
            capture = CaptureWriter(
                sink,
                prefix=settings.llm_capture_prefix,
                max_rows=settings.capture_max_rows,
                max_age_seconds=settings.capture_max_age_seconds,
                background=background,
                key=llm_capture_key,
            )
        return cls(
            router=router,
            budgets=budgets,
            policy=policy,
            providers=providers,
            metrics=metrics,
            capture=capture,
            shadow_queue=settings.shadow_queue,
            shadow_workers=settings.shadow_workers,
            # Capture partitions follow the runtime's clock (simulated in the local runtime).
            clock=lambda: time_source.now().timestamp(),
            draw=draw,
            guardrails=guardrails,
        )

    # -- the use case ------------------------------------------------------------------------
    def invoke(self, name: str, request: InvokeRequest, *, request_id: str) -> InvokeResponse:
        """Answer one call of prompt ``name``.

        Raises
        ------
        PromptNotFoundError, NoChampionError
            No such prompt, or no version answers it yet (404).
        PromptVariablesError
            Variables that do not fit the version's spec, each named (422).
        BudgetExceededError
            A budget has no room for the call's worst case; nothing charged (429).
        ProviderThrottledError
            The provider still throttled after the retries (429).
        ProviderTimeoutError
            No answer in time (504).
        InvalidOutputError
            The answer failed the output schema twice (502, the problems listed).
        GuardrailUnavailableError
            A guardrail could not judge the call and its policy blocks then (503).
        ProviderError
            Any other provider failure (502).
        """
        started = self._timer()
        routes = self.router.routes(name)
        version, variant = routes.choose(request.assignment_key, draw=self._draw())
        call = self._call(routes, version, variant)
        try:
            self._run(call, request.variables)
        except Exception as err:
            self._finish(call, request.variables, request_id, started, err)
            self._shadow(routes, call, request.variables, request_id)
            raise
        latency_ms = self._finish(call, request.variables, request_id, started, None)
        self._shadow(routes, call, request.variables, request_id)
        return InvokeResponse.model_construct(
            prompt=name,
            version=version,
            variant=_ANSWERED[variant],
            text=call.reply(),
            output=call.output if call.guardrail is None else None,
            stop_reason=call.stop_reason if call.guardrail is None else _GUARDRAIL_STOP,
            usage=InvokeUsage.model_construct(
                input_tokens=call.input_tokens, output_tokens=call.output_tokens
            ),
            cost=format(call.cost, "f"),
            currency=self.budgets.prices.currency,
            latency_ms=round(latency_ms, 3),
            attempts=call.attempts,
            repaired=call.repaired,
            request_id=request_id,
            guardrail=call.guardrail,
        )

    def flush(self, timeout: float = 30.0) -> None:
        """Finish background work now: shadow calls, then capture writes (tests, shutdown)."""
        self._shadows.drain(timeout)
        if self.capture is not None:
            self.capture.flush()

    def close(self) -> None:
        """Flush and stop accepting capture entries."""
        self.flush()
        if self.capture is not None:
            self.capture.close()

    # -- internals ---------------------------------------------------------------------------
    def _call(self, routes: PromptRoutes, version: int, variant: Variant) -> _Call:
        return _Call(
            name=routes.name,
            version=version,
            variant=variant,
            spec=routes.specs[version],
            policy=self.policy.prompt(routes.name),
        )

    def _provider(self, spec: PromptSpec) -> CompletionProvider:
        provider = self._providers.get(spec.provider)
        if provider is None:
            try:
                provider = self._make_provider(spec.provider)
            except ConfigError as err:
                raise ProviderError(
                    f"provider {spec.provider} is not configured in this stage",
                    details={"cause": err.code, "field": err.field},
                ) from err
            self._providers[spec.provider] = provider
        return provider

    def _run(self, call: _Call, variables: Mapping[str, object]) -> None:
        """Render, guard the input, call, check (one repair at most), guard the answer;
        the answer lands in ``call``."""
        spec = call.spec
        rendered = render(spec, variables)
        call.rendered_sha256 = rendered.sha256
        judges = self._judges_of(call)
        context = _context_variable(call)
        if judges is not None and self._guard(
            call, "input", judges.input, lambda: input_item(variables, skip=context)
        ):
            return
        provider = self._provider(spec)
        request = request_for(spec, rendered)
        completion = self._complete(call, provider, request, estimate_input_tokens(rendered))
        call.text, call.stop_reason = completion.text, completion.stop_reason.value
        schema = spec.output_schema
        if schema is not None:
            self._check_output(call, provider, request, completion, schema)
        if judges is not None:
            answer = call.text or ""
            self._guard(
                call,
                "output",
                judges.output,
                lambda: output_item(answer, variables, context_variable=context),
            )

    def _check_output(
        self,
        call: _Call,
        provider: CompletionProvider,
        request: CompletionRequest,
        completion: Completion,
        schema: Mapping[str, Any],
    ) -> None:
        """Parse and check the answer against the output schema (one repair at most)."""
        value, problems = read_output(completion.text, schema)
        if problems:
            call.repair_retries = 1
            repair = _repair_request(request, completion, problems)
            try:
                completion = self._complete(call, provider, repair, _estimate(repair))
            except BudgetExceededError as refused:
                call.output_valid = False
                context = f"; its repair retry was refused: {refused.message}"
                raise _invalid(problems, context) from refused
            call.text, call.stop_reason = completion.text, completion.stop_reason.value
            value, problems = read_output(completion.text, schema)
            if problems:
                call.output_valid = False
                raise _invalid(problems, " after one repair retry")
            call.repaired = True
        call.output_valid, call.output = True, value

    def _judges_of(self, call: _Call) -> GuardrailJudges | None:
        """The judges of ``call``'s guardrails (built on the prompt's first call)."""
        policy = call.guardrails
        if policy is None:
            return None
        judges = self._judges.get(call.name)
        if judges is None:  # a race builds them twice, harmlessly: the policy is fixed
            judges = self._judges[call.name] = self._make_judges(policy)
        return judges

    def _guard(
        self,
        call: _Call,
        stage: Literal["input", "output"],
        evaluators: tuple[Evaluator, ...],
        item: Callable[[], EvaluationInput],
    ) -> bool:
        """Judge one stage; ``True`` when it blocked (``call.guardrail`` says how)."""
        policy = call.guardrails
        if not evaluators or policy is None:
            return False
        try:
            outcome = judge(stage, evaluators, item())
        except GuardrailUnavailableError:
            if policy.on_error == "block":
                raise
            call.guardrail_failures += 1  # let through unjudged, counted
            return False
        call.guardrail = outcome
        return outcome is not None

    def _complete(
        self,
        call: _Call,
        provider: CompletionProvider,
        request: CompletionRequest,
        input_tokens: int,
    ) -> Completion:
        """One provider call between its reservation and its settlement."""
        spec = call.spec
        reservation = self.budgets.reserve(
            BudgetCall.model_construct(
                prompt=call.name,
                teams=call.policy.teams,
                provider=spec.provider,
                model_id=spec.model_id,
                input_tokens=input_tokens,
                max_tokens=spec.parameters.max_tokens,
            )
        )
        call.called = True
        usage, attempts = _NOTHING, 1
        began = self._timer()
        try:
            completion = provider.complete(request)
            usage, attempts = completion.usage, completion.attempts
            return completion
        except ProviderError as err:
            attempts = int(err.details.get("attempts", 1))
            reported = err.details.get("usage")
            if isinstance(reported, Usage):
                usage = reported
            raise
        finally:
            call.provider_ms += (self._timer() - began) * 1000.0
            call.attempts += attempts
            self._settle(call, reservation, usage)

    def _settle(self, call: _Call, reservation: Reservation, usage: Usage) -> None:
        try:
            cost = self.budgets.settle(
                reservation, usage, version=call.version, variant=call.variant.value
            )
        except FlywheelError:
            # The reservation stays charged (spend over-, never under-counted); the call's
            # answer is not lost for it. Counted as SettleFailures.
            call.settle_failures += 1
            cost = self.budgets.prices.cost(usage, call.spec.model_id, call.spec.provider)
        call.input_tokens += usage.input_tokens
        call.output_tokens += usage.output_tokens
        call.cost += cost

    def _finish(
        self,
        call: _Call,
        variables: Mapping[str, object],
        request_id: str,
        started: float,
        error: Exception | None,
    ) -> float:
        """Capture (when the provider was called) and report one call; its latency."""
        if error is None:
            status, code = 200, None
        elif isinstance(error, FlywheelError):
            status, code = http_status_for(error), error.code
        else:
            status, code = 500, INTERNAL_ERROR_CODE
        latency_ms = (self._timer() - started) * 1000.0
        capture = self.capture
        blocked = call.guardrail
        if capture is not None and (call.called or blocked is not None):
            capture.submit(
                CapturedCall(
                    request_id=request_id,
                    timestamp=self._clock(),
                    prompt=call.name,
                    version=call.version,
                    variant=call.variant.value,
                    policy=call.policy.capture,
                    variables=variables,
                    rendered_sha256=call.rendered_sha256,
                    answer=call.text,
                    output_valid=call.output_valid,
                    input_tokens=call.input_tokens,
                    output_tokens=call.output_tokens,
                    cost=call.cost,
                    latency_ms=latency_ms,
                    provider_latency_ms=call.provider_ms,
                    attempts=call.attempts,
                    repaired=call.repaired,
                    status=status,
                    error=code,
                    guardrail=None if blocked is None else blocked.model_dump(mode="json"),
                )
            )
        self.metrics.call_finished(
            CallReport(
                prompt=call.name,
                version=call.version,
                variant=call.variant.value,
                status=status,
                code=code,
                latency_ms=latency_ms,
                provider_called=call.called,
                provider_latency_ms=call.provider_ms,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                cost=call.cost,
                repair_retries=call.repair_retries,
                capture_lost=capture.take_failures() if capture is not None else 0,
                settle_failures=call.settle_failures,
                guarded=call.guardrails is not None,
                guardrail_stage=None if blocked is None else blocked.stage,
                guardrail_failures=call.guardrail_failures,
            )
        )
        return latency_ms

    def _shadow(
        self, routes: PromptRoutes, call: _Call, variables: Mapping[str, object], request_id: str
    ) -> None:
        """Queue a copy for the shadow version when the provider answered this call's
        version (requests refused before it are not copied)."""
        version = routes.shadow_of(call.variant)
        if version is None or not call.called or version not in routes.specs:
            return
        self._shadows.submit(self._call(routes, version, Variant.SHADOW), variables, request_id)

    def _run_shadow(self, call: _Call, variables: Mapping[str, object], request_id: str) -> None:
        """One shadow call, on a background thread: never raises."""
        started = self._timer()
        try:
            self._run(call, variables)
        except (PromptVariablesError, BudgetExceededError) as err:
            if not call.called:
                reason = "variables" if isinstance(err, PromptVariablesError) else "budget"
                self._skipped(call, reason)
                return
            self._finish(call, variables, request_id, started, err)
        except Exception as err:
            self._finish(call, variables, request_id, started, err)
        else:
            self._finish(call, variables, request_id, started, None)

    def _skipped(self, call: _Call, reason: str) -> None:
        with contextlib.suppress(Exception):  # metrics never break a background thread
            self.metrics.shadow_skipped(call.name, call.version, reason)


def _context_variable(call: _Call) -> str | None:
    """The variable holding the call's context: the output guardrail's, else the
    answering version's ``evaluation.context_variable``."""
    policy = call.guardrails
    named = policy.output.context_variable if policy and policy.output else None
    evaluation = call.spec.evaluation
    return named or (evaluation.context_variable if evaluation is not None else None)


def _repair_request(
    request: CompletionRequest, completion: Completion, problems: list[tuple[str, str]]
) -> CompletionRequest:
    """The first request, its bad answer, and a user message saying what was wrong."""
    turns = (
        *request.history,
        Turn(role="user", text=request.user),
        Turn(role="assistant", text=completion.text if completion.text.strip() else _EMPTY_ANSWER),
    )
    return request.model_copy(update={"history": turns, "user": repair_message(problems)})


def _estimate(request: CompletionRequest) -> int:
    """The input-token estimate of a request with history (every turn is input)."""
    text = "\n".join([*(turn.text for turn in request.history), request.user])
    return estimate_input_tokens(RenderedPrompt(system=request.system, user=text, sha256=""))


def _invalid(problems: list[tuple[str, str]], context: str) -> InvalidOutputError:
    field, reason = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return InvalidOutputError(
        f"the answer does not match the prompt's output schema{context}: {field}: {reason}{more}",
        field=field,
        details={"errors": [{"row": None, "field": f, "reason": r} for f, r in problems]},
    )


class _ShadowRunner:
    """Shadow calls on ``workers`` background threads from a queue of ``size``.

    Never raises into, waits for, or changes the caller's call: a full queue skips the
    copy (``ShadowSkipped``, reason ``queue_full``).
    """

    def __init__(self, gateway: PromptGateway, size: int, workers: int) -> None:
        self._gateway = gateway
        self._queue: queue.Queue[tuple[_Call, Mapping[str, object], str]] = queue.Queue(size)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, call: _Call, variables: Mapping[str, object], request_id: str) -> None:
        if not self._threads:
            self._start()
        try:
            self._queue.put_nowait((call, variables, request_id))
        except queue.Full:
            self._gateway._skipped(call, "queue_full")

    def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until every queued shadow call is done."""
        deadline = time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks and time.monotonic() < deadline:
                done.wait(timeout=0.05)

    def _start(self) -> None:
        with self._lock:
            if self._threads:
                return
            for i in range(self._workers):
                thread = threading.Thread(
                    target=self._run, name=f"flywheel-shadow-{i}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        while True:
            call, variables, request_id = self._queue.get()
            try:
                self._gateway._run_shadow(call, variables, request_id)
            except Exception:
                self._gateway._skipped(call, "failed")
            finally:
                self._queue.task_done()
