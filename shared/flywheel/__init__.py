"""Flywheel: serverless MLOps for AWS."""
