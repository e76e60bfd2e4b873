"""A user's own model code: Flywheel imports ``irispkg.models:build`` and fits what it returns."""

__version__ = "0.1.0"
