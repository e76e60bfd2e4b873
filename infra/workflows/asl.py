"""Amazon States Language building blocks (JSONPath only).

Pure data, no CDK import: the builders return plain dicts, so tests and the local runtime
can build or inspect a definition without synthesizing. The CDK app passes Lambda ARNs
(tokens) in and serializes with ``Stack.to_json_string``, which makes the template's
``DefinitionString`` an ``Fn::Join`` whose only intrinsics are those ARNs.

Conventions every Task follows (checked by ``tests/infra``):

- ``Resource`` ``arn:aws:states:::lambda:invoke`` with ``FunctionName`` and
  ``"Payload.$": "$"`` (the whole state goes to the handler);
- the handler's return value lands at ``$.<result key>.Payload`` (``ResultSelector``
  drops the invoke metadata);
- ``Retry`` on transient Lambda errors (bounded attempts, exponential backoff, full
  jitter, capped delay) and on optimistic-concurrency conflicts;
- ``Catch`` of ``States.ALL`` into ``$.error`` and on to the failure path;
- a ``TimeoutSeconds`` a little above the function's own timeout.

No JSONata, no ``Assign``/variables, no nested ``states:startExecution``. The only other
Tasks are the training jobs' ``.sync`` states (:mod:`infra.workflows.training_engines`).
"""

from __future__ import annotations

from typing import Any

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_INVOKE_WAIT_FOR_TOKEN = "arn:aws:states:::lambda:invoke.waitForTaskToken"

#: Errors of the Lambda service itself (not of the handler): always safe to retry.
TRANSIENT_LAMBDA_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
)
#: Raised by the domain when a conditional write lost a race; the step is idempotent.
CONFLICT_ERRORS = ("ConcurrentModificationError",)

State = dict[str, Any]


def retries() -> list[State]:
    """The retry policy of every Lambda task (bounded: at most 6 tries, 60 s apart max)."""
    return [
        {
            "ErrorEquals": list(TRANSIENT_LAMBDA_ERRORS),
            "IntervalSeconds": 2,
            "MaxAttempts": 5,
            "BackoffRate": 2.0,
            "MaxDelaySeconds": 60,
            "JitterStrategy": "FULL",
        },
        {
            "ErrorEquals": list(CONFLICT_ERRORS),
            "IntervalSeconds": 1,
            "MaxAttempts": 3,
            "BackoffRate": 2.0,
            "MaxDelaySeconds": 10,
            "JitterStrategy": "FULL",
        },
    ]


def catch_all(next_state: str) -> list[State]:
    """Send any error, with its name and cause at ``$.error``, to ``next_state``."""
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": next_state}]


def lambda_task(
    function_arn: str,
    *,
    result_key: str,
    timeout_seconds: int,
    on_error: str,
    next_state: str | None = None,
    comment: str | None = None,
) -> State:
    """A ``lambda:invoke`` task that passes the whole state and stores the handler's result."""
    state: State = {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
        "ResultSelector": {"Payload.$": "$.Payload"},
        "ResultPath": f"$.{result_key}",
        "TimeoutSeconds": timeout_seconds,
        "Retry": retries(),
        "Catch": catch_all(on_error),
    }
    if comment:
        state["Comment"] = comment
    return _then(state, next_state)


def callback_task(
    function_arn: str,
    *,
    result_key: str,
    payload: dict[str, str],
    timeout_seconds: int,
    heartbeat_seconds: int,
    catches: list[State],
    next_state: str | None = None,
    comment: str | None = None,
) -> State:
    """A ``lambda:invoke.waitForTaskToken`` task: the handler stores ``$$.Task.Token``.

    The execution resumes when someone calls ``SendTaskSuccess`` (its output lands at
    ``$.<result_key>``, not wrapped in ``Payload``) or ``SendTaskFailure``; it fails with
    ``States.Timeout`` / ``States.HeartbeatTimeout`` otherwise.
    """
    if heartbeat_seconds >= timeout_seconds:
        raise ValueError("HeartbeatSeconds must be smaller than TimeoutSeconds")
    state: State = {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE_WAIT_FOR_TOKEN,
        "Parameters": {
            "FunctionName": function_arn,
            "Payload": {**payload, "task_token.$": "$$.Task.Token"},
        },
        "ResultPath": f"$.{result_key}",
        "TimeoutSeconds": timeout_seconds,
        "HeartbeatSeconds": heartbeat_seconds,
        "Retry": retries(),
        "Catch": catches,
    }
    if comment:
        state["Comment"] = comment
    return _then(state, next_state)


def run_context(next_state: str) -> State:
    """First state: record the execution's identity at ``$.run`` (input kept as is)."""
    return {
        "Type": "Pass",
        "Comment": "Record which execution this is; handlers use it for locks and lineage.",
        "Parameters": {
            "execution_id.$": "$$.Execution.Id",
            "execution_name.$": "$$.Execution.Name",
            "started_at.$": "$$.Execution.StartTime",
            "state_machine.$": "$$.StateMachine.Name",
        },
        "ResultPath": "$.run",
        "Next": next_state,
    }


def succeed(comment: str) -> State:
    return {"Type": "Succeed", "Comment": comment}


def fail(error: str, cause: str) -> State:
    return {"Type": "Fail", "Error": error, "Cause": cause}


def _then(state: State, next_state: str | None) -> State:
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


def task_states(definition: State) -> dict[str, State]:
    """The ``Task`` states of a definition, by name."""
    return {k: v for k, v in definition["States"].items() if v["Type"] == "Task"}
