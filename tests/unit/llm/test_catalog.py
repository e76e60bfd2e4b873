"""Prompt versions in the model registry: content-hashed, verified on load, one kind per
name, and governed by the same lifecycle, approvals, aliases and audit chain as models."""

from __future__ import annotations

import json

import pytest

from flywheel.composition import InMemoryPlatform
from flywheel.errors import (
    ApproverNotAllowedError,
    ArtifactIntegrityError,
    ConfigError,
    IllegalTransitionError,
    ModelNotFoundError,
    ReasonRequiredError,
    RegistryKindError,
)
from flywheel.llm.prompts import canonical_bytes
from flywheel.registry.models import Alias, RegistryKind, Task, VersionStatus
from flywheel.sdk import Flywheel
from flywheel.workflows.approvals import APPROVAL_REQUESTED, VERSION_APPROVED
from tests.factories import prompt_spec, version_draft

NAME = "ticket-summary"


@pytest.fixture
def platform() -> InMemoryPlatform:
    return InMemoryPlatform()


def _people(platform: InMemoryPlatform) -> tuple[Flywheel, Flywheel]:
    return Flywheel(platform, actor="ana"), Flywheel(platform, actor="bo")


def test_a_registered_prompt_is_a_prompt_version_whose_artifact_is_its_spec(
    platform: InMemoryPlatform,
) -> None:
    ana, _ = _people(platform)
    spec = prompt_spec()

    done = ana.register_prompt(spec, reason="first cut")

    version = done.version
    assert done.created
    assert (version.kind, version.output_schema.task) == (RegistryKind.PROMPT, Task.GENERATION)
    assert version.status is VersionStatus.PENDING_APPROVAL
    assert version.artifact.format == "json"
    assert platform.artifacts.get(version.artifact) == canonical_bytes(spec)
    assert [f.name for f in version.input_schema.features] == ["customer", "ticket"]
    assert version.tags == {
        "provider": "local",
        "model_id": "local.stand-in",
        "owner": "support@example.com",
    }
    assert ana.prompt(NAME, version.version).spec == spec
    entries = ana.audit_entries(NAME)
    assert [str(e.action) for e in entries] == ["version_registered", "approval_requested"]
    assert entries[0].details["artifact_sha256"] == version.artifact.sha256
    assert entries[0].details["kind"] == "prompt"


def test_registering_the_same_spec_again_writes_nothing(platform: InMemoryPlatform) -> None:
    ana, _ = _people(platform)
    first = ana.register_prompt(prompt_spec())

    again = ana.register_prompt(prompt_spec())

    assert not again.created
    assert again.version.version == first.version.version == 1
    assert again.approval_id == first.approval_id
    assert len(ana.audit_entries(NAME)) == 2


def test_a_model_without_a_price_is_refused_and_nothing_is_written(
    platform: InMemoryPlatform,
) -> None:
    ana, _ = _people(platform)

    with pytest.raises(ConfigError, match=r"model_id: bedrock model 'made-up\.model' has no price"):
        ana.register_prompt(prompt_spec(provider="bedrock", model_id="made-up.model"))

    assert ana.list_prompts().items == []
    assert list(platform.audit.streams()) == []


def test_one_name_holds_one_kind(platform: InMemoryPlatform) -> None:
    ana, _ = _people(platform)
    platform.registry.register(version_draft(name="churn"), actor="ci")
    ana.register_prompt(prompt_spec())

    with pytest.raises(RegistryKindError, match="'churn' holds model versions") as caught:
        ana.register_prompt(prompt_spec(name="churn"))
    assert caught.value.code == "registry_kind_mismatch"
    with pytest.raises(RegistryKindError, match="holds prompt versions"):
        platform.registry.register(version_draft(name=NAME), actor="ci")
    with pytest.raises(RegistryKindError):
        ana.prompt("churn", 1)
    with pytest.raises(RegistryKindError):
        ana.predict(NAME, [{"customer": "c"}])
    assert [m.name for m in ana.list_models().items] == ["churn"]
    assert [m.name for m in ana.list_prompts().items] == [NAME]


def test_the_registrant_cannot_approve_and_someone_else_can(platform: InMemoryPlatform) -> None:
    ana, bo = _people(platform)
    number = ana.register_prompt(prompt_spec()).version.version

    with pytest.raises(ApproverNotAllowedError, match="requested this run"):
        ana.approve_prompt(NAME, number, reason="looks fine to me")
    with pytest.raises(ReasonRequiredError):
        bo.approve_prompt(NAME, number, reason=" ")
    approved = bo.approve_prompt(NAME, number, reason="read the template")

    assert approved.status is VersionStatus.APPROVED
    actions = [(str(e.action), e.actor) for e in bo.audit_entries(NAME)]
    assert actions[-2:] == [("approval_refused", "ana"), ("approved", "bo")]


def test_approving_a_prompt_announces_it_then_asks_for_its_promotion_like_a_model(
    platform: InMemoryPlatform,
) -> None:
    ana, bo = _people(platform)
    number = ana.register_prompt(prompt_spec()).version.version

    bo.approve_prompt(NAME, number, reason="ok")

    events = [(t, d) for t, d in platform.published.events]
    assert [t for t, _ in events] == [APPROVAL_REQUESTED, VERSION_APPROVED]
    assert events[0][1]["kind"] == "prompt"
    assert events[0][1]["decide"]["cli"].startswith(f"flywheel prompts approve {NAME} 1")
    approved = events[1][1]
    assert (approved["model_name"], approved["version"], approved["kind"]) == (NAME, 1, "prompt")
    assert (approved["approver"], approved["reason"]) == ("bo", "ok")
    assert approved["artifact_sha256"] == bo.get_version(NAME, 1).artifact.sha256


def test_promote_and_roll_back_move_the_aliases_audited(platform: InMemoryPlatform) -> None:
    ana, bo = _people(platform)
    first = ana.register_prompt(prompt_spec()).version.version
    second = ana.register_prompt(prompt_spec(template="Hi {{ customer }}: {{ ticket }}"))
    bo.approve_prompt(NAME, first, reason="ok")
    bo.approve_prompt(NAME, second.version.version, reason="ok")

    third = ana.register_prompt(prompt_spec(template="Yo {{ customer }} {{ ticket }}"))
    with pytest.raises(IllegalTransitionError):
        bo.promote_prompt(NAME, third.version.version, reason="not approved yet")
    bo.promote_prompt(NAME, first, reason="first champion")
    bo.promote_prompt(NAME, second.version.version, reason="better summaries")
    restored = bo.rollback_prompt(NAME, reason="customers complained")

    model = bo.get_model(NAME)
    assert restored.version == first
    assert model.aliases == {Alias.CHAMPION: first}
    assert bo.get_version(NAME, second.version.version).status is VersionStatus.ROLLED_BACK
    assert bo.prompt(NAME).version.version == first
    assert [str(e.action) for e in bo.audit_entries(NAME)][-3:] == [
        "promoted",
        "promoted",
        "rolled_back",
    ]
    assert bo.verify(NAME).ok


def test_a_prompt_whose_stored_spec_was_altered_is_not_loaded(platform: InMemoryPlatform) -> None:
    ana, _ = _people(platform)
    version = ana.register_prompt(prompt_spec()).version
    tampered = json.loads(platform.artifacts.get(version.artifact))
    tampered["template"] = "Ignore the customer. {{ customer }} {{ ticket }}"
    platform.artifacts.tamper(version.artifact, json.dumps(tampered).encode())  # type: ignore[attr-defined]

    with pytest.raises(ArtifactIntegrityError):
        ana.prompt(NAME, version.version)
    assert not ana.verify(NAME).ok


def test_the_diff_shows_the_template_and_every_parameter_that_changed(
    platform: InMemoryPlatform,
) -> None:
    ana, _ = _people(platform)
    ana.register_prompt(prompt_spec())
    ana.register_prompt(
        prompt_spec(
            template="Customer {{ customer }} wrote, angrily:\n\n{{ ticket }}",
            parameters={"max_tokens": 32, "temperature": 0.2, "stop_sequences": ["END"]},
            model_id="local.stand-in",
        )
    )

    diff = ana.diff_prompts(NAME, 1, 2)

    assert "-Customer {{ customer }} wrote:" in diff.template
    assert "+Customer {{ customer }} wrote, angrily:" in diff.template
    assert diff.system == ()
    changes = {c.field: (c.before, c.after) for c in diff.changes}
    assert changes == {
        "parameters.max_tokens": (64, 32),
        "parameters.stop_sequences": ([], ["END"]),
    }
    assert ana.diff_prompts(NAME, 2, 2).empty


def test_unknown_prompts_and_versions_are_named(platform: InMemoryPlatform) -> None:
    ana, _ = _people(platform)
    with pytest.raises(ModelNotFoundError, match="prompt 'nope' does not exist"):
        ana.prompt("nope")
    ana.register_prompt(prompt_spec())
    with pytest.raises(Exception, match="has no champion yet"):
        ana.prompt(NAME)
    with pytest.raises(Exception, match="has no version 9"):
        ana.diff_prompts(NAME, 1, 9)


def test_models_are_never_trained_or_imported_for_generation() -> None:
    from flywheel.training.byo import load_schema
    from flywheel.training.config import parse_config

    with pytest.raises(ConfigError, match="task: 'generation' is what prompts do"):
        parse_config(
            {
                "model": "m",
                "task": "generation",
                "dataset": {"source": "sklearn:iris"},
                "estimator": "logistic_regression",
            }
        )
    with pytest.raises(ConfigError, match="task: 'generation' is what prompts do"):
        load_schema({"task": "generation", "features": [{"name": "x"}]})
    with pytest.raises(ValueError, match="a prompt version's task is generation"):
        version_draft(
            output_schema=version_draft().output_schema.model_copy(update={"task": Task.GENERATION})
        )
