"""What the CLI and the UI call to run sessions: one facade over aws/ and transport/.

:class:`SessionService` starts a session for an instance (StartSession), signs the websocket
upgrade, wires KMS data keys and ResumeSession into the transport, and hands back an open
:class:`~ssmtui.transport.websocket.DataChannelConnection`; tunnels get an opener that does all
of that again whenever their session has to be replaced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ssmtui.aws import sessions as aws_sessions
from ssmtui.aws.clients import AwsClients
from ssmtui.aws.kms import generate_session_key
from ssmtui.models import Instance
from ssmtui.protocol.channel import ChannelConfig
from ssmtui.transport.tunnel import Tunnel, TunnelSpec
from ssmtui.transport.websocket import DataChannelConnection, StreamEndpoint

__all__ = ["SessionKind", "SessionService"]


@dataclass(frozen=True, slots=True)
class SessionKind:
    """A document and its parameters."""

    document: str | None = None
    parameters: Mapping[str, Sequence[str]] | None = None

    @classmethod
    def shell(cls) -> SessionKind:
        return cls()

    @classmethod
    def port(cls, remote_port: int, host: str | None = None) -> SessionKind:
        doc = aws_sessions.DOCUMENTS["remote" if host else "port"]
        return cls(doc, aws_sessions.port_parameters(remote_port, host=host))

    @classmethod
    def ssh(cls, port: int = 22) -> SessionKind:
        return cls(aws_sessions.DOCUMENTS["ssh"], {"portNumber": [str(port)]})

    @classmethod
    def command(cls, command: str, interactive: bool = False) -> SessionKind:
        doc = aws_sessions.DOCUMENTS["interactive" if interactive else "command"]
        return cls(doc, {"command": [command]})


class SessionService:
    """Opens data channels to instances with the clients of their profile and region."""

    def __init__(
        self,
        clients: AwsClients,
        *,
        client_version: str | None = None,
        stall_timeout: float = 30.0,
    ) -> None:
        self.clients = clients
        self.channel_config = ChannelConfig(
            client_version=client_version or clients.config.client_version
        )
        self.stall_timeout = stall_timeout

    async def _endpoint(self, instance: Instance, url: str, token: str) -> StreamEndpoint:
        creds = await self.clients.credentials(instance.profile)
        headers = aws_sessions.sign_stream_url(url, creds, instance.region)
        return StreamEndpoint(url, token, headers)

    async def open(
        self, instance: Instance, kind: SessionKind | None = None, *, reason: str | None = None
    ) -> DataChannelConnection:
        """StartSession on ``instance`` and open its data channel."""
        kind = kind or SessionKind.shell()
        profile, region = instance.profile, instance.region
        async with self.clients.client("ssm", profile, region) as ssm:
            started = await aws_sessions.start_session(
                ssm,
                instance.instance_id,
                document=kind.document,
                parameters=kind.parameters,
                reason=reason,
            )

        async def data_key(key_id: str, context: dict[str, str]) -> tuple[bytes, bytes]:
            async with self.clients.client("kms", profile, region) as kms:
                return await generate_session_key(kms, key_id, context)

        async def resume() -> StreamEndpoint:
            async with self.clients.client("ssm", profile, region) as ssm:
                url, token = await aws_sessions.resume_session(ssm, started.session_id)
            return await self._endpoint(instance, url or started.stream_url, token)

        conn = DataChannelConnection(
            await self._endpoint(instance, started.stream_url, started.token),
            session_id=started.session_id,
            target_id=instance.instance_id,
            config=self.channel_config,
            data_key=data_key,
            resume=resume,
            stall_timeout=self.stall_timeout,
        )
        try:
            await conn.open()
        except Exception:
            await self.terminate(instance, started.session_id)
            raise
        return conn

    async def terminate(self, instance: Instance, session_id: str) -> None:
        """TerminateSession, best effort (the session may already be gone)."""
        try:
            async with self.clients.client("ssm", instance.profile, instance.region) as ssm:
                await aws_sessions.terminate_session(ssm, session_id)
        except Exception:  # nothing more to do for a session that is gone
            return

    def tunnel(self, instance: Instance, spec: TunnelSpec) -> Tunnel:
        """A tunnel whose sessions are opened (and reopened) on ``instance``."""
        kind = SessionKind.port(spec.remote_port, spec.remote_host)

        async def opener() -> DataChannelConnection:
            return await self.open(instance, kind)

        return Tunnel(spec, opener)
