"""A drop-in ``session-manager-plugin``: what the AWS CLI runs after its own StartSession.

Same argv as AWS's binary (PROTOCOL.md §1.3)::

    session-manager-plugin RESPONSE REGION StartSession PROFILE REQUEST-JSON SSM-ENDPOINT

RESPONSE is the StartSession response JSON, or the literal ``AWS_SSM_START_SESSION_RESPONSE``
(the JSON is then read from that environment variable, which is removed). ``--version`` prints a
bare dotted version above 1.2.497.0 so current AWS CLIs pass the response that way; no
arguments prints the "installed successfully" message.

The session is already started, so this opens its data channel directly and decides what to run
from the handshake, as the reference plugin does: ``Port`` with ``type: LocalPortForwarding`` →
a local listener on ``localPortNumber``; ``Port`` without a type → stdin/stdout (ssh's
ProxyCommand); anything else → a shell on this terminal. ResumeSession/TerminateSession go to
the SSM endpoint of argv[6]; those calls and KMS use the profile of argv[4] and the region of
argv[2].
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ssmtui import CLIENT_VERSION
from ssmtui.cli_sessions import session_errors, signal_handlers
from ssmtui.errors import SessionError, SsmtuiError, UsageError, one_line

if TYPE_CHECKING:
    from ssmtui.aws.clients import AwsClients
    from ssmtui.protocol.events import Event
    from ssmtui.transport.websocket import DataChannelConnection

__all__ = ["RESPONSE_ENV", "PluginRequest", "main", "parse_argv"]

RESPONSE_ENV = "AWS_SSM_START_SESSION_RESPONSE"
PROG = "ssmtui"
INSTALLED = (
    "\nThe Session Manager plugin was installed successfully. "
    "Use the AWS CLI to start a session.\n\n"
)
USAGE_HINT = "the AWS CLI runs this: aws ssm start-session --target i-0123456789abcdef0"


@dataclass(frozen=True)
class PluginRequest:
    """What the AWS CLI handed over."""

    session_id: str
    token: str = field(repr=False)
    stream_url: str
    region: str
    operation: str
    profile: str | None = None
    target: str = ""
    endpoint: str | None = None


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"bad {what}: not JSON ({exc.msg} at char {exc.pos})", hint=USAGE_HINT
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"bad {what}: expected a JSON object", hint=USAGE_HINT)
    return value


def _string(obj: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise UsageError(f"bad {what}: no {key}", hint=USAGE_HINT)
    return value


def parse_argv(argv: Sequence[str], environ: MutableMapping[str, str]) -> PluginRequest:
    """Read argv[1..6] (argv[0] is the program); the response env var is removed from
    ``environ``. Raises :class:`UsageError` for anything malformed."""
    operation = argv[3]
    if operation != "StartSession":
        raise UsageError(f"Invalid Operation {operation!r}: only StartSession is supported")
    raw = argv[1]
    if raw.startswith(RESPONSE_ENV):
        text = environ.pop(RESPONSE_ENV, None)
        if text is None:
            raise UsageError(f"{RESPONSE_ENV} is not set", hint=USAGE_HINT)
    else:
        text = raw
    what = "StartSession response (argument 1)"
    response = _json_object(text, what)
    session_id = _string(response, "SessionId", what)
    stream_url = _string(response, "StreamUrl", what)
    token = _string(response, "TokenValue", what, required=False)
    region = argv[2].strip()
    if not region:
        raise UsageError("no region (argument 2)", hint=USAGE_HINT)
    profile = argv[4] if len(argv) > 4 and argv[4] else None
    target = ""
    if len(argv) > 5 and argv[5]:
        target = _string(
            _json_object(argv[5], "request parameters (argument 5)"),
            "Target",
            "request parameters (argument 5)",
            required=False,
        )
    endpoint = argv[6] if len(argv) > 6 and argv[6] else None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"bad SSM endpoint {endpoint!r} (argument 6): expected a URL")
    return PluginRequest(
        session_id=session_id,
        token=token,
        stream_url=stream_url,
        region=region,
        operation=operation,
        profile=profile,
        target=target,
        endpoint=endpoint,
    )


def _say(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _report(err: SsmtuiError) -> None:
    for i, line in enumerate(err.lines()):
        sys.stderr.write((f"{PROG}: " if i == 0 else "") + line + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run as ``session-manager-plugin``; returns the exit status."""
    args = list(sys.argv if argv is None else argv)
    # The AWS CLI starts the plugin with SIGINT ignored, and an ignored disposition survives
    # exec: take it back explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if len(args) <= 1:
        _say(INSTALLED)
        return 0
    if len(args) == 2 and args[1] == "--version":
        _say(CLIENT_VERSION + "\n")
        return 0
    try:
        if len(args) < 4:
            raise UsageError(
                f"Unknown operation {' '.join(args[1:])!r}",
                hint="use session-manager-plugin --version to check the version",
            )
        request = parse_argv(args, os.environ)
        return int(asyncio.run(_run(request)))
    except SsmtuiError as err:
        _report(err)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        _report(
            SsmtuiError(
                f"internal error: {type(exc).__name__}: {one_line(exc, 300)}",
                hint="run again with SSMTUI_DEBUG=1 for the traceback, and report it",
            )
        )
        if os.environ.get("SSMTUI_DEBUG", "") not in ("", "0", "false", "no"):
            import traceback

            traceback.print_exc()
        return 1


# --------------------------------------------------------------------------- the session


def _clients(request: PluginRequest) -> tuple[AwsClients, str]:
    """Clients with argv[6] as the SSM endpoint, and the profile name to use.

    An empty profile, or one the shared config does not define, means the default credential
    chain (environment variables, the ``default`` profile, an instance role)."""
    from ssmtui.aws.clients import AwsClients, list_profiles
    from ssmtui.config import Config

    config = Config()
    if request.endpoint:
        config = config.with_overrides({"endpoints": {"ssm": request.endpoint}})
    profile = request.profile or os.environ.get("AWS_PROFILE") or "default"
    if profile != "default":
        try:
            known = list_profiles()
        except SsmtuiError:
            known = []
        if profile not in known:
            profile = "default"
    return AwsClients(config), profile


async def _connection(
    request: PluginRequest, clients: AwsClients, profile: str
) -> DataChannelConnection:
    """The session's data channel, wired to KMS and ResumeSession like ``SessionService``."""
    from ssmtui.aws import sessions as aws_sessions
    from ssmtui.aws.kms import generate_session_key
    from ssmtui.protocol.channel import ChannelConfig
    from ssmtui.transport.websocket import DataChannelConnection, StreamEndpoint

    region = request.region

    async def endpoint(url: str, token: str) -> StreamEndpoint:
        creds = await clients.credentials(profile)
        return StreamEndpoint(url, token, aws_sessions.sign_stream_url(url, creds, region))

    async def data_key(key_id: str, context: dict[str, str]) -> tuple[bytes, bytes]:
        async with clients.client("kms", profile, region) as kms:
            return await generate_session_key(kms, key_id, context)

    async def resume() -> StreamEndpoint:
        async with clients.client("ssm", profile, region) as ssm:
            url, token = await aws_sessions.resume_session(ssm, request.session_id)
        return await endpoint(url or request.stream_url, token)

    return DataChannelConnection(
        await endpoint(request.stream_url, request.token),
        session_id=request.session_id,
        target_id=request.target,
        config=ChannelConfig(client_version=CLIENT_VERSION),
        data_key=data_key,
        resume=resume,
    )


async def _terminate(clients: AwsClients, profile: str, request: PluginRequest) -> None:
    """TerminateSession through argv[6], best effort and bounded."""
    from ssmtui.aws import sessions as aws_sessions

    async def call() -> None:
        async with clients.client("ssm", profile, request.region) as ssm:
            await aws_sessions.terminate_session(ssm, request.session_id)

    with contextlib.suppress(Exception):
        await asyncio.wait_for(call(), 5)


async def _peek_ready(conn: DataChannelConnection) -> tuple[Any, list[Event]]:
    """Events up to the session's SessionReady (or its end); returns (ready or None, events)."""
    from ssmtui.protocol.events import SessionReady

    seen: list[Event] = []
    while True:
        ev = await conn.next_event()
        if ev is None:
            return None, seen
        seen.append(ev)
        if isinstance(ev, SessionReady):
            return ev, seen


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP)


async def _run(request: PluginRequest) -> int:
    clients, profile = _clients(request)
    try:
        _say(f"\nStarting session with SessionId: {request.session_id}\n")
        with session_errors():
            conn = await _connection(request, clients, profile)
            await conn.open()
            try:
                code = await _dispatch(conn, request, clients, profile)
            finally:
                await conn.close()
        _say(f"\n\nExiting session with sessionId: {request.session_id}.\n\n")
        return code
    finally:
        await clients.aclose()


async def _dispatch(
    conn: DataChannelConnection, request: PluginRequest, clients: AwsClients, profile: str
) -> int:
    """Run the session layer the handshake asks for (PROTOCOL.md §7.2)."""
    ready, seen = await _peek_ready(conn)
    conn.push_back(*seen)
    props = getattr(ready, "properties", None)
    props = props if isinstance(props, dict) else {}
    kind = getattr(ready, "session_type", "")
    if kind == "Port" and props.get("type") == "LocalPortForwarding":
        return await _port_forwarding(conn, request, props, clients, profile)
    if kind == "Port":
        return await _stdio(conn)
    return await _shell(conn, request, clients, profile)


async def _shell(
    conn: DataChannelConnection, request: PluginRequest, clients: AwsClients, profile: str
) -> int:
    """A shell (or interactive command) on this terminal; signals go to the remote side as
    control bytes when the terminal is not in raw mode, as the reference plugin sends them."""
    from ssmtui.protocol.frames import PayloadType
    from ssmtui.transport.shell import run_shell
    from ssmtui.transport.websocket import TransportError

    def send(byte: bytes) -> Callable[[], None]:
        def handler() -> None:
            with contextlib.suppress(TransportError):
                conn.send_nowait(PayloadType.OUTPUT, byte)

        return handler

    tty = os.isatty(sys.stdin.fileno())
    handlers = {
        signal.SIGINT: send(b"\x03"),
        signal.SIGQUIT: send(b"\x1c"),
        signal.SIGTSTP: send(b"\x1a"),
    }
    with signal_handlers(handlers):
        result = await run_shell(conn, escape=b"~" if tty else None)
    if result.reason == "terminated by ~.":
        await _terminate(clients, profile, request)
        return 0
    if result.exit_code == 255:
        raise SessionError(f"lost session {request.session_id}: {result.reason}")
    return 0


async def _stdio(conn: DataChannelConnection) -> int:
    """stdin/stdout to the port (AWS-StartSSHSession)."""
    from ssmtui.transport.proxy import run_stdio_proxy

    stop = asyncio.Event()
    with signal_handlers(dict.fromkeys(_STOP_SIGNALS, stop.set)):
        work = asyncio.create_task(run_stdio_proxy(conn, sys.stdin.fileno(), sys.stdout.fileno()))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            return 0
    code = work.result()
    if code != 0:
        raise SessionError(f"lost the session: {conn.end_reason}")
    return 0


async def _port_forwarding(
    conn: DataChannelConnection,
    request: PluginRequest,
    props: Mapping[str, Any],
    clients: AwsClients,
    profile: str,
) -> int:
    """A local listener on ``localPortNumber`` for this one session, until a stop signal or
    the session ends."""
    from ssmtui.transport.tunnel import Tunnel, TunnelSpec, TunnelStats
    from ssmtui.transport.websocket import TransportError

    if props.get("localConnectionType") == "unix" or props.get("localUnixSocket"):
        raise SessionError("forwarding to a local Unix socket is not supported")
    try:
        local_port = int(props.get("localPortNumber") or 0)
        remote_port = int(props.get("portNumber") or 0)
    except (TypeError, ValueError):
        raise SessionError(f"bad port numbers in the session properties: {dict(props)}") from None
    if not 0 <= local_port <= 65535:
        raise SessionError(f"bad localPortNumber {local_port}")
    given = False
    stop = asyncio.Event()
    ended = asyncio.Event()
    accepted = False
    mode = ""

    async def opener() -> DataChannelConnection:
        nonlocal given
        if given:  # the AWS CLI started one session; when it ends, so does the plugin
            ended.set()
            raise TransportError("the session has ended")
        given = True
        return conn

    def on_change(stats: TunnelStats) -> None:
        nonlocal accepted
        if stats.state == "reconnecting":
            ended.set()
        if stats.connections_total and not accepted and mode:
            accepted = True
            if mode == "mux":
                _say(f"\nConnection accepted for session [{request.session_id}]\n")
            else:
                _say(f"Connection accepted for session {request.session_id}.\n")

    spec = TunnelSpec(request.target, local_port, remote_port, props.get("host") or None)
    tunnel = Tunnel(spec, opener, on_change=on_change)
    try:
        await tunnel.start()
    except TransportError as exc:
        await _terminate(clients, profile, request)
        raise SessionError(str(exc), hint="pick another localPortNumber (0 = any)") from exc
    try:
        with signal_handlers(dict.fromkeys(_STOP_SIGNALS, stop.set)):
            up = asyncio.create_task(tunnel.wait_up())
            waiters = [up, asyncio.create_task(stop.wait()), asyncio.create_task(ended.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not up.done() or up.exception() is not None:
                for task in waiters:
                    task.cancel()
                if stop.is_set():
                    await _terminate(clients, profile, request)
                    return 0
                raise SessionError(tunnel.stats.error or "the port session did not become ready")
            mode = tunnel.stats.mode
            _say(f"Port {tunnel.stats.local_port} opened for sessionId {request.session_id}.\n")
            if mode == "mux":
                _say("Waiting for connections...\n")
            await asyncio.wait(waiters[1:], return_when=asyncio.FIRST_COMPLETED)
            for task in waiters:
                task.cancel()
    finally:
        await tunnel.stop()
    if stop.is_set() and tunnel.stats.mode != "mux":
        await _terminate(clients, profile, request)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
