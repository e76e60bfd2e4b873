"""Workflows: the continuous-training loop's use cases, as plain domain services.

What the training and promotion state machines (``infra/workflows``) call, one method
per Lambda task, plus the human approval gate in between:

- :mod:`flywheel.workflows.config`: one :class:`~flywheel.workflows.config.ModelConfig`
  per model (training config, gate policy, retraining and approval policies);
- :mod:`flywheel.workflows.records`: run locks, approvals, model configs and serving
  maps stored next to the registry (one transaction with the audit entry);
- :mod:`flywheel.workflows.runs`: at most one training run per model, cooldown, dedupe;
- :mod:`flywheel.workflows.training`: validate, snapshot, train, evaluate, gate, register;
- :mod:`flywheel.workflows.approvals`: task tokens bound to model + version + SHA-256;
- :mod:`flywheel.workflows.promotion`: publish, canary, check, promote or roll back;
- :mod:`flywheel.workflows.failures`: what ``record_failure`` does for either workflow.

Import the submodules directly: this package imports nothing, so the approval and
promotion functions never load the training libraries.
"""
