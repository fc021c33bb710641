"""What the CLI and the UI call to run sessions: one facade over aws/ and transport/.

:class:`SessionService` starts a session for an instance (StartSession), signs the websocket
upgrade, wires KMS data keys and ResumeSession into the transport, and hands back an open
:class:`~ssmtui.transport.websocket.DataChannelConnection`; tunnels get an opener that does all
of that again whenever their session has to be replaced.

With a :class:`~ssmtui.store.history.History`, every session opened here is recorded (start, end,
exit status, bytes) and every tunnel run is one record; recording is best effort and never
breaks a session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ssmtui.aws import sessions as aws_sessions
from ssmtui.aws.clients import AwsClients
from ssmtui.aws.errors import translate
from ssmtui.aws.kms import generate_session_key
from ssmtui.errors import AwsError, SsmtuiError
from ssmtui.models import FleetScope, Instance, RemoteSession
from ssmtui.protocol.channel import ChannelConfig
from ssmtui.store.history import History, kind_for_document
from ssmtui.store.redact import scrub
from ssmtui.transport.tunnel import SessionOpener, Tunnel, TunnelSpec
from ssmtui.transport.websocket import DataChannelConnection, StreamEndpoint

__all__ = ["RemoteSessions", "SessionKind", "SessionListing", "SessionService"]

log = logging.getLogger(__name__)


class _ScrubSecrets(logging.Filter):
    """Keep secrets out of the AWS SDK's and websockets' DEBUG logs (an app that embeds ssmtui,
    a user debugging): botocore logs every response body (StartSession's and ResumeSession's
    TokenValue, GenerateDataKey's Plaintext: dropped whole) and request headers and canonical
    requests (``X-Amz-Security-Token``, signatures); websockets logs the signed upgrade and the
    frames. Other lines are kept, with secret-shaped values replaced (``store.redact``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Response body"):
            record.msg = "Response body: (not logged: it may hold session tokens or keys)"
            record.args = ()
            return True
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot format: leave it to logging's own handling
            return True
        clean = scrub(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


_SCRUB = _ScrubSecrets()
for _name in (
    "botocore.parsers",
    "aiobotocore.parsers",
    "botocore.endpoint",
    "aiobotocore.endpoint",
    "botocore.auth",
    "botocore.hooks",
    "botocore.httpsession",
    "aiobotocore.httpsession",
    "websockets.client",
    "websockets.protocol",
):
    logging.getLogger(_name).addFilter(_SCRUB)


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


def _where(err: AwsError, instance: Instance, operation: str) -> SsmtuiError:
    """``aws.sessions`` translates errors without knowing the profile and region; translate the
    AWS error again so the message says where (``dev/us-east-1: not authorized to call
    ssm:StartSession …``) and the hint names the right profile."""
    if err.profile is not None or err.cause is None:
        return err
    return translate(
        err.cause,
        profile=instance.profile,
        region=instance.region,
        service="ssm",
        operation=operation,
    )


class SessionService:
    """Opens data channels to instances with the clients of their profile and region."""

    def __init__(
        self,
        clients: AwsClients,
        *,
        client_version: str | None = None,
        stall_timeout: float = 30.0,
        ready_timeout: float | None = 60.0,
        history: History | None = None,
        transcripts: bool = False,
    ) -> None:
        self.clients = clients
        #: Record shell output as asciicast v2 transcripts (opt-in; needs a history).
        self.transcripts = transcripts and history is not None
        #: Where sessions are recorded (None: not recorded).
        self.history = history
        #: AWS session id -> history record id, while a recorded session is open.
        self.history_ids: dict[str, int] = {}
        self.channel_config = ChannelConfig(
            client_version=client_version or clients.config.client_version
        )
        self.stall_timeout = stall_timeout
        #: Seconds a new session may take to become ready (handshake or first output).
        self.ready_timeout = ready_timeout

    async def _endpoint(self, instance: Instance, url: str, token: str) -> StreamEndpoint:
        creds = await self.clients.credentials(instance.profile)
        headers = aws_sessions.sign_stream_url(url, creds, instance.region)
        return StreamEndpoint(url, token, headers)

    async def open(
        self,
        instance: Instance,
        kind: SessionKind | None = None,
        *,
        reason: str | None = None,
        record: bool = True,
    ) -> DataChannelConnection:
        """StartSession on ``instance`` and open its data channel.

        With a history (and ``record``), the session is recorded now and its end when the
        connection closes.
        """
        kind = kind or SessionKind.shell()
        profile, region = instance.profile, instance.region
        try:
            async with self.clients.client("ssm", profile, region) as ssm:
                started = await aws_sessions.start_session(
                    ssm,
                    instance.instance_id,
                    document=kind.document,
                    parameters=kind.parameters,
                    reason=reason,
                )
        except AwsError as err:
            raise _where(err, instance, "StartSession") from err.cause

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
            ready_timeout=self.ready_timeout,
        )
        record_id = await self._record_start(instance, kind, started.session_id) if record else None
        if record_id is not None:
            self.history_ids[started.session_id] = record_id

            async def record_end(closed: DataChannelConnection) -> None:
                self.history_ids.pop(closed.session_id, None)
                await self._record_end(
                    record_id,
                    exit_status=closed.exit_code,
                    end_reason=closed.end_reason,
                    bytes_in=closed.bytes_in,
                    bytes_out=closed.bytes_out,
                )

            conn.close_hooks.append(record_end)
            if self.transcripts and kind.document in (None, aws_sessions.DOCUMENTS["interactive"]):
                self._attach_transcript(conn, instance, record_id)
        try:
            await conn.open()
        except Exception as exc:
            await self.terminate(instance, started.session_id)
            if record_id is not None:
                self.history_ids.pop(started.session_id, None)
                await self._record_end(record_id, end_reason=f"could not open: {exc}")
            raise
        return conn

    def _attach_transcript(
        self, conn: DataChannelConnection, instance: Instance, record_id: int
    ) -> None:
        """Tee the session's output (never its input) into a transcript linked to the record."""
        from ssmtui.store.transcripts import TranscriptWriter, new_transcript_path

        try:
            writer = TranscriptWriter(
                new_transcript_path(instance.instance_id),
                title=f"{instance.display_name} ({instance.instance_id})",
            )
        except Exception as exc:  # a transcript problem never stops a session
            log.warning("transcript not recorded: %s", exc)
            return
        conn.output_hooks.append(writer.output)

        async def finish(_closed: DataChannelConnection) -> None:
            writer.close()
            if self.history is not None and writer.events_written:
                await asyncio.to_thread(self.history.set_transcript, record_id, writer.path)

        conn.close_hooks.insert(0, finish)

    async def _record_start(
        self,
        instance: Instance,
        kind: SessionKind,
        session_id: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Record a start in the history; None when there is no history or recording failed."""
        history = self.history
        if history is None:
            return None
        try:
            return await asyncio.to_thread(
                history.record_start,
                kind=kind_for_document(kind.document),
                instance_id=instance.instance_id,
                instance_name=instance.name or instance.computer_name,
                profile=instance.profile,
                region=instance.region,
                account_id=instance.account_id,
                document=kind.document,
                parameters={**(kind.parameters or {}), **(extra or {})},
                session_id=session_id,
            )
        except Exception as exc:  # history is best effort: never break a session
            log.warning("could not record the session in the history: %s", exc)
            return None

    async def _record_end(self, record_id: int, **fields: Any) -> None:
        """Record an end in the history (best effort)."""
        history = self.history
        if history is None:
            return
        try:
            await asyncio.to_thread(history.record_end, record_id, **fields)
        except Exception as exc:  # history is best effort: never break a session
            log.warning("could not record the end of a session in the history: %s", exc)

    async def terminate(self, instance: Instance, session_id: str) -> None:
        """TerminateSession, best effort (the session may already be gone)."""
        try:
            async with self.clients.client("ssm", instance.profile, instance.region) as ssm:
                await aws_sessions.terminate_session(ssm, session_id)
        except Exception:  # nothing more to do for a session that is gone
            return

    def tunnel(self, instance: Instance, spec: TunnelSpec, *, pool: int = 1) -> Tunnel:
        """A tunnel whose sessions (``pool`` of them) are opened and reopened on ``instance``."""
        kind = SessionKind.port(spec.remote_port, spec.remote_host)

        async def opener() -> DataChannelConnection:
            return await self.open(instance, kind, record=False)

        if self.history is None:
            return Tunnel(spec, opener, pool=pool)
        return _RecordedTunnel(spec, opener, service=self, instance=instance, kind=kind, pool=pool)


class _RecordedTunnel(Tunnel):
    """A tunnel whose run, from :meth:`start` to :meth:`stop`, is one history record (its
    sessions, one per reconnect, are not recorded separately)."""

    def __init__(
        self,
        spec: TunnelSpec,
        opener: SessionOpener,
        *,
        service: SessionService,
        instance: Instance,
        kind: SessionKind,
        **kw: Any,
    ) -> None:
        super().__init__(spec, opener, **kw)
        self._service = service
        self._instance = instance
        self._kind = kind
        self._record_id: int | None = None

    async def start(self) -> None:
        extra = {"localPortNumber": [str(self.spec.local_port)]}
        self._record_id = await self._service._record_start(self._instance, self._kind, None, extra)
        try:
            await super().start()
        except Exception as exc:
            await self._finish_record(str(exc))
            raise

    async def stop(self) -> None:
        await super().stop()
        await self._finish_record(self.stats.error or "stopped")

    async def _finish_record(self, reason: str) -> None:
        record_id, self._record_id = self._record_id, None
        if record_id is None:
            return
        await self._service._record_end(
            record_id,
            end_reason=reason,
            bytes_in=self.stats.bytes_in,
            bytes_out=self.stats.bytes_out,
            session_id=self.stats.session_id or None,
        )


# --------------------------------------------------------------------------- fleet sessions


@dataclass(frozen=True, slots=True)
class SessionListing:
    """Sessions over several scopes (newest first), and the scopes that failed.

    A failed scope is in :attr:`errors` and never hides the others; :attr:`callers` has the
    caller ARN of every scope where STS GetCallerIdentity answered.
    """

    sessions: tuple[RemoteSession, ...] = ()
    errors: Mapping[FleetScope, SsmtuiError] = field(default_factory=dict)
    callers: Mapping[FleetScope, str] = field(default_factory=dict)
    history: bool = False

    def is_mine(self, session: RemoteSession) -> bool:
        """Whether the caller of the session's scope started it."""
        return session.is_mine(self.callers.get(session.scope))

    def find(self, session_id: str) -> RemoteSession | None:
        """The listed session with this id."""
        return next((s for s in self.sessions if s.session_id == session_id), None)


def _in_scope(err: SsmtuiError, scope: FleetScope, service: str, operation: str) -> SsmtuiError:
    """An error from :mod:`ssmtui.aws.sessions` again, saying which profile/region failed."""
    if isinstance(err, AwsError) and err.profile is None and err.cause is not None:
        return translate(
            err.cause,
            profile=scope.profile,
            region=scope.region,
            service=service,
            operation=operation,
        )
    return err


class RemoteSessions:
    """Sessions running in the fleet, whoever started them and from wherever
    (DescribeSessions), and TerminateSession by id."""

    def __init__(self, clients: AwsClients, *, history_limit: int = 100) -> None:
        self.clients = clients
        #: Most ended sessions listed per scope (History holds every session ever).
        self.history_limit = history_limit
        self._callers: dict[FleetScope, str] = {}

    async def caller(self, scope: FleetScope) -> str | None:
        """The caller ARN of a scope's credentials (cached; None when STS does not answer)."""
        if scope in self._callers:
            return self._callers[scope]
        try:
            async with self.clients.client("sts", scope.profile, scope.region) as sts:
                arn = await aws_sessions.caller_arn(sts)
        except Exception as exc:  # "you" is a nicety: the listing works without it
            log.debug("GetCallerIdentity failed in %s: %s", scope, exc)
            return None
        self._callers[scope] = arn
        return arn

    async def _scope(
        self, scope: FleetScope, history: bool, session_id: str | None
    ) -> list[RemoteSession]:
        state, limit = ("History", self.history_limit) if history else ("Active", 1000)
        only = [{"key": "SessionId", "value": session_id}] if session_id else []
        try:
            async with self.clients.client("ssm", scope.profile, scope.region) as ssm:
                items = await aws_sessions.describe_sessions(ssm, state, filters=only, limit=limit)
        except SsmtuiError as err:
            raise _in_scope(err, scope, "ssm", "DescribeSessions") from err.cause
        except Exception as exc:
            raise translate(
                exc,
                profile=scope.profile,
                region=scope.region,
                service="ssm",
                operation="DescribeSessions",
            ) from exc
        return [aws_sessions.parse_session(i, scope.profile, scope.region) for i in items]

    async def list(
        self,
        scopes: Sequence[FleetScope],
        *,
        history: bool = False,
        session_id: str | None = None,
    ) -> SessionListing:
        """Active (or, ``history``, recently ended) sessions of every scope, concurrently; only
        the one with ``session_id`` when given."""
        unique = list(dict.fromkeys(scopes))
        listed, callers = await asyncio.gather(
            asyncio.gather(
                *(self._scope(s, history, session_id) for s in unique), return_exceptions=True
            ),
            asyncio.gather(*(self.caller(s) for s in unique)),
        )
        sessions: list[RemoteSession] = []
        errors: dict[FleetScope, SsmtuiError] = {}
        for scope, result in zip(unique, listed, strict=True):
            if isinstance(result, SsmtuiError):
                errors[scope] = result
            elif isinstance(result, BaseException):
                errors[scope] = SsmtuiError(f"{scope}: {result}", cause=result)
            else:
                sessions.extend(result)
        sessions.sort(key=lambda s: s.start.timestamp() if s.start else 0.0, reverse=True)
        return SessionListing(
            tuple(sessions),
            errors,
            {s: arn for s, arn in zip(unique, callers, strict=True) if arn},
            history,
        )

    async def find(self, session_id: str, scopes: Sequence[FleetScope]) -> SessionListing:
        """Look for one session (active first, then recent) in ``scopes``."""
        for history in (False, True):
            listing = await self.list(scopes, history=history, session_id=session_id)
            if listing.find(session_id) is not None:
                return listing
        return listing

    async def terminate(self, scope: FleetScope, session_id: str) -> None:
        """TerminateSession in ``scope``; errors (AccessDenied …) are raised, naming the scope."""
        try:
            async with self.clients.client("ssm", scope.profile, scope.region) as ssm:
                await aws_sessions.terminate_session(ssm, session_id)
        except SsmtuiError as err:
            raise _in_scope(err, scope, "ssm", "TerminateSession") from err.cause
