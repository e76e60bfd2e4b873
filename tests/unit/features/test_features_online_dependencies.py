"""The online path (what the inference function runs) works without pyarrow or pandas."""

from __future__ import annotations

import subprocess
import sys


def test_online_reads_run_with_pyarrow_and_pandas_unavailable() -> None:
    # A fresh interpreter in which importing pyarrow or pandas fails, as in the runtime layer
    script = """
import sys
sys.modules["pyarrow"] = None
sys.modules["pandas"] = None
import flywheel.composition.clients
from datetime import UTC, datetime
from flywheel.composition import InMemoryPlatform
from flywheel.clock import FixedClock
from flywheel.features.models import OnlineRow, values_digest
from tests.feature_support import TRANSFORMS, customer_view

platform = InMemoryPlatform(clock=FixedClock(datetime(2026, 1, 2, tzinfo=UTC)))
store = platform.feature_store(offline=False, transformations=TRANSFORMS)
registered = store.register(customer_view(), actor="ana")
values = {"spend": 1.5, "log_spend": 0.9, "orders": 2, "big_spender": False,
          "segment": "basic", "discount": None}
row = OnlineRow("c1", 1_767_225_600_000_000, 1_767_225_600_000_000, values, values_digest(values))
store.online.write(registered.key, [row])
print(store.online_vector(registered.name, "c1"))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[1.5, 0.9, 2, False, 'basic', None]"
