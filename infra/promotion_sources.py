"""Who may promote model versions into a stage (``StageConfig.promotion_sources``, ADR 65).

The model lives with the other stage settings (:mod:`flywheel.project.settings`), so a
team's project file can name the sources; reading the configuration loads no CDK.
"""

from __future__ import annotations

from flywheel.project.settings import PromotionSource

__all__ = ["PromotionSource"]
