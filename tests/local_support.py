"""A local runtime port of each test's own, so tests never meet another runtime.

The local runtime serves moto on ``FLYWHEEL_LOCAL_PORT`` (default 5055), its control
API on the next port and the stage's REST API on the one after. A test that starts one
(``flywheel demo``, or any command that falls back to the local backend) must not take
5055: a user's demo may be running there, and parallel workers (``pytest -n``) would
share one runtime.
"""

from __future__ import annotations

import random
import socket
from typing import TYPE_CHECKING

import pytest

from flywheel.local import server

if TYPE_CHECKING:
    from collections.abc import Iterator

# Below Linux's ephemeral range (32768-60999), where the kernel picks the source ports
# of outgoing connections: a port chosen there could be taken before the runtime binds it.
_LOW, _HIGH = 20000, 32766


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair() -> int:
    """A port ``p`` such that ``p`` (moto), ``p + 1`` (control API) and ``p + 2`` (REST API)
    are free.

    Examples
    --------
    >>> port = free_port_pair()
    >>> _free(port) and _free(port + 1) and _free(port + 2)
    True
    """
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(_LOW, _HIGH - 1)
        if all(_free(p) for p in (port, port + 1, port + 2)):
            return port
    raise RuntimeError(f"no three consecutive free ports between {_LOW} and {_HIGH}")


@pytest.fixture(autouse=True)
def local_runtime(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """``FLYWHEEL_LOCAL_PORT`` (a free pair) and ``FLYWHEEL_LOCAL_HOME`` of this test.

    Autouse where a conftest imports it. A command that falls back to the local
    backend then starts its own runtime instead of using, or leaving running, one on
    the default port; a runtime started from this home is stopped afterwards.
    """
    home = tmp_path_factory.mktemp("flywheel-home")
    env = {"FLYWHEEL_LOCAL_PORT": str(free_port_pair()), "FLYWHEEL_LOCAL_HOME": str(home)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        yield env
    finally:
        server.stop(home)
