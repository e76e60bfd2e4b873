"""Settings of one inference deployment, read from ``FLYWHEEL_*`` environment variables.

A published Lambda version carries its own environment, so these settings
*are* the pin: ``FLYWHEEL_MODEL_NAME`` and ``FLYWHEEL_MODEL_VERSION`` name the
one model version the function serves for its whole life.
"""

from __future__ import annotations

import os

from pydantic import Field, model_validator

from flywheel.serving.capture import DEFAULT_CAPTURE_PREFIX
from flywheel.serving.routing import AbTest
from flywheel.serving.validation import DEFAULT_MAX_RECORDS
from flywheel.settings import Settings

__all__ = ["PIN_VARIABLES", "ServingSettings", "environment_pin"]

#: The variables that make two execution environments serve different things.
PIN_VARIABLES = (
    "FLYWHEEL_MODEL_NAME",
    "FLYWHEEL_MODEL_VERSION",
    "FLYWHEEL_SHADOW_VERSION",
    "FLYWHEEL_AB_CHALLENGER_VERSION",
)


class ServingSettings(Settings):
    """The inference function's configuration (plus the resource names of :class:`Settings`).

    Examples
    --------
    >>> s = ServingSettings(model_name="churn", model_version="3", backend="local")
    >>> (s.model_name, s.model_version, s.max_batch_records)
    ('churn', '3', 100)
    """

    model_name: str | None = Field(default=None, description="FLYWHEEL_MODEL_NAME")
    model_version: str = Field(
        default="champion",
        pattern=r"^([1-9][0-9]*|champion|challenger)$",
        description="A version number (published versions) or an alias, resolved at start-up.",
    )
    max_batch_records: int = Field(default=DEFAULT_MAX_RECORDS, ge=1, le=10_000)
    capture_enabled: bool = True
    capture_prefix: str = DEFAULT_CAPTURE_PREFIX
    capture_max_rows: int = Field(default=500, ge=1)
    capture_max_age_seconds: float = Field(default=30.0, gt=0)
    #: A fixed shadow version or A/B test: a local override (``flywheel serve``, tests)
    #: that replaces the registry's experiments (``flywheel experiment``, ADR 75).
    shadow_version: int | None = Field(default=None, ge=1)
    ab_challenger_version: int | None = Field(default=None, ge=1)
    ab_weight: float = Field(default=0.5, gt=0, lt=1)
    ab_salt: str = "ab"
    role_refresh_seconds: float = Field(default=30.0, gt=0)
    #: Online feature view that entity-only requests read (``FLYWHEEL_FEATURE_VIEW``).
    feature_view: str | None = None
    #: Its version (``None``: the latest, re-read every minute; pin it in production).
    feature_view_version: int | None = Field(default=None, ge=1)
    intra_op_threads: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _prefix_shape(self) -> ServingSettings:
        if self.capture_prefix and not self.capture_prefix.endswith("/"):
            raise ValueError("capture_prefix must end with '/'")
        return self

    @property
    def ab_test(self) -> AbTest | None:
        """The A/B test, when ``FLYWHEEL_AB_CHALLENGER_VERSION`` is set."""
        if self.ab_challenger_version is None:
            return None
        return AbTest(
            challenger=self.ab_challenger_version, weight=self.ab_weight, salt=self.ab_salt
        )


def environment_pin() -> tuple[str | None, ...]:
    """The current values of :data:`PIN_VARIABLES` (a cache key for composition roots).

    In Lambda it never changes within an execution environment; in-process
    runtimes that host several "versions" (``flywheel serve``, the Lambda bridge)
    switch the environment per invocation and so get one service per pin.

    Examples
    --------
    >>> len(environment_pin()) == len(PIN_VARIABLES)
    True
    """
    return tuple(os.environ.get(name) for name in PIN_VARIABLES)
