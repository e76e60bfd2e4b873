"""One error hierarchy for the whole domain.

Every error carries a stable ``code`` and, where it applies, the ``field`` that
was wrong.  HTTP adapters map codes to statuses with :data:`HTTP_STATUS_BY_CODE`;
the CLI prints ``str(error)`` on one line and exits non-zero.  Messages are ours:
they never carry exception text from libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import ValidationError


class FlywheelError(Exception):
    """Base class of every error Flywheel raises on purpose.

    Examples
    --------
    >>> err = ModelNotFoundError("model 'churn' does not exist", field="name")
    >>> (err.code, err.field, str(err))
    ('model_not_found', 'name', "model 'churn' does not exist")
    """

    code: ClassVar[str] = "flywheel_error"

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe body for an API response."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class NotFoundError(FlywheelError):
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class VersionNotFoundError(NotFoundError):
    code = "version_not_found"


class InvalidInputError(FlywheelError):
    """Input that fails validation (a field, a config file, a page token)."""

    code = "invalid_input"


class ReasonRequiredError(InvalidInputError):
    code = "reason_required"


class InvalidPageTokenError(InvalidInputError):
    code = "invalid_page_token"


class ConfigError(InvalidInputError):
    code = "invalid_config"


def config_error(error: ValidationError, *, subject: str = "config") -> ConfigError:
    """One :class:`ConfigError` naming the first bad field of a validated document;
    ``details`` lists them all (``subject`` names a problem with no field)."""
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        ctx = item.get("ctx") or {}
        if "subfield" in ctx:
            loc.append(str(ctx["subfield"]))
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append((".".join(loc) or subject, message))
    field, message = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ConfigError(
        f"{field}: {message}{more}",
        field=field,
        details={"errors": [{"field": f, "message": m} for f, m in problems]},
    )


class InvalidRequestError(InvalidInputError):
    """A request that does not follow the API contract (bad JSON, wrong envelope shape)."""

    code = "invalid_request"


class InvalidRecordsError(InvalidInputError):
    """Well-formed records that fail the model version's input schema.

    ``details["errors"]`` lists every problem found, one ``{"row", "field", "reason"}``
    per bad value (capped; ``details["truncated"]`` says when more were found).
    """

    code = "invalid_records"


class NotExplainableError(InvalidInputError):
    """Explanations asked of a model version that was registered without an explainer."""

    code = "not_explainable"


class PayloadTooLargeError(InvalidInputError):
    """A batch with more records, or a body with more bytes, than the API accepts."""

    code = "payload_too_large"


class InvalidLabelsError(InvalidInputError):
    """Well-formed feedback whose labels the model cannot have produced (unknown class, ...).

    ``details["errors"]`` lists every bad label as ``{"row", "field", "reason"}``.
    """

    code = "invalid_labels"


class ConflictError(FlywheelError):
    code = "conflict"


class LabelConflictError(ConflictError):
    """Feedback that gives an already labelled prediction a different label (nothing stored)."""

    code = "label_conflict"


class IllegalTransitionError(ConflictError):
    """A status change that the lifecycle does not allow from the current status."""

    code = "illegal_transition"

    def __init__(self, message: str, *, current: str, target: str) -> None:
        super().__init__(message, field="status", details={"current": current, "target": target})
        self.current = current
        self.target = target


class RegistryKindError(ConflictError):
    """A version of one kind registered under a name that holds the other (model, prompt)."""

    code = "registry_kind_mismatch"

    @classmethod
    def of(cls, name: str, held: str, wanted: str) -> RegistryKindError:
        """The error for ``name``, which holds ``held`` versions, given a ``wanted`` one.

        Examples
        --------
        >>> str(RegistryKindError.of("churn", "model", "prompt"))
        "'churn' holds model versions, not prompt versions; choose another name"
        """
        return cls(
            f"{name!r} holds {held} versions, not {wanted} versions; choose another name",
            field="name",
            details={"kind": held},
        )


class ConcurrentModificationError(ConflictError):
    """Someone else changed the same record first; re-read and try again."""

    code = "concurrent_modification"


class NoPreviousChampionError(ConflictError):
    code = "no_previous_champion"


class ArtifactError(FlywheelError):
    code = "artifact_error"


class ModelUnavailableError(FlywheelError):
    """A serving deployment could not load its pinned model (retried on the next request)."""

    code = "model_unavailable"


class ArtifactIntegrityError(ArtifactError):
    """Stored bytes do not match the SHA-256 recorded at upload; nothing was loaded."""

    code = "artifact_integrity"


class InvalidArtifactError(ArtifactError):
    """An ONNX file that fails validation (checker, op domains, schema, size)."""

    code = "invalid_artifact"


class ArtifactNotFoundError(NotFoundError):
    code = "artifact_not_found"


class TrainingError(FlywheelError):
    code = "training_error"


class ParityError(TrainingError):
    """The ONNX model does not reproduce scikit-learn's outputs within tolerance."""

    code = "parity_failed"


class DatasetError(InvalidInputError):
    code = "invalid_dataset"


class ProfileMismatchError(InvalidInputError):
    """Two data profiles that cannot be combined (different features or bin edges)."""

    code = "profile_mismatch"


class InvalidWindowError(InvalidInputError):
    """A window of captured data that cannot be read or lacks a feature of the profile."""

    code = "invalid_window"


# -- workflows: approvals, run locks, promotion ----------------------------------------------------
class UnauthenticatedError(FlywheelError):
    """The request carries no caller identity (no IAM principal, no Cognito claims)."""

    code = "unauthenticated"


class ForbiddenError(FlywheelError):
    code = "forbidden"


class ApproverNotAllowedError(ForbiddenError):
    """The approver is the identity that requested the approval (four-eyes rule)."""

    code = "approver_not_allowed"


class ApprovalNotFoundError(NotFoundError):
    code = "approval_not_found"


class ModelConfigNotFoundError(NotFoundError):
    code = "model_config_not_found"


class ApprovalAlreadyDecidedError(ConflictError):
    """The approval was decided before (a replay, or a second approver)."""

    code = "approval_already_decided"


class ApprovalArtifactMismatchError(ConflictError):
    """The artifact under decision is not the one the approval was requested for."""

    code = "approval_artifact_mismatch"


class PromotionInProgressError(ConflictError):
    """Another version of the model is already on canary."""

    code = "promotion_in_progress"


class ExperimentInProgressError(ConflictError):
    """The model already runs a shadow or A/B experiment (one at a time)."""

    code = "experiment_in_progress"


class ExperimentRefusedError(ConflictError):
    """An experiment cannot start or end that way (no champion, a version not approved, ...)."""

    code = "experiment_refused"


class ExperimentNotFoundError(NotFoundError):
    """No experiment is running for the model."""

    code = "experiment_not_found"


class GoneError(FlywheelError):
    code = "gone"


class ApprovalExpiredError(GoneError):
    """The approval window closed; the workflow no longer waits for a decision."""

    code = "approval_expired"


class DataValidationError(DatasetError):
    """Training data that loads but fails the model's data policy (too few rows, ...)."""

    code = "data_validation_failed"


class ServingControlError(FlywheelError):
    """Publishing a version or moving alias routing of an inference function failed."""

    code = "serving_control_error"


class EventPublishError(FlywheelError):
    code = "event_publish_failed"


class TaskTokenError(FlywheelError):
    """Step Functions refused a task token (timed out, unknown or already used)."""

    code = "task_token_rejected"


# -- LLM applications: prompts and providers -----------------------------------------------------
class InvalidEvaluationSetError(ConfigError):
    """An evaluation set sent to the registration route with a line that is not an item
    of the prompt's set (not JSON, a bad field, variables the prompt refuses).

    ``field`` is ``evaluation_set``; the message names the line and the item's field
    (``evaluation_set line 3: variables.ticket: required``), ``details["errors"]`` the
    same as ``{"row", "field", "reason"}`` (``row``: the line's index in the body's list).
    """

    code = "invalid_evaluation_set"


class PromptVariablesError(InvalidInputError):
    """Variables that do not fit a prompt's input schema (missing, unknown, too long, ...).

    ``field`` names the first variable at fault (``variables.<name>``); ``details["errors"]``
    lists every problem as ``{"field", "reason"}``.
    """

    code = "invalid_variables"


class ProviderError(FlywheelError):
    """The model provider failed to answer (an error it reported, or an unreadable answer).

    ``details["retryable"]`` says whether a retry may succeed (the provider was unavailable).
    """

    code = "provider_error"


class ProviderThrottledError(ProviderError):
    """The provider refused the call for its rate limits (retried with backoff first)."""

    code = "provider_throttled"


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the timeout."""

    code = "provider_timeout"


class PromptNotFoundError(ModelNotFoundError):
    """No prompt of that name (unknown, or the name holds model versions)."""

    code = "prompt_not_found"


class NoChampionError(NotFoundError):
    """The prompt has neither a champion nor a canary: no version answers calls yet."""

    code = "no_champion"


class InvalidOutputError(ProviderError):
    """The answer is not JSON of the prompt's output schema, even after one repair retry.

    ``details["errors"]`` lists every problem as ``{"row", "field", "reason"}``
    (``field`` is ``output`` or a path below it); the 502 body shows them.
    """

    code = "invalid_output"


class EvaluationUnavailableError(ProviderError):
    """An evaluation could not be finished: the provider or an evaluator was throttled,
    timed out or unavailable (after its own retries). The promotion workflow retries the
    step, then records ``evaluation_failed``; it never passes a candidate by default."""

    code = "evaluation_unavailable"


class GuardrailUnavailableError(ProviderError):
    """A prompt's guardrail could not judge a call (its evaluator failed, throttled or
    timed out); with the policy's ``on_error: block`` nothing unjudged is answered (503)."""

    code = "guardrail_unavailable"


class BudgetExceededError(ConflictError):
    """A call would exceed a cost budget; nothing was charged (HTTP 429).

    ``details`` holds ``budget`` (``prompt:<name>`` or ``team:<tag>``), ``period``,
    ``period_key``, ``limit`` and ``retry_after_seconds`` (until the period ends, UTC);
    :attr:`retry_after` is the same number, for a ``Retry-After`` header.
    """

    code = "budget_exceeded"

    @property
    def retry_after(self) -> int:
        return int(self.details["retry_after_seconds"])


HTTP_STATUS_BY_CODE: dict[str, int] = {
    FlywheelError.code: 500,
    NotFoundError.code: 404,
    ModelNotFoundError.code: 404,
    VersionNotFoundError.code: 404,
    ArtifactNotFoundError.code: 404,
    InvalidInputError.code: 400,
    ReasonRequiredError.code: 400,
    InvalidPageTokenError.code: 400,
    ConfigError.code: 400,
    InvalidRequestError.code: 400,
    InvalidRecordsError.code: 422,
    NotExplainableError.code: 422,
    PayloadTooLargeError.code: 413,
    InvalidLabelsError.code: 422,
    DatasetError.code: 400,
    ProfileMismatchError.code: 400,
    InvalidWindowError.code: 422,
    ConflictError.code: 409,
    IllegalTransitionError.code: 409,
    ConcurrentModificationError.code: 409,
    RegistryKindError.code: 409,
    NoPreviousChampionError.code: 409,
    LabelConflictError.code: 409,
    ArtifactError.code: 500,
    ModelUnavailableError.code: 503,
    ArtifactIntegrityError.code: 500,
    InvalidArtifactError.code: 422,
    TrainingError.code: 422,
    ParityError.code: 422,
    UnauthenticatedError.code: 401,
    ForbiddenError.code: 403,
    ApproverNotAllowedError.code: 403,
    ApprovalNotFoundError.code: 404,
    ModelConfigNotFoundError.code: 404,
    ApprovalAlreadyDecidedError.code: 409,
    ApprovalArtifactMismatchError.code: 409,
    PromotionInProgressError.code: 409,
    ExperimentInProgressError.code: 409,
    ExperimentRefusedError.code: 409,
    ExperimentNotFoundError.code: 404,
    GoneError.code: 410,
    ApprovalExpiredError.code: 410,
    DataValidationError.code: 422,
    ServingControlError.code: 502,
    EventPublishError.code: 502,
    TaskTokenError.code: 502,
    PromptVariablesError.code: 422,
    InvalidEvaluationSetError.code: 422,
    ProviderError.code: 502,
    ProviderThrottledError.code: 429,
    ProviderTimeoutError.code: 504,
    BudgetExceededError.code: 429,
    PromptNotFoundError.code: 404,
    NoChampionError.code: 404,
    InvalidOutputError.code: 502,
    EvaluationUnavailableError.code: 503,
    GuardrailUnavailableError.code: 503,
}


def http_status_for(error: FlywheelError) -> int:
    """Map an error to its HTTP status: its code's, else its nearest base class's.

    Errors defined next to their feature (``EntityNotFoundError`` is a
    :class:`NotFoundError`) answer like their base without an entry here.

    Examples
    --------
    >>> http_status_for(VersionNotFoundError("no version 3"))
    404
    """
    for cls in type(error).__mro__:
        code = getattr(cls, "code", None)
        if code in HTTP_STATUS_BY_CODE:
            return HTTP_STATUS_BY_CODE[code]
    return 500


class NotPermittedError(ForbiddenError):
    """The caller may not make this change (a capability or a policy forbids it)."""

    code = "not_permitted"


def _subclasses(cls: type[FlywheelError]) -> list[type[FlywheelError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def error_from_dict(body: dict[str, Any]) -> FlywheelError:
    """Rebuild the error :meth:`FlywheelError.to_dict` described (another process raised it).

    The class is the most specific one with that ``code``; unknown codes give a plain
    :class:`FlywheelError` carrying the code.

    Examples
    --------
    >>> err = error_from_dict({"code": "illegal_transition", "message": "no",
    ...                        "field": "status", "details": {"current": "a", "target": "b"}})
    >>> type(err).__name__, err.field, err.current
    ('IllegalTransitionError', 'status', 'a')
    """
    code = str(body.get("code", FlywheelError.code))
    by_code = {c.code: c for c in _subclasses(FlywheelError)}
    cls = by_code.get(code, FlywheelError)
    error = cls.__new__(cls)
    message = str(body.get("message", code))
    Exception.__init__(error, message)
    error.message = message
    error.field = body.get("field")
    error.details = dict(body.get("details") or {})
    if isinstance(error, IllegalTransitionError):
        error.current = str(error.details.get("current", ""))
        error.target = str(error.details.get("target", ""))
    if cls is FlywheelError and code != FlywheelError.code:
        error.details.setdefault("code", code)
    return error
