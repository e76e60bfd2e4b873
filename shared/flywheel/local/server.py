"""A moto server on localhost that outlives one CLI command.

``flywheel`` commands in local mode talk to it over HTTP, so state (tables,
buckets, executions) persists from one command to the next until
``flywheel local stop``.  Run directly: ``python -m flywheel.local.server --port 5055``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "flywheel-local",
    "AWS_SECRET_ACCESS_KEY": "flywheel-local",
    "AWS_SESSION_TOKEN": "flywheel-local",
}


def endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def is_running(port: int, timeout: float = 0.5) -> bool:
    """Whether a moto server answers on ``port``."""
    try:
        with urllib.request.urlopen(f"{endpoint(port)}/moto-api/data.json", timeout=timeout):
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def ensure_running(port: int, home: Path, *, wait_seconds: float = 30.0) -> str:
    """Start the server in the background unless one already answers; return its endpoint."""
    if is_running(port):
        return endpoint(port)
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "moto-server.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "flywheel.local.server", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (home / "moto-server.pid").write_text(str(process.pid))
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if is_running(port):
            return endpoint(port)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(
        f"the local moto server did not start on port {port}; see {home / 'moto-server.log'}"
    )


def stop(home: Path) -> bool:
    """Stop the background server started by :func:`ensure_running`."""
    pid_file = home / "moto-server.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
        stopped = True
    except (ProcessLookupError, ValueError):
        stopped = False
    pid_file.unlink(missing_ok=True)
    return stopped


def serve(port: int) -> None:
    """Run moto in this process until terminated."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Flywheel's local AWS stand-in (moto)")
    parser.add_argument("--port", type=int, default=5055)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
