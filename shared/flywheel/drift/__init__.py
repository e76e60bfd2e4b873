"""Drift: reference profiles of training data (and, later, drift scores against them)."""
