"""A moto server on localhost that outlives one CLI command.

``flywheel`` commands in local mode talk to it over HTTP, so state (tables,
buckets, executions) persists from one command to the next until
``flywheel local stop``.  Next to moto (``--port``) listen the runtime's control API
(port + 1) and the stage's REST API (port + 2, SigV4-authenticated; its URL is the
``api_url`` of the stage's platform record, as in a deployed stage).
Run directly: ``python -m flywheel.local.server --port 5055``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, TypeVar

from flywheel.settings import LOCAL_CREDENTIALS

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from flywheel.settings import Settings

S = TypeVar("S", bound="Settings")

__all__ = [
    "LOCAL_CREDENTIALS",
    "api_endpoint",
    "connect",
    "control",
    "endpoint",
    "ensure_running",
    "stop",
]


def endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def api_endpoint(port: int) -> str:
    """Where the stage's REST API listens: two ports above moto (the control API is next)."""
    return f"http://127.0.0.1:{port + 2}"


def is_running(port: int) -> bool:
    """Whether the local server (moto and its runtime control API) answers on ``port``."""
    try:
        control(port, "/resources")
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return True


def ensure_running(port: int, home: Path, *, wait_seconds: float = 180.0) -> str:
    """Start the server in the background unless one already answers; return its endpoint.

    The first start synthesizes the CDK app (cached afterwards) and provisions it.
    """
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


def connect(settings: S) -> S:
    """``settings`` on the local runtime: its endpoint and the resource names it provisioned.

    The runtime on ``settings.local_port`` is started first if none answers there.
    Settings for AWS, or with an endpoint already, come back unchanged.
    """
    if settings.backend != "local" or settings.endpoint_url is not None:
        return settings
    endpoint_url = ensure_running(settings.local_port, settings.local_home)
    described = control(settings.local_port, "/resources")
    resources = dict(described["environment"])
    for route, suffix in (("APPROVAL", "-approval-api"), ("RETRAIN", "-retrain-api")):
        found = [f for f in described.get("functions", []) if f.endswith(suffix)]
        if found:
            resources[f"FLYWHEEL_{route}_FUNCTION"] = found[0]
    return settings.with_resources(resources, endpoint_url=endpoint_url)


def restart(port: int, home: Path, *, wait_seconds: float = 180.0) -> str:
    """A fresh server for ``home``: stop the running one (its state is discarded), start anew.

    Raises
    ------
    RuntimeError
        When a server answers on ``port`` that ``home`` did not start, or it does not stop.
    """
    if is_running(port):
        if not stop(home):
            raise RuntimeError(
                f"a local runtime answers on port {port} but was not started from {home}; "
                "stop it, or set FLYWHEEL_LOCAL_PORT to another port"
            )
        deadline = time.monotonic() + 30.0
        while any(_listening(p) for p in (port, port + 1, port + 2)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local runtime on port {port} did not stop")
            time.sleep(0.1)
    return ensure_running(port, home, wait_seconds=wait_seconds)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


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


def control_endpoint(port: int) -> str:
    """The local runtime's control API (resources, clock, faults, notifications) listens
    next to moto."""
    return f"http://127.0.0.1:{port + 1}"


def control(port: int, path: str, body: Mapping[str, object] | None = None) -> Any:
    """Call the control API of the server on ``port`` (GET without a body, POST with one)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{control_endpoint(port)}{path}",
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def serve(port: int, *, stage: str = "dev") -> None:
    """Run moto plus the local runtime (the synthesized app, bridged) until terminated."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    from flywheel.local.runtime import LocalRuntime

    # Everything in this process (the Step Functions interpreter, the handlers the
    # bridge runs) talks to this very server.
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.update(
        {
            "MOTO_PORT": str(port),
            "AWS_ENDPOINT_URL": endpoint(port),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _configure_moto(port)
    runtime = LocalRuntime(stage=stage).start()
    api = runtime.rest_api()
    api_url = None
    if api is not None:
        # The stage's REST API, found as a deployed stage's is: through its platform record.
        from flywheel.local.api_gateway import make_server

        api_server = make_server(api, port=port + 2)
        threading.Thread(target=api_server.serve_forever, daemon=True).start()
        api_url = f"{api_endpoint(port)}/{api.stage}/"
        runtime.publish_api_url(api_url)
    controller = _control_server(port + 1, runtime, api_url=api_url)
    threading.Thread(target=controller.serve_forever, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    # Executions and handlers may still be running on worker threads (a Wait state on the
    # simulated clock, a capture flush); the state is discarded with the process, so exit
    # at once instead of winding them down: a restart must find the ports free.
    del controller, runtime, server, api
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _configure_moto(port: int) -> None:
    """Turn on moto's Step Functions interpreter in the server (same as ``MOTO_CONFIG``)."""
    request = urllib.request.Request(
        f"{endpoint(port)}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def _control_server(port: int, runtime: Any, *, api_url: str | None = None) -> Any:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Control(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            return

        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/resources":
                self._reply(
                    200,
                    {
                        "environment": runtime.deployment.resource_environment(),
                        "state_machines": runtime.deployment.state_machine_arns(),
                        "functions": sorted(runtime.bridge.functions),
                        "api_url": api_url,
                        "now": runtime.clock.now().isoformat(),
                    },
                )
            elif self.path == "/notifications":
                self._reply(200, {"notifications": runtime.notifications()})
            else:
                self._reply(404, {"error": "unknown path"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/advance":
                self._reply(200, {"fired": runtime.advance(float(body.get("seconds", 0)))})
            elif self.path == "/faults":
                runtime.bridge.inject(str(body["function"]), *[str(f) for f in body["faults"]])
                self._reply(200, {"ok": True})
            elif self.path == "/recycle":
                recycled = runtime.bridge.recycle(str(body["function"]))
                self._reply(200, {"ok": True, "recycled": recycled})
            elif self.path == "/hold-waits":
                runtime.hold_waits(bool(body.get("hold")))
                self._reply(200, {"ok": True})
            elif self.path == "/llm-faults":
                if body.get("clear"):
                    runtime.llm.clear()
                try:
                    runtime.llm.inject(*[str(f) for f in body["faults"]])
                except ValueError as err:
                    self._reply(400, {"error": str(err)})
                    return
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"error": "unknown path"})

    return ThreadingHTTPServer(("127.0.0.1", port), Control)


def main() -> None:
    parser = argparse.ArgumentParser(description="Flywheel's local AWS stand-in (moto)")
    parser.add_argument("--port", type=int, default=5055)
    # `flywheel demo --project --stage` names the project's stage to run.
    serve(parser.parse_args().port, stage=os.environ.get("FLYWHEEL_LOCAL_STAGE", "dev"))


if __name__ == "__main__":
    main()
