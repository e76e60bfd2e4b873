"""Promotion workflow steps (``infra/workflows/promotion.py``) and the shared ``record_failure``."""
