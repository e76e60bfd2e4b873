"""Who may put which events on the project bus: ``events:source`` is bound to the role."""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam

from flywheel.llm.meter import LLM_SOURCE
from flywheel.workflows.approvals import ANNOUNCEMENT_SOURCE
from flywheel.workflows.retrain import OPERATOR_SOURCE

#: Event sources, one per producer. Rules match on source *and* detail-type, and each
#: producer's role may only put events with its own source, so e.g. only the approval
#: function can start a promotion.
SOURCE_APPROVALS = "flywheel.approvals"
SOURCE_MONITORING = "flywheel.monitoring"
#: ``RetrainRequested``: only the retrain API's role may put it (the bus policy says so).
SOURCE_OPERATOR = OPERATOR_SOURCE
SOURCE_AUDIT = "flywheel.audit"
#: What every Flywheel source starts with: the bus admits these from the stage's roles only.
SOURCE_PREFIX = "flywheel."
#: The training workflow's own announcements (``ApprovalRequested``).
SOURCE_WORKFLOWS = ANNOUNCEMENT_SOURCE
#: The LLM side: the budget meter's ``BudgetThresholdReached``.
SOURCE_LLM = LLM_SOURCE


def grant_put_events(grantee: iam.IGrantable, bus: events.IEventBus, source: str) -> iam.Grant:
    """``events:PutEvents`` on ``bus`` for events whose ``source`` is ``source`` only."""
    return iam.Grant.add_to_principal(
        grantee=grantee,
        actions=["events:PutEvents"],
        resource_arns=[bus.event_bus_arn],
        conditions={"StringEquals": {"events:source": source}},
    )
