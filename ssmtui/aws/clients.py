"""The aiobotocore sessions and clients, one per (service, profile, region), cached until closed.

Usage::

    async with AwsClients(config) as clients:
        async with clients.client("ssm", "dev", "us-east-1") as ssm:
            page = await ssm.describe_instance_information(MaxResults=50)

``client()`` hands out a cached client (created on first use) and translates any botocore error
raised inside the block into :mod:`ssmtui.errors` (see :mod:`ssmtui.aws.errors`). Settings honoured:
endpoint overrides per service (``Config.endpoints``), the CA bundle (``Config.ca_bundle``, else
``AWS_CA_BUNDLE`` / the profile's ``ca_bundle``), proxies (``Config.proxies``, else
``HTTPS_PROXY``/``NO_PROXY``), standard-mode retries with ``Config.max_attempts`` attempts, and
timeouts. :func:`demo_clients` aims everything at a demo server with its static credentials.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

from botocore import exceptions as bce  # type: ignore[import-untyped]

from ssmtui.aws.errors import aws_errors, translate
from ssmtui.config import ENDPOINT_SERVICES, USER_AGENT, Config
from ssmtui.errors import ConfigError

__all__ = [
    "AwsClients",
    "CredentialsOverride",
    "DemoServer",
    "demo_clients",
    "list_profiles",
    "resolve_region",
]

#: ``profile -> (access_key_id, secret_access_key)`` or None to use the normal credential chain.
CredentialsOverride = Callable[[str], "tuple[str, str] | None"]


class DemoServer(Protocol):
    """What :func:`demo_clients` needs from ``ssmtui.sim.api.SimServer`` (duck-typed: the aws
    layer does not import the simulation)."""

    @property
    def endpoint(self) -> str: ...

    def client_kwargs(self, profile: str, region: str) -> dict[str, str]: ...


#: aiobotocore, aiohttp and the rest of botocore (~0.3 s to import) are imported on first use, so
#: importing this module (which the UI does) costs little and the app's first frame comes first.
_Session = Any


def _new_session(profile: str | None) -> _Session:
    """A session for ``profile``; ``None`` = no profile at all (``AWS_PROFILE`` ignored)."""
    from aiobotocore.session import AioSession  # type: ignore[import-untyped,unused-ignore]

    from ssmtui.aws.fastparse import FleetParserFactory

    if profile is not None:
        session = AioSession(profile=profile)
    else:
        session = AioSession(session_vars={"profile": (None, None, None, None)})
    session.register_component("response_parser_factory", FleetParserFactory())
    return session


def _session_for(profile: str) -> _Session:
    """``default`` without a ``[default]`` section means the bare credential chain (env vars,
    instance role), as the AWS CLI does; any other name must exist."""
    if profile == "default":
        probe = _new_session(None)
        if "default" not in probe.available_profiles:
            return probe
    return _new_session(profile)


def list_profiles() -> list[str]:
    """Profile names from the shared AWS config and credentials files (``default`` first)."""
    from aiobotocore.session import AioSession  # type: ignore[import-untyped,unused-ignore]

    with aws_errors():
        names = set(AioSession().available_profiles)
    return sorted(names, key=lambda n: (n != "default", n))


def resolve_region(profile: str) -> str | None:
    """The region of ``profile``: ``AWS_DEFAULT_REGION`` or the profile's ``region`` setting
    (botocore's rules), else ``AWS_REGION`` (what the newer SDKs and the AWS CLI v2 read)."""
    with aws_errors(profile=profile):
        region = _session_for(profile).get_config_variable("region")
    region = region or os.environ.get("AWS_REGION")
    return str(region) if region else None


_imported = False


async def _import_aiobotocore() -> None:
    """Import aiobotocore (and botocore's client machinery) in a worker thread the first time,
    so the ~0.3 s it takes does not freeze the event loop (the UI keeps drawing)."""
    global _imported
    if not _imported:
        await asyncio.to_thread(importlib.import_module, "aiobotocore.session")
        await asyncio.to_thread(importlib.import_module, "aiobotocore.config")
        _imported = True


class AwsClients:
    """Owns the aiobotocore sessions and clients for every (profile, region) the app uses.

    Close with :meth:`aclose` (or use as an async context manager). Not thread-safe: use it from
    one event loop.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        credentials_override: CredentialsOverride | None = None,
        profile_names: Sequence[str] | None = None,
        default_region: str | None = None,
        verify: bool | str | None = None,
    ) -> None:
        """``credentials_override`` gives static keys per profile (the demo) and isolates the
        clients from the shared AWS config files; ``profile_names`` / ``default_region`` then
        answer :meth:`profiles` / :meth:`resolve_region`. ``verify`` overrides the CA bundle."""
        self.config = config if config is not None else Config()
        self._credentials_override = credentials_override
        self._profile_names = list(profile_names) if profile_names is not None else None
        self._default_region = default_region
        self._verify = verify if verify is not None else self.config.ca_bundle
        self._sessions: dict[str, _Session] = {}
        self._loader: Any = None
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._stack = AsyncExitStack()
        self._closed = False
        self._aio_config: Any = None  # built on first use (imports aiobotocore)

    def _config(self) -> Any:
        """The ``AioConfig`` every client is created with."""
        if self._aio_config is not None:
            return self._aio_config
        from aiobotocore.config import AioConfig  # type: ignore[import-untyped,unused-ignore]

        from ssmtui.aws.httpsession import shared_tls_session_class

        options: dict[str, Any] = {
            "retries": {"mode": "standard", "total_max_attempts": self.config.max_attempts},
            "connect_timeout": self.config.connect_timeout,
            "read_timeout": self.config.read_timeout,
            "proxies": dict(self.config.proxies) or None,
            "max_pool_connections": 32,
            "user_agent_appid": "ssmtui",
            "user_agent_extra": USER_AGENT,
        }
        try:  # one TLS context for all clients (aiobotocore versions with http_session_cls)
            self._aio_config = AioConfig(**options, http_session_cls=shared_tls_session_class())
        except TypeError:
            self._aio_config = AioConfig(**options)
        return self._aio_config

    async def __aenter__(self) -> AwsClients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- discovery

    def profiles(self) -> list[str]:
        """Profiles the user can pick (the AWS config's, or the demo's)."""
        if self._profile_names is not None:
            return list(self._profile_names)
        return list_profiles()

    def resolve_region(self, profile: str) -> str | None:
        """The default region of ``profile`` (the demo's default region for static credentials)."""
        if self._credentials_override is not None:
            return self._default_region
        return resolve_region(profile)

    # ----------------------------------------------------------------- clients

    def session(self, profile: str) -> _Session:
        """The (cached) aiobotocore session of ``profile``."""
        key = "" if self._credentials_override is not None else profile
        session = self._sessions.get(key)
        if session is None:
            if self._credentials_override is not None:
                # Static credentials: keep the user's shared config (profiles, endpoint_url,
                # retry settings, credential processes) out of it entirely.
                session = _new_session(None)
                session.set_config_variable("config_file", os.devnull)
                session.set_config_variable("credentials_file", os.devnull)
            else:
                session = _session_for(profile)
            # One loader for every profile: the EC2/SSM models are read (and trimmed to the
            # operations ssmtui calls, see ssmtui.aws.service_models) once.
            if self._loader is None:
                from ssmtui.aws.service_models import TrimmedLoader

                self._loader = TrimmedLoader(data_path=session.get_config_variable("data_path"))
            session.register_component("data_loader", self._loader)
            self._sessions[key] = session
        return session

    async def get(self, service: str, profile: str, region: str) -> Any:
        """The cached client for ``service`` in ``profile``/``region`` (created on first use)."""
        if self._closed:
            raise RuntimeError("AwsClients is closed")
        key = (service, profile, region)
        client = self._clients.get(key)
        if client is not None:
            return client
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            client = self._clients.get(key)
            if client is None:
                await _import_aiobotocore()
                client = await self._create(service, profile, region)
                self._clients[key] = client
        return client

    async def _create(self, service: str, profile: str, region: str) -> Any:
        kwargs: dict[str, Any] = {
            "region_name": region,
            "config": self._config(),
            "verify": self._verify,
        }
        endpoint = self.config.endpoint_for(service) if service in ENDPOINT_SERVICES else None
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if self._credentials_override is not None:
            creds = self._credentials_override(profile)
            if creds is not None:
                kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = creds
        try:
            creator = self.session(profile).create_client(service, **kwargs)
            return await self._stack.enter_async_context(creator)
        except bce.ProfileNotFound as exc:
            raise ConfigError(
                f"unknown AWS profile {profile!r}",
                hint="list profiles with: aws configure list-profiles",
                cause=exc,
            ) from exc
        except Exception as exc:
            raise translate(exc, profile=profile, region=region, service=service) from exc

    @asynccontextmanager
    async def client(self, service: str, profile: str, region: str) -> AsyncIterator[Any]:
        """``async with clients.client("ssm", profile, region) as ssm: …``.

        Yields the cached client (it stays open for reuse); botocore errors raised in the block
        come out as :mod:`ssmtui.errors` naming the profile, region and service.
        """
        client = await self.get(service, profile, region)
        with aws_errors(profile=profile, region=region, service=service):
            yield client

    async def credentials(self, profile: str) -> Any:
        """Frozen credentials of ``profile`` for signing requests ourselves (the data-channel
        websocket upgrade), or None when there are none."""
        if self._credentials_override is not None:
            keys = self._credentials_override(profile)
            if keys is None:
                return None
            from botocore.credentials import Credentials

            return Credentials(*keys).get_frozen_credentials()
        try:
            creds = await self.session(profile).get_credentials()
            return None if creds is None else await creds.get_frozen_credentials()
        except Exception as exc:
            raise translate(exc, profile=profile) from exc

    async def aclose(self) -> None:
        """Close every client (idempotent)."""
        self._closed = True
        self._clients.clear()
        await self._stack.aclose()


def demo_clients(
    server: DemoServer,
    config: Config | None = None,
    *,
    profile_names: Sequence[str] | None = None,
    default_region: str | None = None,
    verify: bool | str | None = None,
) -> AwsClients:
    """:class:`AwsClients` aimed at a demo server: all four services at ``server.endpoint``, with
    the server's static credentials per profile (unknown profiles are rejected by the server).

    ``profile_names`` / ``default_region`` default to the served fleet's, when the server has one
    (``server.state.fleet``).
    """
    base = config if config is not None else Config()
    base = base.with_overrides({"endpoints": dict.fromkeys(ENDPOINT_SERVICES, server.endpoint)})
    fleet = getattr(getattr(server, "state", None), "fleet", None)
    if profile_names is None and fleet is not None:
        profile_names = list(fleet.profiles)
    if default_region is None and fleet is not None and fleet.regions:
        default_region = fleet.regions[0]

    def credentials(profile: str) -> tuple[str, str]:
        kwargs = server.client_kwargs(profile, default_region or "us-east-1")
        return kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"]

    return AwsClients(
        base,
        credentials_override=credentials,
        profile_names=profile_names,
        default_region=default_region or "us-east-1",
        verify=verify,
    )
