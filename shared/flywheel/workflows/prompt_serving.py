"""Serving control for prompt versions: the registry *is* the routing.

The LLM gateway derives a prompt's routing from the registry: alias ``champion``
answers as variant ``champion``; the ``challenger``, while ``canary``, answers as
variant ``canary`` with the weight of the ``MODEL#<name>`` / ``CANARY`` record
(:class:`~flywheel.workflows.records.CanaryDoc`) when it names the challenger, else the
stage's ``canary_weight``. So :class:`PromptServingControl` publishes nothing (a prompt
version is served under its own number) and routes nothing: the registry writes the
promotion workflow makes anyway are the routing, each with its audit entry.
:class:`ServingByKind` hands each name to the serving control of its registry kind, so
:class:`~flywheel.workflows.promotion.PromotionSteps` runs one workflow for both.

Examples
--------
>>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
>>> store = InMemoryModelRegistry(InMemoryAuditLog())
>>> control = PromptServingControl(store, default_canary_weight=0.1)
>>> control.publish("ticket-summary", 3).lambda_version
'3'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel.errors import ModelNotFoundError
from flywheel.registry.models import RegistryKind, VersionStatus
from flywheel.workflows.ports import AliasRouting, PublishedVersion
from flywheel.workflows.records import CANARY, CanaryDoc, model_key, read

if TYPE_CHECKING:
    from flywheel.registry.models import Model
    from flywheel.registry.ports import RegistryStorage
    from flywheel.workflows.ports import ServingControl

__all__ = ["NO_CHAMPION", "PromptServingControl", "ServingByKind", "prompt_routing"]

#: The routing's ``primary`` while a prompt has no champion (the gateway then answers
#: every call with the canary, or 404 ``no_champion`` when there is none either).
NO_CHAMPION = "none"


def prompt_routing(model: Model, canary: CanaryDoc | None, *, on_canary: bool,
                   default_weight: float) -> AliasRouting:  # fmt: skip
    """What the gateway routes for ``model`` (a prompt), as an :class:`AliasRouting`.

    ``primary`` is the champion's version number (:data:`NO_CHAMPION` without one);
    ``weights`` holds the challenger's number with its canary weight while it is
    ``on_canary``: the ``canary`` record's weight when the record names it, else
    ``default_weight``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from flywheel.registry.models import Alias, Model
    >>> model = Model(name="ticket-summary", kind="prompt", latest_version=2,
    ...               aliases={Alias.CHAMPION: 1, Alias.CHALLENGER: 2},
    ...               created_at=datetime(2026, 1, 1, tzinfo=UTC), created_by="ana")
    >>> step = CanaryDoc(version=2, step=1, steps=2, weight=0.25)
    >>> prompt_routing(model, step, on_canary=True, default_weight=0.1)
    AliasRouting(primary='1', weights={'2': 0.25})
    >>> prompt_routing(model, None, on_canary=True, default_weight=0.1).weights
    {'2': 0.1}
    >>> prompt_routing(model, step, on_canary=False, default_weight=0.1)
    AliasRouting(primary='1', weights={})
    """
    primary = NO_CHAMPION if model.champion is None else str(model.champion)
    challenger = model.challenger
    if challenger is None or not on_canary:
        return AliasRouting(primary=primary)
    named = canary is not None and canary.version == challenger
    weight = canary.weight if canary is not None and named else default_weight
    return AliasRouting(primary=primary, weights={str(challenger): weight})


class PromptServingControl:
    """:class:`~flywheel.workflows.ports.ServingControl` of prompt versions, derived from
    the registry (it needs only the registry's storage port).

    Parameters
    ----------
    store
        The registry and its records (``CANARY``).
    default_canary_weight
        The canary's weight when no ``CANARY`` record names the challenger (the
        gateway's fallback, ``settings.canary_weight``).

    Examples
    --------
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> control = PromptServingControl(InMemoryModelRegistry(InMemoryAuditLog()),
    ...                                default_canary_weight=0.1)
    >>> control.publish("ticket-summary", 2).function_name
    'prompt:ticket-summary'
    """

    def __init__(self, store: RegistryStorage, *, default_canary_weight: float) -> None:
        self._store = store
        self._default_weight = default_canary_weight

    def publish(self, model: str, model_version: int) -> PublishedVersion:
        """Nothing to build: a prompt version is served under its own number."""
        return PublishedVersion(
            function_name=f"prompt:{model}",
            lambda_version=str(model_version),
            model_version=model_version,
        )

    def routing(self, model: str) -> AliasRouting:
        """The gateway's routing of ``model`` as the registry says it now."""
        found = self._store.get_model(model)
        challenger = found.challenger
        on_canary = (
            challenger is not None
            and self._store.get_version(model, challenger).status is VersionStatus.CANARY
        )
        canary = read(self._store, model_key(model, CANARY), CanaryDoc) if on_canary else None
        return prompt_routing(
            found,
            canary[0] if canary is not None else None,
            on_canary=on_canary,
            default_weight=self._default_weight,
        )

    def route(self, model: str, routing: AliasRouting) -> None:  # noqa: ARG002
        """Nothing to write: the registry change the step made is the routing."""
        return


class ServingByKind:
    """A :class:`~flywheel.workflows.ports.ServingControl` that hands each name to the
    serving control of its registry kind: ``models`` (alias ``live`` of the inference
    function) or ``prompts`` (:class:`PromptServingControl`).

    A name not registered yet is a model's (its serving control says what is wrong). The
    kind of a name never changes, so it is looked up once per name.

    Examples
    --------
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> from flywheel.adapters.memory_workflows import InMemoryServingControl
    >>> store = InMemoryModelRegistry(InMemoryAuditLog())
    >>> serving = ServingByKind(store, models=InMemoryServingControl({"churn": "churn-fn"}),
    ...                         prompts=PromptServingControl(store, default_canary_weight=0.1))
    >>> serving.publish("churn", 3).function_name
    'churn-fn'
    """

    def __init__(
        self, store: RegistryStorage, *, models: ServingControl, prompts: ServingControl
    ) -> None:
        self._store = store
        self._controls: dict[RegistryKind, ServingControl] = {
            RegistryKind.MODEL: models,
            RegistryKind.PROMPT: prompts,
        }
        self._kinds: dict[str, RegistryKind] = {}

    def kind(self, name: str) -> RegistryKind:
        """The registry kind of ``name`` (``model`` while it is not registered)."""
        known = self._kinds.get(name)
        if known is not None:
            return known
        try:
            found = self._store.get_model(name).kind
        except ModelNotFoundError:
            return RegistryKind.MODEL
        self._kinds[name] = found
        return found

    def _control(self, name: str) -> ServingControl:
        return self._controls[self.kind(name)]

    def publish(self, model: str, model_version: int) -> PublishedVersion:
        return self._control(model).publish(model, model_version)

    def routing(self, model: str) -> AliasRouting:
        return self._control(model).routing(model)

    def route(self, model: str, routing: AliasRouting) -> None:
        self._control(model).route(model, routing)
