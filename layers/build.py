#!/usr/bin/env python3
"""A checkout's shortcut for ``python -m infra.build_assets`` (into ``layers/build``).

Builds the Lambda layers and the training image's context without Docker, then checks
every function against Lambda's size limits; see :mod:`infra.build_assets`.

Usage::

    .venv/bin/python layers/build.py               # build (pip only where requirements changed)
    .venv/bin/python layers/build.py --check-only  # measure an existing build
    .venv/bin/python layers/build.py --skip-image  # layers only (not deployable)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "shared", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from infra.build_assets import main  # noqa: E402 - the checkout must be importable first

if __name__ == "__main__":
    sys.exit(main())
