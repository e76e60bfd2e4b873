"""Asking for a promotion: ``POST /v1/models/{name}/promotions`` puts ``PromotionRequested``.

The promotion workflow starts from it exactly as from ``VersionApproved`` (canary steps,
checks, promote or roll back): ``flywheel experiment promote-winner`` uses it, so a winner
reaches traffic the way every approved version does. Only an approved version, with no
canary and no experiment running, can be asked for; the requester is the API's
authenticated caller, never a field of the body.

Examples
--------
>>> PromotionRequest.model_validate({"version": 4, "reason": " won the A/B test "}).reason
'won the A/B test'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flywheel.errors import (
    ExperimentInProgressError,
    IllegalTransitionError,
    PromotionInProgressError,
)
from flywheel.registry.models import VersionStatus
from flywheel.serving.experiments import read_experiment

if TYPE_CHECKING:
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService
    from flywheel.workflows.ports import EventPublisher

__all__ = [
    "PROMOTION_REQUESTED",
    "PromotionReceipt",
    "PromotionRequest",
    "PromotionRequests",
]

#: The event's ``detail-type``; the promotion rule matches it with the operator source.
PROMOTION_REQUESTED = "PromotionRequested"


class PromotionRequest(BaseModel):
    """The body of ``POST /v1/models/{name}/promotions``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=10**9)
    #: Why this version should serve now (the experiment's verdict, say); audited by the
    #: workflow's entries and shown in the event.
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class PromotionReceipt(BaseModel):
    """The answer: the event that starts the promotion workflow (asynchronously)."""

    model_name: str
    version: int
    artifact_sha256: str
    requested_by: str
    reason: str
    event_id: str


class PromotionRequests:
    """Puts ``PromotionRequested`` for approved versions, naming who asked.

    Parameters
    ----------
    registry, records
        The registry and its records (the experiment record).
    events
        A publisher with the operator source (``flywheel.operator``).
    """

    def __init__(
        self, *, registry: RegistryService, records: RecordStore, events: EventPublisher
    ) -> None:
        self._registry = registry
        self._records = records
        self._events = events

    def request(
        self, model_name: str, *, version: int, requested_by: str, reason: str
    ) -> PromotionReceipt:
        """Ask the promotion workflow to roll ``version`` out.

        Raises
        ------
        ModelNotFoundError, VersionNotFoundError
            No such model or version (404).
        IllegalTransitionError
            The version is not approved (409): it needs its approval first.
        PromotionInProgressError, ExperimentInProgressError
            A canary or an experiment is running (409).
        EventPublishError
            The bus refused the event (502); nothing was started.
        """
        found = self._registry.get_version(model_name, version)
        if found.status is not VersionStatus.APPROVED:
            raise IllegalTransitionError(
                f"version {version} of {model_name!r} is {found.status}; only an approved "
                "version can be promoted (its approval comes first)",
                current=found.status,
                target=VersionStatus.CANARY,
            )
        model = self._registry.get_model(model_name)
        if model.challenger is not None:
            raise PromotionInProgressError(
                f"version {model.challenger} of {model_name!r} is on canary; wait for its "
                "promotion to finish",
                field="version",
            )
        experiment = read_experiment(self._records, model_name)
        if experiment is not None and experiment[0].running:
            raise ExperimentInProgressError(
                f"{model_name!r} runs the experiment {experiment[0].id}: stop it or promote "
                "its winner (flywheel experiment promote-winner) first",
                field="experiment",
            )
        receipt = PromotionReceipt(
            model_name=model_name,
            version=version,
            artifact_sha256=found.artifact.sha256,
            requested_by=requested_by,
            reason=reason,
            event_id="",
        )
        detail = receipt.model_dump(exclude={"event_id"})
        event_id = self._events.publish(PROMOTION_REQUESTED, detail)
        return receipt.model_copy(update={"event_id": event_id})
