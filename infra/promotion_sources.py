"""Who may promote model versions into a stage (``StageConfig.promotion_sources``, ADR 65).

Kept apart from the constructs so that reading the configuration loads no CDK.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flywheel.models import Frozen

__all__ = ["PromotionSource"]


class PromotionSource(Frozen):
    """A stage allowed to promote into this one: its name and its AWS account.

    Examples
    --------
    >>> PromotionSource(stage="dev", account="111111111111").stage
    'dev'
    """

    stage: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,9}$")]
    account: Annotated[str, Field(pattern=r"^\d{12}$")]
