"""Workflows: the continuous-training loop's use cases, as plain domain services.

What the training and promotion state machines (``infra/workflows``) call, one method
per Lambda task, plus the human approval gate in between.  Import the submodules
directly: this package imports nothing, so the approval and promotion functions never
load the training libraries.

See Also
--------
flywheel.workflows.config : One :class:`~flywheel.workflows.config.ModelConfig` per
    model (training config, gate policy, retraining and approval policies).
flywheel.workflows.records : Run locks, approvals, model configs and serving maps
    stored next to the registry (one transaction with the audit entry).
flywheel.workflows.runs : At most one training run per model, cooldown, dedupe.
flywheel.workflows.training : Validate, snapshot, train, evaluate, gate, register.
flywheel.workflows.approvals : Task tokens bound to model + version + SHA-256.
flywheel.workflows.promotion : Publish, canary, check, promote or roll back.
flywheel.workflows.failures : What ``record_failure`` does for either workflow.
"""
