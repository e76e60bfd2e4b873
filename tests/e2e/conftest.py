"""Every end-to-end test gets its own local runtime port and home (never 5055)."""

from __future__ import annotations

from tests.local_support import local_runtime  # noqa: F401 (autouse fixture: used by name)
