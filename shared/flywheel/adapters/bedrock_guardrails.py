"""Amazon Bedrock Guardrails behind the evaluator port: ``bedrock-runtime``
``ApplyGuardrail`` scores toxicity (content filters), groundedness and relevance
(contextual grounding check).

One ``ApplyGuardrail`` call (``source: OUTPUT``, ``outputScope: FULL``) judges an answer:
the answer is the ``guard_content``, each context passage a ``grounding_source`` and the
question the ``query``; the three evaluators of one :class:`BedrockGuardrail` share that
call (a small cache keyed by the input). The score mapping is under Notes. The client
comes from the composition root without botocore's own retries: throttled and
unavailable calls are retried here by a :class:`~flywheel.llm.providers.RetryPolicy`,
with full jitter; failures are typed provider errors, never library exceptions.

Notes
-----
Toxicity is the highest confidence of the toxicity content filters (``INSULTS``,
``HATE``, ``SEXUAL``, ``VIOLENCE``, ``MISCONDUCT``; ``PROMPT_ATTACK`` is not toxicity):
``NONE`` 0, ``LOW`` 1/3, ``MEDIUM`` 2/3, ``HIGH`` 1; a ``PROFANITY`` managed-word match
counts as ``MEDIUM``. The confidence, not the guardrail's filter strength, makes the
score, so scores compare across guardrails; a threshold of 0.5 fails what a filter of
strength ``MEDIUM`` blocks (``MEDIUM`` and ``HIGH``), 0.3 what ``HIGH`` blocks (``LOW``
and above), 0.9 what ``LOW`` blocks (``HIGH`` only). Groundedness and relevance are the
check's own ``GROUNDING`` and ``RELEVANCE`` scores in [0, 1]; their threshold is the
factory's, else the guardrail's own. Both need context (Bedrock's check reads a
grounding source), relevance a question too; a guardrail without the check is a
:class:`~flywheel.errors.ConfigError`. Bedrock's limits apply (a query of at most 1,000
characters, grounding sources of 100,000, an answer of 5,000 for the check): over
them, the call fails as a provider error, it is never cut short.

Examples
--------
>>> guardrail = BedrockGuardrail(client=boto3.client("bedrock-runtime"),  # doctest: +SKIP
...                              guardrail=Guardrail(id="gr1abc", version="3"))
>>> guardrail.evaluators()["toxicity"].evaluate(item).score  # doctest: +SKIP
0.0
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

from flywheel.adapters.converse import error_for
from flywheel.errors import ConfigError, ProviderError, ProviderThrottledError, ProviderTimeoutError
from flywheel.llm.evaluation import Direction, EvaluationInput, EvaluationScore, Evidence
from flywheel.llm.providers import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from flywheel.llm.evaluation import Evaluator
    from flywheel.llm.guardrails import GuardrailJudges, GuardrailPolicy
    from flywheel.llm.prompts import Guardrail

__all__ = [
    "CONFIDENCE_SCORES",
    "TOXIC_FILTERS",
    "Assessment",
    "BedrockGuardrail",
    "Check",
    "apply_guardrail_request",
    "assessment_from",
    "bedrock_judges",
]

#: A content filter's confidence as a toxicity score.
CONFIDENCE_SCORES = {"NONE": 0.0, "LOW": 1 / 3, "MEDIUM": 2 / 3, "HIGH": 1.0}
#: The content filters that judge toxicity.
TOXIC_FILTERS = frozenset({"INSULTS", "HATE", "SEXUAL", "VIOLENCE", "MISCONDUCT"})
_PROVIDER = "Amazon Bedrock Guardrails"
#: Thresholds of the guardrail's evaluators unless the caller (or the guardrail) says.
DEFAULT_TOXICITY_THRESHOLD = 0.5
_CACHED = 128


@dataclass(frozen=True)
class Check:
    """One contextual grounding filter's result."""

    score: float
    threshold: float
    action: str


@dataclass(frozen=True)
class Assessment:
    """What one ``ApplyGuardrail`` call found: the toxicity score and why, and the
    contextual grounding check's results (``None``: the guardrail has no such filter)."""

    toxicity: float
    toxic: tuple[Evidence, ...]
    grounding: Check | None
    relevance: Check | None
    action: str


def apply_guardrail_request(
    guardrail: Guardrail, item: EvaluationInput, *, source: str = "OUTPUT"
) -> dict[str, Any]:
    """The ``ApplyGuardrail`` parameters that judge ``item`` (``source: INPUT`` judges
    the question alone, as the user's input).

    Examples
    --------
    >>> from flywheel.llm.prompts import Guardrail
    >>> body = apply_guardrail_request(Guardrail(id="gr1", version="2"),
    ...     EvaluationInput(answer="A", question="Q", context=("C",)))
    >>> [block["text"]["qualifiers"] for block in body["content"]]
    [['grounding_source'], ['query'], ['guard_content']]
    """
    content: list[dict[str, Any]] = []
    if source == "INPUT":
        content.append({"text": {"text": item.question or "", "qualifiers": ["guard_content"]}})
    else:
        passages = [c for c in item.context if c.strip()]
        for passage in passages:
            content.append({"text": {"text": passage, "qualifiers": ["grounding_source"]}})
        if passages and item.question:
            content.append({"text": {"text": item.question, "qualifiers": ["query"]}})
        content.append({"text": {"text": item.answer, "qualifiers": ["guard_content"]}})
    return {
        "guardrailIdentifier": guardrail.id,
        "guardrailVersion": guardrail.version,
        "source": source,
        "content": content,
        "outputScope": "FULL",
    }


def assessment_from(response: Mapping[str, Any], *, guardrail: str) -> Assessment:
    """The :class:`Assessment` an ``ApplyGuardrail`` response holds.

    Raises
    ------
    ProviderError
        The response is not an ``ApplyGuardrail`` response.
    """
    toxicity = 0.0
    toxic: list[Evidence] = []
    checks: dict[str, Check] = {}
    try:
        action = str(response["action"])
        for assessment in response["assessments"]:
            for found in (assessment.get("contentPolicy") or {}).get("filters", []):
                kind = str(found["type"])
                if kind not in TOXIC_FILTERS:
                    continue
                confidence = str(found["confidence"])
                score = CONFIDENCE_SCORES.get(confidence, 0.0)
                toxicity = max(toxicity, score)
                if score > 0:
                    strength = found.get("filterStrength", "?")
                    toxic.append(
                        Evidence(
                            note=f"{kind}: confidence {confidence} (filter strength "
                            f"{strength}, {found['action']})",
                            score=score,
                        )
                    )
            words = (assessment.get("wordPolicy") or {}).get("managedWordLists", [])
            profane = tuple(str(w["match"]) for w in words if w.get("type") == "PROFANITY")
            if profane:
                toxicity = max(toxicity, CONFIDENCE_SCORES["MEDIUM"])
                toxic.append(
                    Evidence(words=profane, note="PROFANITY managed word list",
                             score=CONFIDENCE_SCORES["MEDIUM"])
                )  # fmt: skip
            grounding = assessment.get("contextualGroundingPolicy") or {}
            for found in grounding.get("filters") or []:
                checks[str(found["type"])] = Check(
                    score=min(1.0, max(0.0, float(found["score"]))),
                    threshold=min(1.0, max(0.0, float(found["threshold"]))),
                    action=str(found["action"]),
                )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ProviderError(
            f"the answer of {guardrail} is not an ApplyGuardrail response", field="provider"
        ) from None
    return Assessment(
        toxicity=toxicity,
        toxic=tuple(toxic),
        grounding=checks.get("GROUNDING"),
        relevance=checks.get("RELEVANCE"),
        action=action,
    )


def _error(err: ClientError, guardrail: str) -> ProviderError:
    code = str(err.response.get("Error", {}).get("Code", "Unknown"))
    if code == "ServiceQuotaExceededException":
        return ProviderThrottledError(
            f"{_PROVIDER}: the account's quota refused the call to {guardrail}",
            field="provider",
            details={"provider_code": code, "retryable": True},
        )
    return error_for(code, model_id=guardrail, provider=_PROVIDER)


class BedrockGuardrail:
    """One guardrail version judging answers; :meth:`evaluators` gives its
    ``toxicity``, ``groundedness`` and ``relevance`` evaluators.

    Parameters
    ----------
    client
        A ``bedrock-runtime`` client (no botocore retries).
    guardrail
        The guardrail's id and version (the prompt spec's :class:`Guardrail`).
    retry
        How throttled and unavailable calls are retried.
    """

    def __init__(
        self,
        *,
        client: Any,
        guardrail: Guardrail,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.guardrail = guardrail
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._uniform = uniform
        self._monotonic = monotonic
        self._cache: OrderedDict[tuple[Any, ...], Assessment] = OrderedDict()
        self._lock = threading.Lock()
        #: ``ApplyGuardrail`` calls made, retries included.
        self.calls = 0

    @property
    def label(self) -> str:
        return f"guardrail {self.guardrail.id} version {self.guardrail.version}"

    def assess(self, item: EvaluationInput, *, source: str = "OUTPUT") -> Assessment:
        """The guardrail's assessment of ``item`` (one call per distinct input)."""
        key = (source, item.answer, item.question, item.context)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        request = apply_guardrail_request(self.guardrail, item, source=source)
        found = assessment_from(self._call(request), guardrail=self.label)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > _CACHED:
                self._cache.popitem(last=False)
        return found

    def _call(self, request: dict[str, Any]) -> Mapping[str, Any]:
        policy = self.retry
        started = self._monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._once(request)
            except ProviderError as error:
                retryable = isinstance(error, ProviderThrottledError) or bool(
                    error.details.get("retryable")
                )
                delay = self._uniform(
                    0.0,
                    min(policy.max_delay_seconds, policy.base_delay_seconds * 2 ** (attempt - 1)),
                )
                late = self._monotonic() - started + delay > policy.deadline_seconds
                if not retryable or attempt >= policy.max_attempts or late:
                    error.details["attempts"] = attempt
                    raise
                self._sleep(delay)

    def _once(self, request: dict[str, Any]) -> Mapping[str, Any]:
        with self._lock:
            self.calls += 1
        try:
            response: Mapping[str, Any] = self._client.apply_guardrail(**request)
        except ClientError as err:
            raise _error(err, self.label) from None
        except (ReadTimeoutError, ConnectTimeoutError):
            raise ProviderTimeoutError(
                f"{_PROVIDER} did not answer the call to {self.label} in time",
                field="provider",
                details={"retryable": False},
            ) from None
        except BotoCoreError:
            raise ProviderError(
                f"{_PROVIDER} could not be reached for {self.label}",
                field="provider",
                details={"retryable": True},
            ) from None
        return response

    def evaluators(
        self, thresholds: Mapping[str, float] | None = None, *, include_input: bool = False
    ) -> dict[str, Evaluator]:
        """``toxicity``, ``groundedness`` and ``relevance`` on this guardrail.

        ``thresholds`` overrides the defaults (toxicity 0.5; the others: the guardrail's
        own threshold); ``include_input`` also judges the question (``source: INPUT``).

        Raises
        ------
        ConfigError
            A threshold names none of the three, or is not in [0, 1].
        """
        chosen = dict(thresholds or {})
        for name, value in chosen.items():
            field = f"thresholds.{name}"
            if name not in {"toxicity", "groundedness", "relevance"}:
                raise ConfigError(
                    f"{field}: not a guardrail evaluator (groundedness, relevance, toxicity)",
                    field=field,
                )
            if isinstance(value, bool) or not 0 <= value <= 1:
                raise ConfigError(f"{field}: a number from 0 to 1, not {value!r}", field=field)
        return {
            "toxicity": _Toxicity(
                self, chosen.get("toxicity", DEFAULT_TOXICITY_THRESHOLD), include_input
            ),
            "groundedness": _Grounding(self, "groundedness", chosen.get("groundedness")),
            "relevance": _Grounding(self, "relevance", chosen.get("relevance")),
        }

    def input_evaluator(self, threshold: float = DEFAULT_TOXICITY_THRESHOLD) -> Evaluator:
        """``toxicity`` of the user's input alone (``source: INPUT``, the guardrail's
        input filter strengths): it judges the item's ``question``."""
        return _InputToxicity(self, threshold)


def bedrock_judges(guardrail: BedrockGuardrail, policy: GuardrailPolicy) -> GuardrailJudges:
    """The judges of ``policy`` on the stage's guardrail: the input's toxicity by its
    input filters, the answer's toxicity by its output filters and its groundedness by
    its contextual grounding check (one ``ApplyGuardrail`` call judges both).

    Examples
    --------
    >>> from flywheel.llm.guardrails import GuardrailPolicy
    >>> from flywheel.llm.prompts import Guardrail
    >>> policy = GuardrailPolicy.model_validate({"input": {}, "output": {"groundedness": 0.6}})
    >>> judges = bedrock_judges(BedrockGuardrail(client=None,
    ...                         guardrail=Guardrail(id="gr1", version="1")), policy)
    >>> [e.name for e in judges.input], [e.name for e in judges.output]
    (['toxicity'], ['toxicity', 'groundedness'])
    """
    from flywheel.llm.guardrails import GuardrailJudges

    inputs: list[Evaluator] = []
    outputs: list[Evaluator] = []
    if policy.input is not None:
        inputs.append(guardrail.input_evaluator(policy.input.toxicity))
    output = policy.output
    if output is not None:
        thresholds = {
            name: value
            for name, value in (
                ("toxicity", output.toxicity),
                ("groundedness", output.groundedness),
            )
            if value is not None
        }
        found = guardrail.evaluators(thresholds)
        outputs.extend(found[name] for name in thresholds)
    return GuardrailJudges(input=tuple(inputs), output=tuple(outputs))


class _InputToxicity:
    """Toxicity of the user's input by the guardrail's input filters."""

    name = "toxicity"

    def __init__(self, guardrail: BedrockGuardrail, threshold: float) -> None:
        self._guardrail = guardrail
        self.threshold = threshold

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        asked = item.question if item.question is not None else item.answer
        found = self._guardrail.assess(EvaluationInput(answer="", question=asked), source="INPUT")
        return EvaluationScore(
            evaluator=self.name,
            score=found.toxicity,
            threshold=self.threshold,
            direction=Direction.LOWER_IS_BETTER,
            evidence=tuple(e.model_copy(update={"note": f"input: {e.note}"}) for e in found.toxic),
        )


class _Toxicity:
    """Toxicity by the guardrail's content filters (lower is better)."""

    name = "toxicity"

    def __init__(self, guardrail: BedrockGuardrail, threshold: float, include_input: bool) -> None:
        self._guardrail = guardrail
        self.threshold = threshold
        self.include_input = include_input

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        found = self._guardrail.assess(item)
        score = found.toxicity
        evidence = [e.model_copy(update={"note": f"answer: {e.note}"}) for e in found.toxic]
        if self.include_input and item.question:
            asked = self._guardrail.assess(item, source="INPUT")
            score = max(score, asked.toxicity)
            evidence += [e.model_copy(update={"note": f"input: {e.note}"}) for e in asked.toxic]
        return EvaluationScore(
            evaluator=self.name,
            score=score,
            threshold=self.threshold,
            direction=Direction.LOWER_IS_BETTER,
            evidence=tuple(evidence),
        )


class _Grounding:
    """Groundedness or relevance by the guardrail's contextual grounding check."""

    def __init__(self, guardrail: BedrockGuardrail, name: str, threshold: float | None) -> None:
        self._guardrail = guardrail
        self.name = name
        self.threshold = threshold

    def evaluate(self, item: EvaluationInput) -> EvaluationScore:
        has_context = any(c.strip() for c in item.context)
        needs = "context" if not has_context else None
        if self.name == "relevance" and not item.question:
            needs = "a question" if has_context else "a question and context"
        if needs is not None:
            return EvaluationScore(
                evaluator=self.name,
                score=0.0,
                threshold=self.threshold if self.threshold is not None else 0.0,
                direction=Direction.HIGHER_IS_BETTER,
                evidence=(Evidence(note=f"the contextual grounding check needs {needs}"),),
                applicable=False,
            )
        found = self._guardrail.assess(item)
        check = found.grounding if self.name == "groundedness" else found.relevance
        if check is None:
            kind = "GROUNDING" if self.name == "groundedness" else "RELEVANCE"
            raise ConfigError(
                f"{self._guardrail.label} has no contextual grounding check of type {kind}",
                field="guardrail",
            )
        threshold = self.threshold if self.threshold is not None else check.threshold
        note = (
            f"contextual grounding {self.name} score {check.score:.2f} (the guardrail's "
            f"threshold {check.threshold:.2f}, {check.action})"
        )
        return EvaluationScore(
            evaluator=self.name,
            score=check.score,
            threshold=threshold,
            direction=Direction.HIGHER_IS_BETTER,
            evidence=(Evidence(note=note, score=check.score),),
        )
