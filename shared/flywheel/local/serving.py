"""Wire ``flywheel serve``: registry aliases → local alias routing → the inference handler."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.local.api_gateway import LocalApiGateway, Target, targets_for

if TYPE_CHECKING:
    import random

    from flywheel.sdk import Flywheel
    from flywheel.settings import Settings

__all__ = ["build_gateway", "default_functions_dir", "handler_environment"]


def default_functions_dir() -> Path:
    """``./functions`` if present, else the checkout's ``functions/`` (editable installs).

    Examples
    --------
    >>> default_functions_dir().name
    'functions'
    """
    here = Path.cwd() / "functions"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "functions"


def handler_environment(settings: Settings) -> dict[str, str]:
    """What every local "Lambda version" gets: resource names, endpoint, Powertools.

    ``settings`` must name the resources (resolved from the runtime, or a deployment's).
    Metrics are off locally (EMF lines would flood the terminal); logs stay on.

    Examples
    --------
    >>> from flywheel.settings import Settings
    >>> settings = Settings(backend="local", endpoint_url="http://127.0.0.1:5055",
    ...                     registry_table="flywheel-dev-registry")
    >>> env = handler_environment(settings)
    >>> env["FLYWHEEL_REGISTRY_TABLE"], env["FLYWHEEL_BACKEND"], env["FLYWHEEL_ENDPOINT_URL"]
    ('flywheel-dev-registry', 'local', 'http://127.0.0.1:5055')
    """
    env = {
        **settings.resource_environment(),
        "FLYWHEEL_BACKEND": settings.backend,
        "FLYWHEEL_REGION": settings.region,
        "POWERTOOLS_SERVICE_NAME": "flywheel-inference",
        "POWERTOOLS_METRICS_NAMESPACE": "Flywheel/local",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    if settings.endpoint_url:
        env["FLYWHEEL_ENDPOINT_URL"] = settings.endpoint_url
    return env


def build_gateway(
    sdk: Flywheel,
    *,
    models: list[str] | None = None,
    canary_weight: float = 0.1,
    shadow: bool = False,
    functions_dir: Path | None = None,
    rng: random.Random | None = None,
) -> tuple[LocalApiGateway, dict[str, list[Target]]]:
    """A gateway serving each model's champion (+ challenger as canary or shadow).

    Models without a champion are skipped when no names are given; a named
    model without one is an error.

    Examples
    --------
    >>> gateway, routes = build_gateway(Flywheel.in_memory())  # doctest: +SKIP
    """
    from flywheel.errors import VersionNotFoundError

    gateway = LocalApiGateway(
        functions_dir=functions_dir or default_functions_dir(),
        environment=handler_environment(sdk.platform.settings),
        rng=rng,
    )
    names = models or [m.name for m in sdk.list_models(limit=100).items]
    routes: dict[str, list[Target]] = {}
    for name in names:
        model = sdk.get_model(name)
        if model.champion is None:
            if models:
                raise VersionNotFoundError(f"model {name!r} has no champion yet", field="model")
            continue
        routes[name] = targets_for(
            model.champion, model.challenger, canary_weight=canary_weight, shadow=shadow
        )
        gateway.add_route(name, routes[name])
    return gateway, routes
