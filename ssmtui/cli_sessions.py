"""The session verbs of the command line: ``connect``, ``proxy`` and ``exec`` (``forward`` lives
in :mod:`ssmtui.cli_forward`), and what they share: target resolution with a numbered picker,
one-line session errors, and the invisible exit-status marker of ``connect -- COMMAND``.

Exit status, as ssh has it: the remote status when there is one, 255 when ssmtui itself failed
(no such target, AccessDenied, the connection died), so the two never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import shlex
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ssmtui.errors import SessionError, SsmtuiError, TargetError, UsageError

if TYPE_CHECKING:
    from ssmtui.models import Instance
    from ssmtui.runtime import AppContext, Runtime
    from ssmtui.services import SessionService
    from ssmtui.transport.websocket import DataChannelConnection

__all__ = [
    "EXIT_MARKER_PREFIX",
    "ExitMarker",
    "SessionFailed",
    "command_text",
    "connect_main",
    "exec_main",
    "interactive",
    "label",
    "proxy_main",
    "report",
    "resolve_instance",
    "session_errors",
    "signal_handlers",
    "stall_timeout",
    "wrap_for_exit_status",
    "write_all",
]

PROG = "ssmtui"
EXIT_SESSION_FAILED = 255
EXIT_INTERRUPTED = 130

#: The OSC sequence the wrapped remote command prints last: ``ESC ] 777 ; ssmtui-exit=N BEL``.
#: Terminals ignore unknown OSC 777 payloads, and ssmtui strips it before anything is shown.
EXIT_MARKER_PREFIX = b"\x1b]777;ssmtui-exit="
_MARKER_RE = re.compile(re.escape(EXIT_MARKER_PREFIX) + rb"(\d{1,3})\x07")
_MARKER_MAX = len(EXIT_MARKER_PREFIX) + 4


class SessionFailed(SessionError):
    """The session could not be opened or kept: exit status 255, like ssh."""

    exit_code = EXIT_SESSION_FAILED


# --------------------------------------------------------------------------- helpers


def report(message: str, hint: str | None = None) -> None:
    """``ssmtui: message`` (and ``hint: …``) on stderr."""
    sys.stderr.write(f"{PROG}: {message}\n" + (f"hint: {hint}\n" if hint else ""))
    sys.stderr.flush()


def label(inst: Instance) -> str:
    """``i-… (name)``, or the bare id when the instance has no other name."""
    name = inst.display_name
    return inst.instance_id if name == inst.instance_id else f"{inst.instance_id} ({name})"


@contextlib.contextmanager
def session_errors(exit_code: int | None = None) -> Iterator[None]:
    """Turn transport-level failures into one-line :class:`SessionError`\\ s; with ``exit_code``
    every runtime failure (not usage errors) leaves with that status instead of 1."""
    from ssmtui.transport.websocket import TransportError

    try:
        yield
    except SsmtuiError as err:
        if exit_code is not None and not isinstance(err, UsageError):
            err.exit_code = exit_code
        raise
    except (TransportError, TimeoutError, OSError) as exc:
        if isinstance(exc, TransportError):
            message = str(exc)
        elif isinstance(exc, TimeoutError):
            message = "the session did not open in time"
        else:
            message = f"network error: {exc.strerror or exc}"
        failure = SessionError(message, cause=exc)
        if exit_code is not None:
            failure.exit_code = exit_code
        raise failure from exc


def command_text(words: Sequence[str]) -> str:
    """The remote command line: one argument is taken as shell code (``'ls; exit 3'``), several
    are an argv and get quoted (``sh -c 'exit 3'`` stays three words)."""
    if not words:
        raise UsageError("no command given", hint="put the command after --: -- uname -a")
    if len(words) == 1:
        return words[0]
    return shlex.join(words)


def wrap_for_exit_status(command: str | None) -> str:
    """Shell code that runs ``command`` (None: the user's login shell) and then prints the exit
    marker with its status, for ``AWS-StartInteractiveCommand``.

    The command runs in its own shell, so ``exit 3`` or a syntax error ends only that shell; the
    wrapper traps SIGINT/SIGQUIT (children get the default action back), so Ctrl-C stops the
    command and still reports its status.
    """
    shell = '"${SHELL:-/bin/sh}"'
    launch = f"{shell} -l" if command is None else f"{shell} -c {shlex.quote(command)}"
    return (
        f'trap : INT QUIT; {launch}; s=$?; printf \'\\033]777;ssmtui-exit=%d\\007\' "$s"; exit "$s"'
    )


class ExitMarker:
    """Strips the exit marker from a stream of output chunks and remembers its status.

    The marker may be split across chunks: a tail that could be the start of one is held back
    until the next chunk decides (or :meth:`flush` gives it up).
    """

    def __init__(self) -> None:
        self.code: int | None = None
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """The part of ``pending + data`` that is safe to show now."""
        buf = self._pending + data
        self._pending = b""
        out = bytearray()
        while buf:
            match = _MARKER_RE.search(buf)
            if match is not None:
                out += buf[: match.start()]
                self.code = int(match.group(1)) & 0xFF
                buf = buf[match.end() :]
                continue
            keep = self._partial_tail(buf)
            out += buf[: len(buf) - keep]
            self._pending = buf[len(buf) - keep :]
            break
        return bytes(out)

    def flush(self) -> bytes:
        """Whatever was held back (the stream ended mid-way through something marker-like)."""
        pending, self._pending = self._pending, b""
        return pending

    @staticmethod
    def _partial_tail(buf: bytes) -> int:
        """Length of the longest tail of ``buf`` that may still become a marker."""
        start = buf.rfind(b"\x1b", max(0, len(buf) - _MARKER_MAX))
        if start < 0:
            return 0
        tail = buf[start:]
        n = len(EXIT_MARKER_PREFIX)
        if len(tail) <= n:
            return len(tail) if EXIT_MARKER_PREFIX.startswith(tail) else 0
        if tail.startswith(EXIT_MARKER_PREFIX) and tail[n:].isdigit() and len(tail) - n <= 3:
            return len(tail)
        return 0


# --------------------------------------------------------------------------- targets


async def resolve_instance(rt: Runtime, target: str, *, interactive: bool) -> Instance:
    """The one instance ``target`` names; several matches offer a numbered picker when
    ``interactive`` (stdin and stderr are terminals), else a :class:`TargetError` lists them."""
    from ssmtui.aws.fleet import resolve_target

    try:
        return await resolve_target(rt.clients, rt.scopes, target)
    except TargetError as err:
        if not interactive or len(err.candidates) < 2:
            raise
        matches = await _matches(rt, target)
        if len(matches) < 2:
            raise
        return await _pick(target, matches, err)


async def _matches(rt: Runtime, target: str) -> list[Instance]:
    """Every instance ``target`` names (the same rules as ``resolve_target``)."""
    from ssmtui.aws.fleet import list_fleet
    from ssmtui.models import Target

    parsed = Target.parse(target)
    result = await list_fleet(rt.clients, rt.scopes)
    found = [i for i in result.instances if parsed.matches(i)]
    if not found and parsed.kind == "name":
        folded = parsed.value.casefold()
        found = [
            i for i in result.instances if folded in (i.name.casefold(), i.computer_name.casefold())
        ]
    return found


async def _pick(target: str, matches: list[Instance], err: TargetError) -> Instance:
    from ssmtui.aws.fleet import describe_candidate

    lines = [f"{len(matches)} instances match {target!r}:"]
    lines += [f"  {n:>2}) {describe_candidate(inst)}" for n, inst in enumerate(matches, 1)]
    sys.stderr.write("\n".join(lines) + "\n")
    while True:
        sys.stderr.write(f"pick one [1-{len(matches)}], or Enter to cancel: ")
        sys.stderr.flush()
        answer = (await _read_line(sys.stdin.fileno())).strip()
        if not answer:
            raise err
        if answer.isdigit() and 1 <= int(answer) <= len(matches):
            return matches[int(answer) - 1]


async def _read_line(fd: int) -> str:
    """One line from a terminal without blocking the event loop (Ctrl-C still cancels)."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        if not got.done():
            try:
                got.set_result(os.read(fd, 4096))
            except OSError:
                got.set_result(b"")

    loop.add_reader(fd, readable)
    try:
        data = await got
    finally:
        loop.remove_reader(fd)
    return data.decode(errors="replace")


def stall_timeout() -> float:
    """Seconds without an answer after which a session counts as dead (hidden knob for tests:
    ``SSMTUI_STALL_TIMEOUT``)."""
    try:
        value = float(os.environ.get("SSMTUI_STALL_TIMEOUT", "30"))
    except ValueError:
        return 30.0
    return value if value > 0 else 30.0


def interactive() -> bool:
    """Whether a person can answer a question (stdin and stderr are terminals)."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


async def _terminate_quietly(svc: SessionService, inst: Instance, session_id: str) -> None:
    """TerminateSession, best effort and bounded (the service may be as stuck as the agent)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(svc.terminate(inst, session_id), 5)


def _run(factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    return asyncio.run(factory())


# --------------------------------------------------------------------------- connect


def connect_main(ctx: AppContext, args: Any) -> int:
    """``ssmtui connect TARGET [--reason R] [--no-escape] [--exit-status] [-- COMMAND…]``."""
    command = command_text(args.command) if args.command else None
    if args.reason is not None and not 1 <= len(args.reason) <= 256:
        raise UsageError("--reason must be 1 to 256 characters")
    return _run(
        lambda: _connect(
            ctx,
            args.target,
            command=command,
            exit_status=bool(args.exit_status) or command is not None,
            reason=args.reason,
            escape=not args.no_escape,
        )
    )


async def _connect(
    ctx: AppContext,
    target: str,
    *,
    command: str | None,
    exit_status: bool,
    reason: str | None,
    escape: bool,
) -> int:
    from ssmtui.runtime import open_runtime, session_service
    from ssmtui.services import SessionKind
    from ssmtui.transport.shell import run_shell

    with session_errors(EXIT_SESSION_FAILED):
        async with open_runtime(ctx) as rt:
            inst = await resolve_instance(rt, target, interactive=interactive())
            svc = session_service(rt, stall_timeout=stall_timeout())
            marker = ExitMarker() if exit_status else None
            if marker is not None:
                kind = SessionKind.command(wrap_for_exit_status(command), interactive=True)
            else:
                kind = SessionKind.shell()
            conn = await svc.open(inst, kind, reason=reason)

            def strip_marker(data: bytes) -> bytes:
                assert marker is not None
                shown = marker.feed(data)
                if marker.code is not None:
                    conn.exit_code = marker.code  # for whoever records the session
                return shown

            result = await run_shell(
                conn,
                escape=b"~" if escape and os.isatty(sys.stdin.fileno()) else None,
                output_filter=strip_marker if marker is not None else None,
            )
            if marker is not None and (rest := marker.flush()):
                write_all(sys.stdout.fileno(), rest)
            if result.exit_code == 0 and marker is None:
                return 0
            if result.exit_code == 0 and marker is not None and marker.code is not None:
                return marker.code
            await _terminate_quietly(svc, inst, conn.session_id)
    if os.isatty(sys.stdout.fileno()):
        write_all(sys.stdout.fileno(), b"\r\n")  # off the remote prompt's line
    if result.reason == "terminated by ~.":
        raise SessionFailed(f"session {conn.session_id} to {label(inst)} ended by ~.")
    if result.exit_code == 0:
        raise SessionFailed(
            f"the session to {label(inst)} ended without the command's exit status",
            hint="the command may have been killed, or the instance runs it differently",
        )
    raise SessionFailed(
        f"lost the session to {label(inst)}: {result.reason}",
        hint=f"check the instance and its SSM agent: {PROG} list {inst.instance_id}",
    )


# --------------------------------------------------------------------------- proxy


def proxy_main(ctx: AppContext, args: Any) -> int:
    """``ssmtui proxy TARGET [PORT]``: stdin/stdout for ``ssh -o ProxyCommand``."""
    port = args.port
    if not 1 <= port <= 65535:
        raise UsageError(f"bad port {port}: use 1-65535 (sshd listens on 22)")
    return _run(lambda: _proxy(ctx, args.target, port))


async def _proxy(ctx: AppContext, target: str, port: int) -> int:
    from ssmtui.runtime import open_runtime, session_service
    from ssmtui.services import SessionKind
    from ssmtui.transport.proxy import run_stdio_proxy

    with session_errors(EXIT_SESSION_FAILED):
        async with open_runtime(ctx) as rt:
            inst = await resolve_instance(rt, target, interactive=False)
            conn = await session_service(rt, stall_timeout=stall_timeout()).open(
                inst, SessionKind.ssh(port)
            )
            code = await run_stdio_proxy(conn, sys.stdin.fileno(), sys.stdout.fileno())
    if code != 0:
        raise SessionFailed(f"lost the session to {label(inst)}: {conn.end_reason}")
    return 0


# --------------------------------------------------------------------------- exec


def exec_main(ctx: AppContext, args: Any) -> int:
    """``ssmtui exec TARGET -- COMMAND…``: AWS-StartNonInteractiveCommand."""
    return _run(lambda: _exec(ctx, args.target, command_text(args.command)))


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out (also on a non-blocking descriptor)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


async def _exec(ctx: AppContext, target: str, command: str) -> int:
    from ssmtui.runtime import open_runtime, session_service
    from ssmtui.services import SessionKind

    with session_errors(EXIT_SESSION_FAILED):
        async with open_runtime(ctx) as rt:
            inst = await resolve_instance(rt, target, interactive=interactive())
            svc = session_service(rt, stall_timeout=stall_timeout())
            conn = await svc.open(inst, SessionKind.command(command))
            code = await _collect(conn)
            if code is None:
                await _terminate_quietly(svc, inst, conn.session_id)
                sys.stderr.write("\n")
                return EXIT_INTERRUPTED
            return code


async def _collect(conn: DataChannelConnection) -> int | None:
    """The command's output to stdout/stderr and its exit code; None if the user gave up.

    The first Ctrl-C goes to the remote command (0x03 means SIGINT there), the second quits."""
    from ssmtui.protocol.frames import PayloadType
    from ssmtui.transport.proxy import run_command

    out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    interrupts = 0
    gave_up = asyncio.Event()

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1 and not conn.closed:
            with contextlib.suppress(Exception):
                conn.send_nowait(PayloadType.OUTPUT, b"\x03")
        else:
            gave_up.set()

    with signal_handlers({signal.SIGINT: on_interrupt}):
        work = asyncio.create_task(
            run_command(conn, lambda b: write_all(out_fd, b), lambda b: write_all(err_fd, b))
        )
        stopper = asyncio.create_task(gave_up.wait())
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        return None


@contextlib.contextmanager
def signal_handlers(handlers: Mapping[signal.Signals, Callable[[], None]]) -> Iterator[None]:
    """Run ``handlers`` on the running loop for these signals while inside."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig, handler in handlers.items():
        try:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
