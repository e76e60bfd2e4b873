"""Training workflow steps (``infra/workflows/training.py``), one handler per Task state."""
