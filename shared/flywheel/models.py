"""The base of Flywheel's immutable records; every package may import it (it imports pydantic only).

Examples
--------
>>> class Point(Frozen):
...     x: int
>>> Point(x=1).model_config["frozen"], Point.model_config["extra"]
(True, 'forbid')
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Base for immutable domain records: no assignment after construction, no unknown fields.

    A subclass that needs more (e.g. ``ser_json_inf_nan``) adds it in its own
    ``model_config``; pydantic merges it with this one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
