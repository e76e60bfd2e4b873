"""Settings of the LLM gateway function, read from ``FLYWHEEL_*`` environment variables."""

from __future__ import annotations

from pydantic import Field

from flywheel.settings import Settings

__all__ = ["GatewaySettings"]


class GatewaySettings(Settings):
    """The gateway's configuration (plus the resource names and LLM settings of
    :class:`~flywheel.settings.Settings`: ``llm_policy``, ``llm_usage_table``,
    ``llm_capture_prefix``, ``llm_timeout_seconds``, ``llm_max_attempts``).

    Examples
    --------
    >>> s = GatewaySettings(backend="local")
    >>> (s.role_refresh_seconds, s.shadow_queue, s.capture_enabled)
    (30.0, 16, True)
    """

    #: How long a prompt's routing (aliases, canary weight, experiment) is trusted before
    #: a background refresh (``FLYWHEEL_ROLE_REFRESH_SECONDS``, as the inference function's).
    role_refresh_seconds: float = Field(default=30.0, gt=0)
    #: Prompts whose routing one execution environment keeps (the oldest is forgotten).
    max_routed_prompts: int = Field(default=256, ge=1, le=100_000)
    capture_enabled: bool = True
    capture_max_rows: int = Field(default=500, ge=1)
    capture_max_age_seconds: float = Field(default=30.0, gt=0)
    #: Shadow calls allowed to wait; beyond this they are skipped (and counted).
    shadow_queue: int = Field(default=16, ge=1, le=10_000)
    #: Threads that make shadow calls (each waits on its provider).
    shadow_workers: int = Field(default=2, ge=1, le=64)
