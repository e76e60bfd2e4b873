"""Experiment runs: every training and every search trial, with its parameters and metrics.

Runs live with the registry (``MODEL#<name>`` / ``RUN#<run id>`` records, written through
the records writer) and a search's trials as JSON in the artifacts store; see
:mod:`flywheel.runs.log`.
"""
