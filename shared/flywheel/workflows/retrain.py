"""Manual training runs: ``POST /v1/models/{name}/retrain`` puts ``RetrainRequested``.

The requester is the authenticated caller of the API, never a field of the body; the
event carries it as ``detail.requested_by``, so the run's approval cannot be decided by
the person who asked for it (:mod:`flywheel.workflows.approvals`).

Examples
--------
>>> RetrainRequest.model_validate({"reason": "  new labels  "}).reason
'new labels'
>>> RetrainRequest.model_validate({"reason": "ci", "code_version": "0a1b2c3"}).code_version
'0a1b2c3'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from flywheel.errors import ModelNotFoundError

if TYPE_CHECKING:
    from flywheel.workflows.config import ModelConfigStore
    from flywheel.workflows.ports import EventPublisher

__all__ = [
    "OPERATOR_SOURCE",
    "RETRAIN_REQUESTED",
    "RetrainReceipt",
    "RetrainRequest",
    "RetrainRequests",
]

#: The event's ``detail-type``; the training rule matches it with :data:`OPERATOR_SOURCE`.
RETRAIN_REQUESTED = "RetrainRequested"
#: The only ``source`` the training rule accepts ``RetrainRequested`` from.
OPERATOR_SOURCE = "flywheel.operator"


class RetrainRequest(BaseModel):
    """The body of ``POST /v1/models/{name}/retrain`` (the gateway's model is generated from it)."""

    model_config = ConfigDict(extra="forbid")

    #: Why a run is needed now; recorded with the run and shown to its approvers.
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    #: The git commit the run is for (CI sends the commit it just deployed); the run's
    #: lineage records it as ``code_commit``.
    code_version: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{7,40}$")] | None = None


class RetrainReceipt(BaseModel):
    """The answer: the event that asks for the run (the workflow starts asynchronously)."""

    model_name: str
    requested_by: str
    reason: str
    event_id: str
    code_version: str | None = None


class RetrainRequests:
    """Puts ``RetrainRequested`` for configured models, naming who asked.

    Parameters
    ----------
    configs
        The models' workflow configs: a model without one cannot train.
    events
        A publisher with source :data:`OPERATOR_SOURCE`.
    """

    def __init__(self, *, configs: ModelConfigStore, events: EventPublisher) -> None:
        self._configs = configs
        self._events = events

    def request(
        self, model_name: str, *, requested_by: str, reason: str, code_version: str | None = None
    ) -> RetrainReceipt:
        """Ask for a training run of ``model_name`` (at ``code_version``, if given).

        Raises
        ------
        ModelNotFoundError
            No workflow config is stored under that name (404).
        EventPublishError
            The bus refused the event (502); nothing was started.
        """
        if self._configs.find(model_name) is None:
            raise ModelNotFoundError(
                f"model {model_name!r} is not configured for training", field="model_name"
            )
        detail = {"model_name": model_name, "requested_by": requested_by, "reason": reason}
        if code_version is not None:
            detail["code_version"] = code_version
        event_id = self._events.publish(RETRAIN_REQUESTED, detail)
        return RetrainReceipt(event_id=event_id, **detail)
