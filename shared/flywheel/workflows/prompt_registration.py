"""Registering a prompt version and asking for its approval (ADR 78): one use case for
``Flywheel.register_prompt`` (in process: the local runtime, in memory) and for the
registration route ``POST /v1/prompts/{name}/versions`` (a deployed stage, where the
route's function registers as its authenticated caller).

Examples
--------
>>> from flywheel.composition import InMemoryPlatform
>>> from flywheel.llm.prompts import parse_prompt
>>> registrations = InMemoryPlatform().prompt_registrations()
>>> spec = parse_prompt({"name": "greet", "description": "Greets", "owner": "ana",
...     "provider": "local", "model_id": "local.stand-in", "template": "Hi {{ who }}",
...     "variables": {"who": {}}, "parameters": {"max_tokens": 20}})
>>> done = registrations.register(spec, actor="ana", environment="0" * 64)
>>> done.version.status, done.created, done.approval_id is not None
(<VersionStatus.PENDING_APPROVAL: 'pending_approval'>, True, True)
>>> registrations.register(spec, actor="ana", environment="0" * 64).created
False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flywheel.llm.registration import (
    PromptVersionReceipt,
    requested_evaluation_set,
    requested_spec,
)
from flywheel.registry.models import VersionStatus

if TYPE_CHECKING:
    from flywheel.llm.catalog import PromptCatalog
    from flywheel.llm.evaluation_sets import EvaluationSet
    from flywheel.llm.prices import PriceTable
    from flywheel.llm.prompts import PromptSpec
    from flywheel.llm.registration import PromptVersionRequest
    from flywheel.registry.models import ModelVersion
    from flywheel.registry.service import RegistryService
    from flywheel.workflows.approvals import ApprovalService

__all__ = ["PromptRegistered", "PromptRegistrations", "register_requested_prompt"]

#: A version in one of these statuses still needs (or is finishing) its approval request.
_ASKING = frozenset({VersionStatus.CANDIDATE, VersionStatus.PENDING_APPROVAL})


@dataclass(frozen=True)
class PromptRegistered:
    """What :meth:`PromptRegistrations.register` did: the version that holds the spec,
    whether it was created now, and its approval's id (``None``: none was asked for)."""

    version: ModelVersion
    created: bool
    approval_id: str | None
    #: The spec as registered (its evaluation set sealed: digest, size, items).
    spec: PromptSpec


class PromptRegistrations:
    """Store a spec, register it as a prompt version and ask for its approval.

    ``approvals`` announces the request (``ApprovalRequested``) with the source the
    training workflow announces its candidates with, which is what notifies approvers.
    """

    def __init__(
        self, *, catalog: PromptCatalog, approvals: ApprovalService, registry: RegistryService
    ) -> None:
        self._catalog = catalog
        self._approvals = approvals
        self._registry = registry

    @property
    def prices(self) -> PriceTable:
        """The price table every registered prompt's model must be in."""
        return self._catalog.prices

    def register(
        self,
        spec: PromptSpec,
        *,
        actor: str,
        environment: str,
        reason: str | None = None,
        evaluation_set: EvaluationSet | None = None,
    ) -> PromptRegistered:
        """Register ``spec`` as ``actor`` (``environment``: the SHA-256 of the registering
        environment's packages, for the lineage) and ask for its approval.

        ``evaluation_set`` is the spec's set as the registration route received it
        (parsed against ``spec``); without it, the file the spec names is read.

        Registering the spec the latest version already holds writes nothing new; it
        finishes an interrupted registration by asking for (or announcing) the approval.

        Raises
        ------
        ConfigError
            ``spec.model_id`` has no price; the evaluation set is invalid.
        RegistryKindError
            ``spec.name`` holds model versions (409).
        """
        added = self._catalog.register(
            spec,
            actor=actor,
            environment=environment,
            reason=reason,
            evaluation_set=evaluation_set,
        )
        version = added.version
        if version.status not in _ASKING:
            found = self._approvals.find_for_version(spec.name, version.version)
            approval_id = found[0].approval_id if found is not None else None
            return PromptRegistered(
                version=version, created=added.created, approval_id=approval_id, spec=added.spec
            )
        model = self._registry.get_model(spec.name)
        doc = self._approvals.request_prompt(
            spec.name,
            version.version,
            requested_by=actor,
            reason=reason,
            summary={
                "provider": str(spec.provider),
                "model_id": spec.model_id,
                "owner": spec.owner,
                "description": spec.description,
                "champion": model.champion,
            },
        )
        return PromptRegistered(
            version=self._registry.get_version(spec.name, version.version),
            created=added.created,
            approval_id=doc.approval_id,
            spec=added.spec,
        )


def register_requested_prompt(
    registrations: PromptRegistrations,
    name: str,
    request: PromptVersionRequest,
    *,
    requested_by: str,
    environment: str,
) -> PromptVersionReceipt:
    """What the registration route does: validate ``request.spec`` for prompt ``name``
    and its evaluation set (``request.evaluation_set``), and register them as
    ``requested_by``, the authenticated caller.

    Raises
    ------
    ConfigError
        400: an invalid spec (naming ``spec.<field>``), another name, no price; a spec
        that names a set without its lines, or lines for a spec that names none.
    PayloadTooLargeError
        413: an evaluation set larger than the route takes.
    InvalidEvaluationSetError
        422: a line of the evaluation set that is not an item (naming the line and field).
    RegistryKindError
        409: ``name`` holds model versions.
    """
    spec = requested_spec(name, request, registrations.prices)
    evaluation_set = requested_evaluation_set(spec, request)
    done = registrations.register(
        spec,
        actor=requested_by,
        environment=environment,
        reason=request.reason,
        evaluation_set=evaluation_set,
    )
    return PromptVersionReceipt(
        prompt=name,
        version=done.version.version,
        status=done.version.status,
        sha256=done.version.artifact.sha256,
        approval_id=done.approval_id,
        created=done.created,
        evaluation=done.spec.evaluation,
    )
