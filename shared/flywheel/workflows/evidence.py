"""Everything ``flywheel audit verify`` checks for one model, in one report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel.audit.chain import ChainProblem, ProblemKind
from flywheel.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    FlywheelError,
    ModelNotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.audit.chain import VerifyReport
    from flywheel.audit.models import Anchor, ChainHead
    from flywheel.audit.ports import HeadSigner
    from flywheel.registry.models import ArtifactRef
    from flywheel.registry.service import RegistryService

__all__ = ["verify_evidence"]


def verify_evidence(
    registry: RegistryService,
    name: str,
    *,
    artifacts: ArtifactStore | None = None,
    verifier: HeadSigner | None = None,
    anchors: Sequence[Anchor] = (),
    anchor: ChainHead | None = None,
) -> VerifyReport:
    """The chain (links, signed head, anchors), the registry against the chain, and, with
    ``artifacts``, every version's model and reference profile against their digests.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> platform = InMemoryPlatform()
    >>> verify_evidence(platform.registry, "churn", artifacts=platform.artifacts).ok
    True
    """
    report = registry.verify(name, anchor=anchor, verifier=verifier, anchors=anchors)
    if artifacts is None:
        return report
    problems: list[ChainProblem] = []
    try:
        versions = registry.registry.list_versions(name, limit=100)
    except ModelNotFoundError:
        return report
    pages = [versions]
    while pages[-1].next_token:
        pages.append(
            registry.registry.list_versions(name, limit=100, page_token=pages[-1].next_token)
        )
    for version in (v for page in pages for v in page.items):
        refs: list[tuple[str, ArtifactRef]] = [("model", version.artifact)]
        if version.reference_profile is not None:
            refs.append(("reference profile", version.reference_profile))
        for what, ref in refs:
            problem = _artifact_problem(artifacts, ref)
            if problem is not None:
                problems.append(
                    ChainProblem(
                        seq=0,
                        kind=ProblemKind.ARTIFACT_ALTERED,
                        message=f"version {version.version}'s {what} {problem}",
                    )
                )
    if not problems:
        return report
    return report.model_copy(update={"problems": (*report.problems, *problems)})


def _artifact_problem(artifacts: ArtifactStore, ref: ArtifactRef) -> str | None:
    try:
        artifacts.get(ref)
    except ArtifactNotFoundError:
        return f"is gone ({ref.uri})"
    except ArtifactIntegrityError:
        return f"no longer matches its SHA-256 ({ref.uri})"
    except FlywheelError as err:
        return f"cannot be read ({err.code}: {ref.uri})"
    return None
