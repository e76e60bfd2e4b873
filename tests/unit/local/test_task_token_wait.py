"""The local runtime's wait of a ``waitForTaskToken`` task with a heartbeat: an answer that
arrived while the task's Lambda still ran resumes the execution at once."""

from __future__ import annotations

import threading
import time
from typing import Any

from moto.stepfunctions.parser.asl.eval.callback.callback import (
    CallbackEndpoint,
    CallbackOutcomeSuccess,
    HeartbeatTimedOut,
)

from flywheel.local.runtime import _wait_for_task_token_heartbeat


class _Env:
    def __init__(self) -> None:
        self.running = True

    def is_running(self) -> bool:
        return self.running


def _endpoint() -> CallbackEndpoint:
    return CallbackEndpoint(callback_id="token")


def _wait(endpoint: CallbackEndpoint, env: Any, heartbeat_seconds: int) -> tuple[Any, float]:
    heartbeat = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=heartbeat_seconds)
    started = time.monotonic()
    outcome = _wait_for_task_token_heartbeat(None, env, endpoint, heartbeat)
    return outcome, time.monotonic() - started


def test_an_approval_decided_before_the_wait_began_resumes_the_task() -> None:
    # Given the approver answered while the RequestApproval Lambda still ran: the outcome
    # is set before moto sets the heartbeat up (its own wait would sleep a whole heartbeat)
    endpoint = _endpoint()
    endpoint.notify(CallbackOutcomeSuccess(callback_id="token", output='{"ok": true}'))

    outcome, took = _wait(endpoint, _Env(), heartbeat_seconds=3600)

    assert isinstance(outcome, CallbackOutcomeSuccess)
    assert took < 5  # not the hour-long heartbeat


def test_an_answer_during_the_wait_resumes_it() -> None:
    endpoint = _endpoint()
    answer = CallbackOutcomeSuccess(callback_id="token", output="{}")
    threading.Timer(0.3, endpoint.notify, args=(answer,)).start()

    outcome, took = _wait(endpoint, _Env(), heartbeat_seconds=3600)

    assert outcome is answer
    assert took < 5


def test_a_missing_heartbeat_still_times_the_task_out() -> None:
    outcome, took = _wait(_endpoint(), _Env(), heartbeat_seconds=1)

    assert isinstance(outcome, HeartbeatTimedOut)
    assert 0.9 <= took < 5


def test_a_stopped_execution_stops_waiting() -> None:
    env = _Env()
    threading.Timer(0.3, lambda: setattr(env, "running", False)).start()

    outcome, _ = _wait(_endpoint(), env, heartbeat_seconds=3600)

    assert outcome is None
