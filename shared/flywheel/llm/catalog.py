"""Prompt versions in the model registry (ADR 78): one registry version of kind ``prompt``
per spec, whose artifact is the spec's canonical JSON, SHA-256 verified on every load.

Lifecycle, approvals, aliases, rollback and the audit chain are the registry's; this
module adds what is particular to prompts: the draft a spec becomes, loading a version
back as a spec, listing prompts, and the difference between two versions.

Examples
--------
>>> from flywheel.composition import InMemoryPlatform
>>> from flywheel.llm.prompts import parse_prompt
>>> platform = InMemoryPlatform()
>>> catalog = PromptCatalog(platform.registry, platform.artifacts)
>>> spec = parse_prompt({"name": "greet", "description": "Greets", "owner": "ana",
...     "provider": "local", "model_id": "local.stand-in", "template": "Hi {{ who }}",
...     "variables": {"who": {}}, "parameters": {"max_tokens": 20}})
>>> added = catalog.register(spec, actor="ana", environment="0" * 64)
>>> added.version.version, added.version.kind, added.created
(1, <RegistryKind.PROMPT: 'prompt'>, True)
>>> catalog.get("greet", 1).spec == spec
True
"""

from __future__ import annotations

import difflib
import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flywheel.errors import ConfigError, ModelNotFoundError, RegistryKindError
from flywheel.llm.evaluation_sets import (
    EVALUATION_SET_FILE,
    parse_evaluation_set,
    seal_evaluation,
)
from flywheel.llm.prices import default_prices
from flywheel.llm.prompts import PromptSpec, VariableType, canonical_bytes, parse_prompt
from flywheel.models import Frozen
from flywheel.registry.models import (
    ArtifactRef,
    FeatureSpec,
    InputSchema,
    Lineage,
    OutputSchema,
    RegistryKind,
    Task,
    VersionDraft,
)

if TYPE_CHECKING:
    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.llm.evaluation_sets import EvaluationSet
    from flywheel.llm.prices import PriceTable
    from flywheel.registry.models import FeatureType, Model, ModelVersion, Page
    from flywheel.registry.service import RegistryService

__all__ = [
    "FieldChange",
    "PromptCatalog",
    "PromptDiff",
    "PromptVersion",
    "Registration",
    "input_schema_of",
    "prompt_draft",
]

#: The registry's output schema of every prompt version: generated text (or JSON).
PROMPT_OUTPUT = OutputSchema(task=Task.GENERATION, label_output="text")
_FEATURE_TYPES: dict[VariableType, FeatureType] = {
    VariableType.STRING: "text",
    VariableType.INTEGER: "int",
    VariableType.NUMBER: "float",
    VariableType.BOOLEAN: "bool",
}


def input_schema_of(spec: PromptSpec) -> InputSchema:
    """The registry's input schema of a prompt: its variables as features.

    Examples
    --------
    >>> spec = parse_prompt({"name": "p", "description": "d", "owner": "o",
    ...     "provider": "local", "model_id": "m", "template": "{{ n }} {{ s }}",
    ...     "variables": {"n": {"type": "integer"}, "s": {"max_length": 9}},
    ...     "parameters": {"max_tokens": 5}})
    >>> [(f.name, f.dtype, f.max_length) for f in input_schema_of(spec).features]
    [('n', 'int', None), ('s', 'text', 9)]
    """
    features = []
    for name, variable in spec.variables.items():
        string = variable.type is VariableType.STRING
        features.append(
            FeatureSpec(
                name=name,
                dtype=_FEATURE_TYPES[variable.type],
                minimum=variable.minimum,
                maximum=variable.maximum,
                nullable=not variable.required,
                max_length=min(variable.max_length, 100_000) if string else None,
            )
        )
    return InputSchema(features=tuple(features))


def prompt_draft(
    spec: PromptSpec, artifact: ArtifactRef, *, registration_id: str, environment: str
) -> VersionDraft:
    """The registry version ``spec`` becomes, its artifact (the canonical JSON) stored.

    ``environment`` is the SHA-256 of the registering environment's packages (lineage).
    """
    return VersionDraft(
        name=spec.name,
        kind=RegistryKind.PROMPT,
        artifact=artifact,
        input_schema=input_schema_of(spec),
        output_schema=PROMPT_OUTPUT,
        lineage=Lineage(
            dependency_lock_hash=environment,
            training_run_id=registration_id,
            reproducible=False,
        ),
        description=spec.description,
        tags={"provider": str(spec.provider), "model_id": spec.model_id, "owner": spec.owner},
    )


@dataclass(frozen=True)
class PromptVersion:
    """A registered prompt version and its spec (read back from the verified artifact)."""

    version: ModelVersion
    spec: PromptSpec


@dataclass(frozen=True)
class Registration:
    """What :meth:`PromptCatalog.register` did: ``created`` is ``False`` when the latest
    version already held this very spec (nothing was written); ``spec`` is the spec as
    registered (its evaluation set sealed)."""

    version: ModelVersion
    created: bool
    spec: PromptSpec


class FieldChange(Frozen):
    """One field that differs between two prompt versions (dotted path; JSON values)."""

    field: str
    before: Any = None
    after: Any = None


class PromptDiff(Frozen):
    """What changed from version ``before`` to ``after``: the template and the system
    prompt as unified diffs, every other field as a :class:`FieldChange`."""

    name: str
    before: int
    after: int
    template: tuple[str, ...]
    system: tuple[str, ...]
    changes: tuple[FieldChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.template or self.system or self.changes)


class PromptCatalog:
    """Register, read and compare prompt versions in the registry.

    Every model id a registered prompt uses has a price in ``prices`` (default: the
    shipped table); a spec whose model has none is refused before anything is written.
    """

    def __init__(
        self,
        registry: RegistryService,
        artifacts: ArtifactStore,
        *,
        prices: PriceTable | None = None,
    ) -> None:
        self._registry = registry
        self._artifacts = artifacts
        self.prices = prices or default_prices()

    def register(
        self,
        spec: PromptSpec,
        *,
        actor: str,
        environment: str,
        reason: str | None = None,
        evaluation_set: EvaluationSet | None = None,
    ) -> Registration:
        """Store ``spec``'s canonical JSON and register it as a candidate version.

        A spec naming an evaluation set has it validated against the spec and stored
        next to the spec first (``evaluation.jsonl``); the registered spec holds the
        set's SHA-256 (:func:`~flywheel.llm.evaluation_sets.seal_evaluation`). The set
        is ``evaluation_set`` when given (parsed against ``spec`` already: the
        registration route's body), else the file the spec names.

        Raises
        ------
        ConfigError
            ``spec.model_id`` has no price, or the evaluation set is invalid (naming its
            line and field), or given for a spec that declares none.
        RegistryKindError
            ``spec.name`` holds model versions.
        """
        self.prices.price(spec.model_id, spec.provider)
        spec, stored_set = seal_evaluation(spec, evaluation_set)
        data = canonical_bytes(spec)
        latest = self._latest(spec.name)
        if latest is not None and latest.artifact.sha256 == _digest(data):
            return Registration(version=latest, created=False, spec=spec)
        registration_id = f"{spec.name}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        if stored_set is not None:
            self._artifacts.put(
                f"prompts/{spec.name}/{registration_id}/{EVALUATION_SET_FILE}",
                stored_set,
                content_type="application/x-ndjson",
            )
        artifact = self._artifacts.put(
            f"prompts/{spec.name}/{registration_id}/prompt.json",
            data,
            content_type="application/json",
        )
        draft = prompt_draft(
            spec, artifact, registration_id=registration_id, environment=environment
        )
        version = self._registry.register(
            draft, actor=actor, reason=reason, extra={"kind": str(RegistryKind.PROMPT)}
        )
        return Registration(version=version, created=True, spec=spec)

    def _latest(self, name: str) -> ModelVersion | None:
        try:
            model = self._registry.get_model(name)
        except ModelNotFoundError:
            return None
        if model.kind is not RegistryKind.PROMPT:
            raise RegistryKindError.of(name, model.kind, RegistryKind.PROMPT)
        return self._registry.get_version(name, model.latest_version)

    def get(self, name: str, ref: int | str) -> PromptVersion:
        """Version ``ref`` (a number, ``champion`` or ``challenger``) of prompt ``name``,
        its spec read from the artifact whose SHA-256 the registry holds.

        Raises
        ------
        RegistryKindError
            ``name`` holds model versions.
        ArtifactIntegrityError
            The stored spec is not the registered one.
        """
        try:
            version = self._registry.resolve(name, ref)
        except ModelNotFoundError:
            raise ModelNotFoundError(f"prompt {name!r} does not exist", field="name") from None
        if version.kind is not RegistryKind.PROMPT:
            raise RegistryKindError.of(name, version.kind, RegistryKind.PROMPT)
        data = self._artifacts.get(version.artifact)
        try:
            spec = parse_prompt(json.loads(data))
        except (ValueError, ConfigError):
            raise ConfigError(
                f"version {version.version} of prompt {name!r} does not hold a readable spec",
                field="artifact",
            ) from None
        return PromptVersion(version=version, spec=spec)

    def evaluation_set(self, found: PromptVersion) -> EvaluationSet | None:
        """The evaluation set of a prompt version, read from next to its spec and checked
        against the digest its spec holds (``None``: the version has none).

        Raises
        ------
        ArtifactIntegrityError
            The stored set is not the one the spec was registered with.
        """
        evaluation = found.spec.evaluation
        if evaluation is None or evaluation.sha256 is None or evaluation.size_bytes is None:
            return None
        spec_uri = found.version.artifact.uri
        ref = ArtifactRef(
            uri=f"{spec_uri.rsplit('/', 1)[0]}/{EVALUATION_SET_FILE}",
            sha256=evaluation.sha256,
            size_bytes=evaluation.size_bytes,
            format="bytes",
        )
        return parse_evaluation_set(self._artifacts.get(ref), found.spec)

    def list_prompts(self, *, limit: int = 50, page_token: str | None = None) -> Page[Model]:
        """The registered prompts, by name."""
        return self._registry.registry.list_models(
            limit=limit, page_token=page_token, kind=RegistryKind.PROMPT
        )

    def diff(self, name: str, before: int | str, after: int | str) -> PromptDiff:
        """What changed from version ``before`` to ``after`` of prompt ``name``."""
        old, new = self.get(name, before), self.get(name, after)
        a, b = old.spec, new.spec
        return PromptDiff(
            name=name,
            before=old.version.version,
            after=new.version.version,
            template=_unified(a.template, b.template, old.version.version, new.version.version),
            system=_unified(a.system, b.system, old.version.version, new.version.version),
            changes=tuple(_changes(a, b)),
        )


def _digest(data: bytes) -> str:
    from flywheel.artifacts.ports import sha256_hex

    return sha256_hex(data)


def _unified(before: str, after: str, old: int, new: int) -> tuple[str, ...]:
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), f"v{old}", f"v{new}", lineterm=""
    )
    return tuple(lines)


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flat(value[key], f"{prefix}.{key}" if prefix else key, out)
    else:
        out[prefix] = value


def _changes(a: PromptSpec, b: PromptSpec) -> list[FieldChange]:
    flat_a: dict[str, Any] = {}
    flat_b: dict[str, Any] = {}
    skip = {"template", "system", "output_schema"}
    _flat({k: v for k, v in a.model_dump(mode="json").items() if k not in skip}, "", flat_a)
    _flat({k: v for k, v in b.model_dump(mode="json").items() if k not in skip}, "", flat_b)
    changes = [
        FieldChange(field=key, before=flat_a.get(key), after=flat_b.get(key))
        for key in sorted(flat_a.keys() | flat_b.keys())
        if flat_a.get(key) != flat_b.get(key)
    ]
    if a.output_schema != b.output_schema:
        changes.append(
            FieldChange(field="output_schema", before=a.output_schema, after=b.output_schema)
        )
    return changes
