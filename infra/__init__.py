"""Flywheel's AWS CDK app: typed stage config, one construct per concern, stacks that compose them.

Entry point: ``python -m infra.app`` (what ``cdk.json`` runs). Nothing here calls AWS at
synth time; every environment difference lives in :mod:`infra.config`.
"""
