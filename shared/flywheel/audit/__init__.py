"""Append-only, tamper-evident audit trail: one hash chain per model."""
