"""Byte pipes over a session: stdin/stdout for ``ssh -o ProxyCommand`` (AWS-StartSSHSession),
and the output of a non-interactive command with its exit code."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.events import AgentSessionState, ChannelClosed, SessionReady, StreamData
from ssmtui.protocol.frames import PayloadType
from ssmtui.transport.fdio import write_all
from ssmtui.transport.websocket import ConnectionLost, DataChannelConnection, TransportError

__all__ = ["run_command", "run_stdio_proxy"]


async def run_stdio_proxy(conn: DataChannelConnection, stdin_fd: int, stdout_fd: int) -> int:
    """Copy stdin to the session and the session to stdout until either side ends.

    Like the reference client, stdin EOF ends the proxy quietly; the agent ends the session
    when sshd closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(stdin_fd, "rb", 0, closefd=False)
    )

    async def upstream() -> None:
        while not conn.closed:
            data = await reader.read(64 * 1024)
            if not data:
                return
            await conn.send(PayloadType.OUTPUT, data)

    async def downstream() -> int:
        async for ev in conn.events():
            if isinstance(ev, StreamData) and ev.payload_type == PayloadType.OUTPUT:
                await loop.run_in_executor(None, write_all, stdout_fd, ev.data)
            elif isinstance(ev, ChannelClosed | ConnectionLost):
                return 0 if isinstance(ev, ChannelClosed) else 255
        return 0

    up = asyncio.create_task(upstream())
    down = asyncio.create_task(downstream())
    try:
        finished, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if down in finished:
            return down.result()
        with contextlib.suppress(TransportError):
            up.result()
        # stdin ended: give in-flight data a moment to be acknowledged, then leave
        for _ in range(50):
            if conn.channel.in_flight == 0 or conn.closed:
                break
            await asyncio.sleep(0.02)
        return 0
    finally:
        up.cancel()
        down.cancel()
        transport.close()
        await conn.close()


async def run_command(
    conn: DataChannelConnection,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
) -> int:
    """Collect a NonInteractiveCommands session; returns the remote exit code (255 if none)."""
    code: int | None = None
    try:
        async for ev in conn.events():
            if isinstance(ev, StreamData):
                if ev.payload_type == PayloadType.OUTPUT:
                    on_stdout(ev.data)
                elif ev.payload_type == PayloadType.STDERR:
                    on_stderr(ev.data)
                elif ev.payload_type == PayloadType.EXIT_CODE:
                    with contextlib.suppress(pl.PayloadError):
                        code = pl.decode_exit_code(ev.data)
            elif (isinstance(ev, AgentSessionState) and ev.state == "Terminating") or isinstance(
                ev, ChannelClosed
            ):
                break
            elif isinstance(ev, SessionReady):
                continue
        else:
            if code is None:
                raise TransportError(conn.end_reason or "the session ended without an exit code")
    finally:
        await conn.close()
    return 255 if code is None else code
