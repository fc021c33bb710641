"""One simulated agent session: a DataChannel in the agent role between a plugin and a websocket.

:class:`SimAgentSession` plays both the SSM agent and, towards the client, the service
("MGS"): it sends ``agent_session_state`` Connected, runs the handshake when the real agent would,
feeds input to its plugin (shell, command or port forwarding), writes the plugin's output in
1024-byte frames, retransmits on the channel's timer, and ends the way the real agent does
(PROTOCOL.md §5, §7, §8, §9; vectors/README.md). As the service, it sends ``channel_closed`` when
the agent side goes away and then drops the TCP connection without a websocket close frame.

The session outlives its websocket: if the client's connection drops, the agent keeps running
(output is numbered and buffered, then retransmitted) and a new websocket for the same session,
opened with a token from ResumeSession, picks up where the old one left off. Without one the
session ends after ``resume_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ssmtui.protocol import payloads as pl
from ssmtui.protocol.channel import ChannelConfig, ChannelStateError, DataChannel, Role
from ssmtui.protocol.events import (
    ChannelClosed,
    DataKeyToDecrypt,
    Event,
    HandshakeCompleted,
    HandshakeFailed,
    ProtocolError,
    StreamData,
)
from ssmtui.protocol.frames import Frame, MessageType, encode_frame
from ssmtui.sim.agent_base import AgentConfig, AgentPlugin, Ending
from ssmtui.sim.aws_wire import AwsError
from ssmtui.sim.faults import FaultInjector, FaultPlan
from ssmtui.sim.fleet import LATEST_AGENT_VERSION, SimInstance

if TYPE_CHECKING:
    from ssmtui.sim.state import SimSession, SimState

__all__ = ["SimAgentSession"]

log = logging.getLogger("ssmtui.sim.agent")

#: Frames queued for the socket beyond which plugins stop producing output.
_OUTQ_LIMIT = 256
_REORDER_RELEASE = 0.05


class SimAgentSession:
    """The agent (and service) side of one Session Manager session. See the module docstring."""

    def __init__(
        self,
        state: SimState,
        session: SimSession,
        config: AgentConfig,
        *,
        instance: SimInstance | None,
        plan: FaultPlan | None = None,
        plugin_factory: Callable[[SimAgentSession], AgentPlugin],
        on_done: Callable[[SimAgentSession], None] | None = None,
        on_offline: Callable[[str], None] | None = None,
    ) -> None:
        self.state = state
        self.session = session
        self.config = config
        self.instance = instance
        self.agent_version = instance.agent_version if instance else LATEST_AGENT_VERSION
        self.channel = DataChannel(
            Role.AGENT,
            new_id=uuid.uuid4,
            random_bytes=os.urandom,
            config=ChannelConfig.for_agent(
                agent_version=self.agent_version, handshake_timeout=config.handshake_timeout
            ),
            session_id=session.session_id,
            target_id=session.target,
        )
        self.faults = FaultInjector(plan) if plan is not None else None
        self._plan = plan
        self._on_done = on_done
        self._on_offline = on_offline
        self.plugin: AgentPlugin = plugin_factory(self)
        self._ws: web.WebSocketResponse | None = None
        self._request: web.BaseRequest | None = None
        self._outq: deque[bytes] = deque()
        self._out_event = asyncio.Event()
        self._writer_idle = asyncio.Event()
        self._writer_idle.set()
        self._progress = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._grace: asyncio.Task[None] | None = None
        self._end_task: asyncio.Task[None] | None = None
        self._plugin_task: asyncio.Task[None] | None = None
        self._cancelled: list[asyncio.Task[Any]] = []
        self._started = False
        self.ending: Ending | None = None
        self.done = asyncio.Event()
        #: Frames written to / read from the websocket (after fault injection).
        self.frames_written = 0
        self.frames_read = 0

    # ------------------------------------------------------------------ plugin host API

    @property
    def session_id(self) -> str:
        return self.session.session_id

    @property
    def client_version(self) -> str:
        """The ClientVersion of the HandshakeResponse ("" without a handshake)."""
        return self.channel.client_version

    @property
    def host_name(self) -> str:
        """The instance's Name tag (what the simulated shell prompt shows)."""
        inst = self.instance
        if inst is None:
            return self.session.target
        return inst.name or inst.computer_name or inst.instance_id

    def home_dir(self) -> Path:
        """The instance's scratch HOME (``scratch_root/<instance-id>/home``, mode 0700)."""
        home = self.config.scratch_root / self.session.target / "home"
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        return home

    def set_ready(self, ready: bool) -> None:
        """Whether the plugin takes input now; input before that is neither acked nor used."""
        if self.channel.closed:
            return
        self._handle(self.channel.set_ready(ready, time.time()))
        self._kick()

    def send(self, payload_type: int, data: bytes) -> None:
        """Queue session output now (cut into 1024-byte frames, encrypted under KMS)."""
        if not data or self.ending is not None or self.channel.closed:
            return
        with contextlib.suppress(ChannelStateError):
            self.channel.send(payload_type, data, time.time())
        self._kick()

    async def send_paced(self, payload_type: int, data: bytes) -> None:
        """Send ``data`` one frame at a time, waiting for window room (and 1 ms if pacing)."""
        step = self.channel.config.max_payload
        for i in range(0, len(data), step):
            await self.wait_window()
            self.send(payload_type, data[i : i + step])
            if self.config.pace:
                await asyncio.sleep(0.001)

    def window_open(self) -> bool:
        """Room for more output: few unacked frames and a short socket queue."""
        if self.ending is not None or self.channel.closed:
            return True
        return self.channel.in_flight < self.config.window and len(self._outq) < _OUTQ_LIMIT

    async def wait_window(self) -> None:
        """Wait until :meth:`window_open` (backpressure for the plugins' sources)."""
        while not self.window_open():
            self._progress.clear()
            await self._progress.wait()

    def end(self, ending: Ending) -> None:
        """End the session (idempotent: the first ending wins)."""
        if self.ending is not None:
            return
        self.ending = ending
        log.debug("session %s ending: %s", self.session_id, ending.reason)
        self._progress.set()
        self._end_task = asyncio.get_running_loop().create_task(self._end_sequence(ending))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by the session (cancelled when it ends)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("agent task failed", exc_info=task.exception())
            self.end(Ending.failed(f"internal error: {task.exception()}"))

    # ------------------------------------------------------------------ websocket side

    @property
    def attached(self) -> bool:
        return self._ws is not None

    async def attach(self, request: web.BaseRequest, ws: web.WebSocketResponse) -> None:
        """Serve ``ws`` (already authenticated) until it closes or the session ends."""
        if self.ending is not None:
            await ws.close(code=1008, message=b"session ended")
            return
        if self._request is not None and self._request.transport is not None:
            self._request.transport.abort()  # a newer connection replaces this one
        self._ws, self._request = ws, request
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        if not self._started:
            self._started = True
            self._start()
        self._out_event.set()
        try:
            await self._read_loop(ws)
        finally:
            if self._ws is ws:
                self._ws = self._request = None
                if self.ending is None:
                    self._grace = self.spawn(self._expire())

    async def _expire(self) -> None:
        await asyncio.sleep(self.config.resume_timeout)
        if self._ws is None:
            self.end(Ending.lost("the client did not reconnect", status="Terminated"))

    def _start(self) -> None:
        now = time.time()
        ch = self.channel
        ch.send_session_state("Connected", now)
        ch.set_ready(False, now)
        plugin = self.plugin
        kms_key = str(self.session.preferences.get("kmsKeyId") or "") if plugin.encryptable else ""
        if plugin.handshake or kms_key:
            ch.start_handshake(
                now, self.session.session_type, plugin.properties, kms_key_id=kms_key or None
            )
        else:
            ch.start(now)
            self._start_plugin()
        self.spawn(self._writer_loop())
        self.spawn(self._timer_loop())
        plan = self._plan
        if plan is not None and plan.offline_after is not None:
            self.spawn(self._go_offline(plan.offline_after))
        self._kick()

    def _start_plugin(self) -> None:
        if self._plugin_task is None and self.ending is None:
            self._plugin_task = self.spawn(self._run_plugin())

    async def _run_plugin(self) -> None:
        plan = self._plan
        if plan is not None and plan.slow_start:
            await asyncio.sleep(plan.slow_start)
        try:
            ending = await self.plugin.run()
        except OSError as exc:
            ending = Ending.failed(f"{type(exc).__name__}: {exc}")
        self.end(ending)

    async def _go_offline(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._on_offline is not None:
            self._on_offline(self.session.target)
        self.end(Ending.lost("the instance went offline"))

    async def _read_loop(self, ws: web.WebSocketResponse) -> None:
        refusing = False
        while True:
            # A full plugin (smux buffer, slow destination) refuses input without acking it, as
            # the real agent does, but the socket is still read so the client's acks keep
            # freeing our own output window: stopping the reads altogether can deadlock an
            # echo (our window full of unacked output <- destination blocked <- its input).
            if self.plugin.accepting():
                if refusing:
                    refusing = False
                    self.set_ready(True)
            elif not refusing:
                refusing = True
                self.set_ready(False)
            msg = await ws.receive()
            if msg.type is WSMsgType.BINARY:
                self.frames_read += 1
                self._on_wire(msg.data)
            elif msg.type is not WSMsgType.TEXT:
                return  # CLOSE, CLOSING, CLOSED, ERROR: the connection is gone

    def _on_wire(self, data: bytes) -> None:
        faults = self.faults
        if faults is None:
            self._deliver(data)
            return
        emit = faults.incoming(data)
        if faults.abort_requested:
            # like a failed kms:Decrypt (kms/agent-shell-kms-badctx): the agent drops the line,
            # then the service tells the client
            self.end(Ending.failed("the agent dropped the connection during the handshake"))
            return
        loop = asyncio.get_running_loop()
        for delay, frame in emit:
            if delay:
                loop.call_later(delay, self._deliver, frame)
            else:
                self._deliver(frame)
        if faults.holding_in:
            loop.call_later(_REORDER_RELEASE, self._release_in)

    def _release_in(self) -> None:
        if self.faults is not None:
            for _, frame in self.faults.release_held_in():
                self._deliver(frame)

    def _deliver(self, data: bytes) -> None:
        if self.channel.closed:
            return
        self._handle(self.channel.receive_frame(data, time.time()))
        self._kick()
        self._progress.set()

    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, StreamData):
                if self.ending is None:
                    self.plugin.on_input(ev.payload_type, ev.data)
            elif isinstance(ev, HandshakeCompleted):
                self._start_plugin()
            elif isinstance(ev, DataKeyToDecrypt):
                self._decrypt_data_key(ev)
            elif isinstance(ev, HandshakeFailed):
                self.end(Ending.failed(f"Handshake failed: {ev.reason}"))
            elif isinstance(ev, ProtocolError):
                self.end(Ending.failed(f"Protocol error: {ev.reason}"))
            elif isinstance(ev, ChannelClosed):
                self.end(Ending.terminated("channel_closed received"))
            # FrameDropped (bad digest, failed decryption) and publication events need nothing.

    def _decrypt_data_key(self, ev: DataKeyToDecrypt) -> None:
        """kms:Decrypt the client's data key with the instance's credentials (PROTOCOL.md §6)."""
        inst, now = self.instance, time.time()
        account = inst.account_id if inst else self.session.account_id
        region = inst.region if inst else self.session.region
        try:
            plaintext, _arn = self.state.kms.decrypt(
                account, region, ev.ciphertext, ev.encryption_context, ev.key_id
            )
            events = self.channel.provide_data_key(plaintext, b"", now)
        except AwsError as err:
            events = self.channel.reject_data_key(f"{err.code}: {err.message}", now)
        except (ChannelStateError, ValueError) as exc:
            events = self.channel.reject_data_key(str(exc), now)
        self._handle(events)

    def _kick(self) -> None:
        """Move the channel's queued messages to the writer and re-arm the timer."""
        msgs = self.channel.data_to_send()
        if msgs:
            self._outq.extend(msgs)
            self._out_event.set()
        self._wake.set()

    async def _writer_loop(self) -> None:
        faults = self.faults
        while True:
            if not self._outq:
                self._writer_idle.set()
                self._out_event.clear()
                if faults is not None and faults.holding:
                    try:
                        async with asyncio.timeout(_REORDER_RELEASE):
                            await self._out_event.wait()
                    except TimeoutError:
                        for _, held in faults.release_held():
                            await self._write(held)
                    continue
                await self._out_event.wait()
                continue
            self._writer_idle.clear()
            msg = self._outq.popleft()
            if faults is None:
                await self._write(msg)
            else:
                for delay, data in faults.outgoing(msg):
                    if delay:
                        self.spawn(self._write_later(delay, data))
                    else:
                        await self._write(data)
                pause = faults.slow_delay(msg)
                if pause:
                    await asyncio.sleep(pause)
            self._progress.set()

    async def _write_later(self, delay: float, data: bytes) -> None:
        await asyncio.sleep(delay)
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            return  # detached: stream frames stay buffered in the channel and are resent
        try:
            await ws.send_bytes(data)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("session %s: write failed: %s", self.session_id, exc)
            self._drop(ws, abort=True)
            return
        self.frames_written += 1
        faults = self.faults
        if faults is not None:
            faults.sent()
            if faults.close_requested:
                faults.close_requested = False
                log.debug("session %s: fault: closing the websocket", self.session_id)
                self._drop(ws, abort=True)

    def _drop(self, ws: web.WebSocketResponse | None, *, abort: bool) -> None:
        """Drop the TCP connection of ``ws`` without a websocket close frame."""
        if ws is None or ws is not self._ws or self._request is None:
            return
        transport = self._request.transport
        if transport is not None:
            transport.abort() if abort else transport.close()

    async def _timer_loop(self) -> None:
        ch, plugin = self.channel, self.plugin
        while True:
            self._wake.clear()
            deadlines = [t for t in (ch.get_timer(), plugin.get_timer()) if t is not None]
            timeout = max(0.0, min(deadlines) - time.time()) if deadlines else None
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                continue
            except TimeoutError:
                pass
            now = time.time()
            due = ch.get_timer()
            if due is not None and due <= now:
                self._handle(ch.handle_timer(now))
            plugin.handle_timer(now)
            self._kick()

    # ------------------------------------------------------------------ ending

    async def _end_sequence(self, ending: Ending) -> None:
        try:
            if ending.drain:
                await self._wait_drained(self.config.drain_timeout)
            await self._close_plugin()
            ws = self._ws
            if ending.abort or ws is None:
                self.channel.close()
                self._drop(ws, abort=True)
            else:
                now = time.time()
                if ending.terminating:
                    self.channel.send_session_state("Terminating", now)
                self.channel.close()
                self._kick()
                if ending.notify:
                    self._outq.append(self._channel_closed_frame(ending.output, now))
                    self._out_event.set()
                flushed = await self._flush(2.0)
                self._drop(ws, abort=not flushed)
        finally:
            self._finish(ending)

    async def _close_plugin(self) -> None:
        """Stop the plugin's main task first (it may be reading a pty), then its resources."""
        task = self._plugin_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)
        try:
            async with asyncio.timeout(5.0):
                await self.plugin.close()
        except TimeoutError:
            log.warning("session %s: plugin did not close in time", self.session_id)

    async def _wait_drained(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.channel.in_flight and self._ws is not None:
                    self._progress.clear()
                    await self._progress.wait()

    async def _flush(self, timeout: float) -> bool:
        """Wait until the writer wrote everything queued and the socket buffer emptied
        (False: the peer did not read it in time)."""
        try:
            async with asyncio.timeout(timeout):
                while self._outq or not self._writer_idle.is_set():
                    await asyncio.sleep(0.005)
                request = self._request
                transport = request.transport if request is not None else None
                while transport is not None and transport.get_write_buffer_size():
                    await asyncio.sleep(0.005)
        except TimeoutError:
            return False
        return True

    def _channel_closed_frame(self, output: str, now: float) -> bytes:
        """The service's ``channel_closed`` (PROTOCOL.md §8.1), HeaderLength 116."""
        message_id = uuid.uuid4()
        created = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        info = pl.ChannelClosedInfo(
            message_id=str(message_id),
            created_date=created,
            session_id=self.session_id,
            output=output,
        )
        return encode_frame(
            Frame(
                message_type=MessageType.CHANNEL_CLOSED,
                sequence_number=0,
                flags=3,
                message_id=message_id,
                created_date=max(1, int(now * 1000)),
                payload_type=0,
                payload=info.encode(),
            )
        )

    def _finish(self, ending: Ending) -> None:
        self.channel.close()
        session = self.session
        if not session.terminated:
            session.status = ending.status
            session.end_date = self.state.now()
        current = asyncio.current_task()
        self._cancelled = [t for t in self._tasks if t is not current]
        for task in self._cancelled:
            task.cancel()
        self.done.set()
        if self._on_done is not None:
            self._on_done(self)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """End the session now (server shutdown) and wait until everything is closed."""
        self.end(Ending.terminated("server shutdown"))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.done.wait()
        if not self.done.is_set():  # last resort
            await self._close_plugin()
            self._cancelled = list(self._tasks)
            for task in self._cancelled:
                task.cancel()
            self.done.set()
        if self._cancelled:  # let cancelled tasks unwind before the loop goes away
            await asyncio.wait(self._cancelled, timeout=2.0)
