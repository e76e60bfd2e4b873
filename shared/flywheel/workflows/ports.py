"""Ports of the workflows: serving control, canary health, events and task tokens.

Adapters live in :mod:`flywheel.adapters` (``LambdaServingControl``,
``CloudWatchCanaryHealth``, ``EventBridgePublisher``, ``StepFunctionsTaskTokens``, and
in-memory fakes for tests). Run locks, approvals and model configs are records in the
registry's storage (:class:`~flywheel.registry.ports.RecordStore`), not ports of their
own: they must join the registry's transactions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field

from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class AliasRouting(Frozen):
    """Where an alias sends traffic: ``primary`` takes what ``weights`` leave over.

    Examples
    --------
    >>> routing = AliasRouting(primary="3", weights={"4": 0.1})
    >>> routing.share("3"), routing.share("4"), routing.share("5")
    (0.9, 0.1, 0.0)
    """

    primary: str = Field(min_length=1)
    weights: dict[str, float] = Field(default_factory=dict)

    def share(self, lambda_version: str) -> float:
        """Fraction of the alias's traffic ``lambda_version`` receives."""
        if lambda_version == self.primary:
            return round(1.0 - sum(self.weights.values()), 10)
        return self.weights.get(lambda_version, 0.0)

    def routes_to(self, lambda_version: str) -> bool:
        return self.share(lambda_version) > 0


class PublishedVersion(Frozen):
    """A Lambda version of a model's inference function, pinned to one model version."""

    function_name: str
    lambda_version: str
    model_version: int = Field(ge=1)


class AlarmState(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    #: Configured but not found: treated as unhealthy (a canary nobody watches fails).
    MISSING = "MISSING"


class ServingControl(Protocol):
    """The inference functions: publish pinned versions and route alias ``live``.

    Examples
    --------
    >>> from flywheel.adapters.memory_workflows import InMemoryServingControl
    >>> serving: ServingControl = InMemoryServingControl({"churn": "churn-fn"})
    >>> serving.publish("churn", 3).lambda_version
    '2'
    """

    def publish(self, model: str, model_version: int) -> PublishedVersion:
        """Publish a version whose environment pins ``FLYWHEEL_MODEL_VERSION``.

        Idempotent: an existing version pinned to ``model_version`` (with the current
        code) is returned instead of publishing another one.
        """
        ...

    def routing(self, model: str) -> AliasRouting:
        """The live alias's current routing."""
        ...

    def route(self, model: str, routing: AliasRouting) -> None:
        """Point the live alias at ``routing.primary`` with ``routing.weights``."""
        ...


class CanaryHealth(Protocol):
    """The alarms that judge a canary (errors, latency, validation failures, drift)."""

    def alarm_states(self, model: str) -> dict[str, AlarmState]:
        """State of each canary alarm of ``model`` by name; ``{}`` when none is configured."""
        ...


class EventPublisher(Protocol):
    """Puts domain events on the project bus."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str:
        """Put one event; return its id.

        Raises
        ------
        EventPublishError
            The bus refused the event.
        """
        ...


class TaskTokens(Protocol):
    """Resumes a workflow paused on ``.waitForTaskToken``."""

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        """``SendTaskSuccess``; raises :class:`~flywheel.errors.TaskTokenError` when refused."""
        ...

    def fail(self, token: str, *, error: str, cause: str) -> None:
        """``SendTaskFailure``; raises :class:`~flywheel.errors.TaskTokenError` when refused."""
        ...


class IdentityVerifier(Protocol):
    """Establishes who a person is from a proof they sent (a presigned STS request in AWS)."""

    def principal(self, proof: str) -> str:
        """The authenticated principal's ARN.

        Raises
        ------
        UnauthenticatedError
            The proof is missing, forged, expired or not an STS request.
        """
        ...


class PlatformApi(Protocol):
    """The platform's API as a client sees it: what people do as the authenticated caller."""

    def decide(self, approval_id: str, *, decision: str, reason: str) -> dict[str, Any]:
        """Approve or reject; the API's answer (``status``, ``decided_by``, …).

        Raises
        ------
        FlywheelError
            The API's refusal, as the same domain error (403, 404, 409, 410 …).
        """
        ...

    def request_retrain(
        self, model: str, *, reason: str, code_version: str | None = None
    ) -> dict[str, Any]:
        """Ask for a training run (at commit ``code_version``); the API's receipt.

        Raises
        ------
        FlywheelError
            The API's refusal (400 no reason, 404 model not configured, …).
        """
        ...

    def store_config(self, model: str, config: Mapping[str, Any], *, reason: str) -> dict[str, Any]:
        """Store ``model``'s workflow config as the caller; the API's receipt (``revision``,
        ``changed``).

        Raises
        ------
        FlywheelError
            The API's refusal (400 an invalid config, naming its field; 403 …).
        """
        ...

    def register_prompt(
        self,
        prompt: str,
        spec: Mapping[str, Any],
        *,
        reason: str,
        evaluation_set: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Register ``spec`` as a version of ``prompt``, with the lines of the evaluation
        set it names, and ask for its approval, as the caller; the API's receipt
        (``version``, ``status``, ``sha256``, ``approval_id``, ``created``, the sealed
        ``evaluation``).

        Raises
        ------
        FlywheelError
            The API's refusal (400 an invalid spec, naming ``spec.<field>``; 413 a set too
            large; 422 a bad line of the set, naming it; 409 a model's name; 403 …).
        """
        ...

    def request_promotion(self, model: str, *, version: int, reason: str) -> dict[str, Any]:
        """Ask the promotion workflow to roll approved ``version`` out; the API's receipt.

        Raises
        ------
        FlywheelError
            The API's refusal (404 no such version, 409 not approved or a canary running, …).
        """
        ...
