"""The simulated agent's session plugins for shells and commands, and the plugin factory.

* :class:`ShellPlugin`: Standard_Stream (a login-less interactive bash on a pty) and
  InteractiveCommands (``bash -c <command>`` on a pty). No handshake unless KMS is on; output
  starts after ``first_read_delay`` (the real agent: 1 s); ends with Terminating, no ExitCode.
* :class:`CommandPlugin`: NonInteractiveCommands (``sh -c <command>`` without a pty): stdout as
  Output (1), stderr as StdErr (11), then ExitCode (12) ``EXIT_CODE: <n>``.

Port sessions live in :mod:`ssmtui.sim.agent_port`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.frames import PayloadType
from ssmtui.sim.agent_base import AgentPlugin, Ending
from ssmtui.sim.agent_port import PortPlugin
from ssmtui.sim.agent_pty import PtyProcess, reap, shell_argv, shell_environment, split_utf8
from ssmtui.sim.agent_session import SimAgentSession

__all__ = ["CommandPlugin", "ShellPlugin", "make_plugin"]

_READ_SIZE = 1024


def make_plugin(host: SimAgentSession) -> AgentPlugin:
    """The plugin the real agent would run for this session's document."""
    session = host.session
    kind = session.session_type
    if kind == "Port":
        return PortPlugin(host)
    if kind == "NonInteractiveCommands":
        return CommandPlugin(host, session.param("command") or "")
    if kind == "InteractiveCommands":
        return ShellPlugin(host, command=session.param("command") or "")
    return ShellPlugin(host)


def _environment(host: SimAgentSession) -> dict[str, str]:
    """The child environment; RunAs (``runAsEnabled``/``runAsDefaultUser``) names the user."""
    prefs = host.session.preferences
    user = "ssm-user"
    if prefs.get("runAsEnabled") and prefs.get("runAsDefaultUser"):
        user = str(prefs["runAsDefaultUser"])
    return shell_environment(host.home_dir(), host.host_name, host.session_id, user)


def _shell_profile(host: SimAgentSession) -> str:
    """The preferences' Linux shell profile (``shellProfile.linux``), run before the user types."""
    profile = host.session.preferences.get("shellProfile")
    return str(profile.get("linux") or "") if isinstance(profile, dict) else ""


class ShellPlugin(AgentPlugin):
    """A pty running an interactive shell (or one command, for InteractiveCommands)."""

    def __init__(self, host: SimAgentSession, command: str | None = None) -> None:
        super().__init__(host)
        self.command = command
        self.pty: PtyProcess | None = None

    async def run(self) -> Ending:
        host = self.host
        env = _environment(host)
        self.pty = pty = await PtyProcess.spawn(shell_argv(self.command), env, host.home_dir())
        profile = _shell_profile(host) if self.command is None else ""
        if profile:
            pty.write(profile.encode() + b"\n")
        host.set_ready(True)
        await asyncio.sleep(host.config.first_read_delay)
        carry = b""
        while True:
            await host.wait_window()
            data = await pty.read(_READ_SIZE - len(carry))
            if not data:
                break
            out, carry = split_utf8(carry + data)
            if out:
                await host.send_paced(PayloadType.OUTPUT, out)
        if carry:
            await host.send_paced(PayloadType.OUTPUT, carry)
        await pty.wait()
        return Ending.finished("the shell exited")

    def on_input(self, payload_type: int, data: bytes) -> None:
        pty = self.pty
        if pty is None:
            return
        if payload_type == PayloadType.OUTPUT:
            pty.write(data)
        elif payload_type == PayloadType.SIZE:
            with contextlib.suppress(pl.PayloadError):
                cols, rows = pl.decode_size(data)
                pty.resize(min(cols, 0xFFFF), min(rows, 0xFFFF))
        # Every other payload type is ignored, as the real shell plugin does.

    async def close(self) -> None:
        if self.pty is not None:
            await self.pty.close()


class CommandPlugin(AgentPlugin):
    """One command without a terminal, stdout and stderr kept apart (separateOutputStream)."""

    handshake = True

    def __init__(self, host: SimAgentSession, command: str) -> None:
        super().__init__(host)
        self.command = command
        self.proc: asyncio.subprocess.Process | None = None

    async def run(self) -> Ending:
        host = self.host
        home = host.home_dir()
        env = _environment(host)
        sh = shutil.which("sh") or "/bin/sh"
        self.proc = proc = await asyncio.create_subprocess_exec(
            sh,
            "-c",
            self.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(home),
            start_new_session=True,
        )
        host.set_ready(True)
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.gather(
            self._pump(proc.stdout, PayloadType.OUTPUT),
            self._pump(proc.stderr, PayloadType.STDERR),
        )
        code = await proc.wait()
        # Go's ProcessState.ExitCode() is -1 for a process killed by a signal.
        await host.send_paced(PayloadType.EXIT_CODE, pl.encode_exit_code(code if code >= 0 else -1))
        return Ending.finished(f"the command exited with {code}")

    async def _pump(self, stream: asyncio.StreamReader, payload_type: int) -> None:
        while True:
            await self.host.wait_window()
            data = await stream.read(_READ_SIZE)
            if not data:
                return
            await self.host.send_paced(payload_type, data)

    def on_input(self, payload_type: int, data: bytes) -> None:
        """Only control bytes matter: 0x03 → SIGINT, 0x1C → SIGQUIT (PROTOCOL.md §7.1)."""
        proc = self.proc
        if proc is None or payload_type != PayloadType.OUTPUT or proc.returncode is not None:
            return
        for byte, sig in ((b"\x03", signal.SIGINT), (b"\x1c", signal.SIGQUIT)):
            if byte in data:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)

    async def close(self) -> None:
        if self.proc is not None:
            await reap(self.proc)
