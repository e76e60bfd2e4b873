"""Shared pieces of the LLM gateway tests: prompts in a registry, routing records, providers
that answer as scripted, and a gateway built on them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flywheel.adapters.local_llm import LocalProvider
from flywheel.adapters.memory_metrics import InMemoryGatewayMetrics
from flywheel.gateway.service import PromptGateway
from flywheel.gateway.settings import GatewaySettings
from flywheel.llm.prompts import parse_prompt
from flywheel.llm.providers import Completion, StopReason, Usage
from flywheel.registry.models import RecordWrite
from flywheel.serving.capture import read_capture
from flywheel.serving.experiments import Experiment, experiment_key
from flywheel.workflows.records import CANARY, CanaryDoc, model_key, write
from tests.factories import prompt_data

if TYPE_CHECKING:
    from collections.abc import Callable

    from flywheel.composition import Platform
    from flywheel.gateway.metrics import GatewayMetrics
    from flywheel.llm.providers import CompletionProvider, CompletionRequest

NAME = "ticket-summary"
AUTHOR, APPROVER = "ana@example.com", "bo@example.com"
VARIABLES = {"customer": "ACME Corp", "ticket": "The export fails since Monday."}
SCHEMA = {
    "type": "object",
    "required": ["summary", "urgency"],
    "properties": {
        "summary": {"type": "string"},
        "urgency": {"type": "string", "enum": ["low", "normal", "high"]},
    },
}


def add_prompt(platform: Platform, name: str = NAME, **overrides: Any) -> int:
    """Register, and approve, a version of ``name`` (the factory's spec with ``overrides``)."""
    spec = parse_prompt(prompt_data(name, **overrides))
    version = platform.prompt_catalog().register(spec, actor=AUTHOR, environment="0" * 64)
    number = version.version.version
    platform.registry.request_approval(name, number, actor=AUTHOR)
    platform.registry.approve(name, number, actor=APPROVER, reason="reviewed")
    return number


def promote(platform: Platform, version: int, name: str = NAME) -> None:
    platform.registry.promote(name, version, actor=APPROVER, reason="tests")


def start_canary(
    platform: Platform, version: int, *, weight: float | None, recorded: int | None = None
) -> None:
    """``version`` on canary; with ``weight``, the workflow's canary record for ``recorded``
    (default: that version) at that weight."""
    platform.registry.start_canary(NAME, version, actor=APPROVER, reason="tests")
    if weight is not None:
        doc = CanaryDoc(version=recorded or version, step=1, steps=2, weight=weight)
        platform.records.put_record(write(model_key(NAME, CANARY), doc, None))


def start_experiment(
    platform: Platform,
    kind: str,
    version: int,
    *,
    control: int,
    weight: float | None = None,
    salt: str | None = None,
) -> None:
    """A running experiment record, as the experiments service writes it."""
    experiment = Experiment(
        id=f"exp-{kind}",
        model=NAME,
        kind=kind,
        version=version,
        control=control,
        weight=weight,
        salt=salt,
        started_by=APPROVER,
        started_at=datetime(2026, 12, 7, tzinfo=UTC),
    )
    platform.records.put_record(
        RecordWrite(
            key=experiment_key(NAME),
            doc=experiment.model_dump(mode="json"),
            expected_revision=None,
        )
    )


def completion(text: str, *, input_tokens: int = 40, output_tokens: int = 10) -> Completion:
    return Completion(
        text=text,
        stop_reason=StopReason.END_TURN,
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        latency_ms=1.0,
        model_id="local.stand-in",
    )


class Scripted:
    """A provider that answers (or raises) the scripted items in order, then the stand-in;
    it records every request and may block until :attr:`release` is set."""

    def __init__(self, *script: Completion | Exception, blocking: bool = False) -> None:
        self.script = list(script)
        self.requests: list[CompletionRequest] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not blocking:
            self.release.set()
        self._lock = threading.Lock()
        self._stand_in = LocalProvider()

    def complete(self, request: CompletionRequest) -> Completion:
        with self._lock:
            self.requests.append(request)
            step = self.script.pop(0) if self.script else None
        self.entered.set()
        self.release.wait(timeout=30)
        if isinstance(step, Exception):
            raise step
        return step if step is not None else self._stand_in.complete(request)


#: The system prompt of the shadow versions the tests register (:func:`by_system`).
SHADOW_SYSTEM = "You are the shadow."


def by_system(
    providers: dict[str, CompletionProvider], default: CompletionProvider | None = None
) -> CompletionProvider:
    """A provider dispatching on the request's system prompt (tells versions apart)."""

    class Dispatch:
        def complete(self, request: CompletionRequest) -> Completion:
            chosen = providers.get(request.system, default)
            assert chosen is not None, request.system
            return chosen.complete(request)

    return Dispatch()


def gateway(
    platform: Platform,
    provider: CompletionProvider | None = None,
    *,
    metrics: GatewayMetrics | None = None,
    draw: Callable[[], float] | None = None,
    **settings: Any,
) -> PromptGateway:
    """A gateway on ``platform``'s registry, artifacts, policy, usage store, capture and
    settings (plus ``settings``); every provider kind answered by ``provider`` (default: the
    stand-in); capture written on flush."""
    chosen = provider or LocalProvider()
    values: dict[str, Any] = {**platform.settings.model_dump(), **settings}
    policy = platform.llm_policy()
    return PromptGateway.start(
        GatewaySettings(**values),
        records=platform.records,
        catalog=platform.prompt_catalog(),
        policy=policy,
        budgets=platform.budgets(policy),
        providers=lambda _kind: chosen,
        metrics=metrics or InMemoryGatewayMetrics(),
        sink=platform.capture,
        background=False,
        **({"draw": draw} if draw is not None else {}),
    )


def captured(platform: Platform, gw: PromptGateway) -> list[dict[str, Any]]:
    """Every captured call, after the gateway's background work is done."""
    gw.flush()
    return read_capture(platform.capture, "llm-capture/")


def draws(*values: float) -> Callable[[], float]:
    """A canary draw returning ``values`` in turn, then the last one."""
    queue = list(values)

    def draw() -> float:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return draw


def spent(platform: Platform) -> dict[tuple[str, str], Any]:
    """The in-memory ledger's amounts by ``(pk, sk)``."""
    return dict(platform.usage_store.amounts)  # type: ignore[attr-defined]
