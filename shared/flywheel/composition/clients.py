"""The one place boto3 clients are made: one per service per process, one configuration."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

import boto3
from botocore.config import Config

from flywheel.errors import ConfigError
from flywheel.settings import LOCAL_CREDENTIALS

if TYPE_CHECKING:
    from flywheel.settings import Settings

__all__ = ["CLIENT_CONFIG", "ClientFactory"]

#: Every client: short connect timeout, bounded reads, standard retries with backoff
#: (throttling and transient errors), so neither a request path nor a workflow step
#: hangs on one slow call.
CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 4},
)

#: Services whose calls take longer than a control-plane call: a model answering a prompt
#: may take tens of seconds. No botocore retries there: the provider port retries
#: throttled calls itself, with jitter, and counts them (ADR 78).
SERVICE_CONFIGS: dict[str, Config] = {
    "bedrock-runtime": Config(
        connect_timeout=2, read_timeout=60, retries={"mode": "standard", "total_max_attempts": 1}
    ),
}

_Key = tuple[str, str, str | None, boto3.Session | None]


class ClientFactory:
    """Makes boto3 clients for one endpoint and credentials, each service once.

    Get one with :meth:`for_settings`: factories are shared by every composition root
    in the process (the local runtime hosts many handlers in one process), so a process
    makes one client per service.  Clients are thread-safe; making one is not, so
    creation is serialised.

    Examples
    --------
    >>> from flywheel.settings import Settings
    >>> clients = ClientFactory.for_settings(
    ...     Settings(backend="local", endpoint_url="http://127.0.0.1:5055")
    ... )
    >>> clients.client("s3") is clients.client("s3")
    True
    >>> clients.client("s3").meta.endpoint_url
    'http://127.0.0.1:5055'
    """

    _shared: ClassVar[dict[_Key, ClientFactory]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, session: boto3.Session, *, endpoint_url: str | None = None) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_settings(
        cls, settings: Settings, session: boto3.Session | None = None
    ) -> ClientFactory:
        """The process's factory for ``settings``' backend, region and endpoint.

        ``session``: use this boto3 session instead (tests inject faults through its
        event hooks); each session gets its own factory.

        Raises
        ------
        ConfigError
            ``backend="local"`` without ``endpoint_url`` (the CLI and the SDK resolve it
            from the local runtime).
        """
        if settings.backend == "local" and settings.endpoint_url is None:
            raise ConfigError(
                "FLYWHEEL_ENDPOINT_URL is not set: the local backend needs the local "
                "runtime's endpoint (flywheel local start prints it)",
                field="FLYWHEEL_ENDPOINT_URL",
            )
        key: _Key = (settings.backend, settings.region, settings.endpoint_url, session)
        with cls._shared_lock:
            factory = cls._shared.get(key)
            if factory is None:
                if session is None:
                    session = _session(settings)
                factory = cls._shared[key] = cls(session, endpoint_url=settings.endpoint_url)
            return factory

    @classmethod
    def forget(cls) -> None:
        """Drop every shared factory (tests that change credentials or endpoints)."""
        with cls._shared_lock:
            cls._shared.clear()

    def client(self, service: str, *, read_timeout: float | None = None) -> Any:
        """The client of ``service`` (``"dynamodb"``, ``"s3"``, …), made on first use.

        ``read_timeout`` replaces the service's configured one (one client per value).
        """
        key = service if read_timeout is None else f"{service}@{read_timeout:g}"
        made = self._made.get(key)
        if made is None:
            with self._lock:
                made = self._made.get(key)
                if made is None:
                    config = SERVICE_CONFIGS.get(service, CLIENT_CONFIG)
                    if read_timeout is not None:
                        config = config.merge(Config(read_timeout=read_timeout))
                    made = self._made[key] = self.session.client(  # type: ignore[call-overload]
                        service, endpoint_url=self.endpoint_url, config=config
                    )
        return made


def _session(settings: Settings) -> boto3.Session:
    if settings.backend == "local":
        return boto3.Session(
            region_name=settings.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
    return boto3.Session(region_name=settings.region)
