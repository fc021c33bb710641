"""The demo fleet's simulated SSM agents, behind the loopback service's data-channel websocket.

:func:`attach_agents` plugs an :class:`AgentHub` into a :class:`~ssmtui.sim.state.SimState`:

* every data-channel websocket must first send its OpenDataChannelInput text frame with a
  TokenValue issued for the session (else it is closed with 1008);
* the first websocket of a session starts a :class:`~ssmtui.sim.agent_session.SimAgentSession`
  (one DataChannel in the agent role, the session's plugin, a writer and a timer task); later
  websockets of the same session (after ResumeSession) re-attach to it;
* TerminateSession makes the service send ``channel_closed`` and ends the agent session;
* server shutdown ends every session, kills every process and closes every socket.

The agents behave like the real SSM agent as recorded in ``shared/ssm/vectors`` (see
:mod:`ssmtui.sim.agent_session`, :mod:`ssmtui.sim.agent_plugins`, :mod:`ssmtui.sim.agent_port`);
:mod:`ssmtui.sim.faults` makes them misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

from aiohttp import WSCloseCode, WSMsgType, web

from ssmtui.protocol.payloads import OpenDataChannel, PayloadError
from ssmtui.sim.agent_base import AgentConfig, Ending
from ssmtui.sim.agent_plugins import make_plugin
from ssmtui.sim.agent_session import SimAgentSession
from ssmtui.sim.faults import FaultPlan
from ssmtui.sim.state import SimSession, SimState

__all__ = ["AgentHub", "attach_agents"]

log = logging.getLogger("ssmtui.sim.agent")

#: Seconds a new websocket may take to send its OpenDataChannelInput.
OPEN_TIMEOUT = 30.0


class AgentHub:
    """All simulated agents of one demo server (see the module docstring)."""

    def __init__(
        self,
        state: SimState,
        config: AgentConfig,
        faults: Iterable[FaultPlan] = (),
        *,
        owns_scratch: bool = False,
    ) -> None:
        self.state = state
        self.config = config
        #: Fault plans; a new session takes the first one that matches it.
        self.faults: list[FaultPlan] = list(faults)
        #: Live agent sessions by session id.
        self.sessions: dict[str, SimAgentSession] = {}
        #: Recently started agent sessions, newest last (for tests and the demo's log).
        self.history: deque[SimAgentSession] = deque(maxlen=256)
        self._owns_scratch = owns_scratch
        self._pending: set[asyncio.Task[bool]] = set()
        self.closed = False

    # ------------------------------------------------------------------ service hooks

    async def handle(
        self, request: web.BaseRequest, ws: web.WebSocketResponse, session: SimSession
    ) -> None:
        """The data-channel websocket hook: authenticate, then serve the session's agent."""
        try:
            msg = await ws.receive(timeout=OPEN_TIMEOUT)
        except TimeoutError:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no OpenDataChannel input")
            return
        if msg.type is not WSMsgType.TEXT:
            if msg.type is WSMsgType.BINARY:
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"expected text")
            return
        try:
            opened = OpenDataChannel.decode(msg.data)
        except PayloadError:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"bad OpenDataChannel input")
            return
        if opened.schema_version != "1.0" or not session.accepts_token(opened.token):
            log.info("session %s: refused a data channel (bad token)", session.session_id)
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"invalid token")
            return
        if self.closed or session.terminated:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"session terminated")
            return
        agent = self.sessions.get(session.session_id)
        if agent is None:
            agent = self._new_agent(session)
        await agent.attach(request, ws)

    def _new_agent(self, session: SimSession) -> SimAgentSession:
        instance = self.state.fleet.get(session.target)
        plan = next((p for p in self.faults if p.matches(session.target, session.session_id)), None)
        agent = SimAgentSession(
            self.state,
            session,
            self.config,
            instance=instance,
            plan=plan,
            plugin_factory=make_plugin,
            on_done=self._forget,
            on_offline=self.set_offline,
        )
        self.sessions[session.session_id] = agent
        self.history.append(agent)
        return agent

    def _forget(self, agent: SimAgentSession) -> None:
        if self.sessions.get(agent.session_id) is agent:
            del self.sessions[agent.session_id]

    async def on_terminate(self, session_id: str) -> None:
        """TerminateSession: the service sends ``channel_closed`` and the agent stops."""
        agent = self.sessions.get(session_id)
        if agent is not None:
            agent.end(Ending.terminated())
            return
        session = self.state.sessions.get(session_id)
        for ws in list(session.websockets if session else ()):  # not yet authenticated
            task = asyncio.get_running_loop().create_task(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"session terminated")
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    # ------------------------------------------------------------------ knobs

    def add_fault(self, plan: FaultPlan) -> None:
        """Apply ``plan`` to sessions started from now on."""
        self.faults.append(plan)

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_offline(self, instance_id: str) -> None:
        """The instance loses its connection: PingStatus ConnectionLost, its sessions drop."""
        inst = self.state.fleet.get(instance_id)
        if inst is not None:
            inst.ping_status = "ConnectionLost"
        for agent in list(self.sessions.values()):
            if agent.session.target == instance_id:
                agent.end(Ending.lost("the instance went offline"))

    def set_online(self, instance_id: str) -> None:
        """The instance reconnects (PingStatus Online)."""
        inst = self.state.fleet.get(instance_id)
        if inst is not None:
            inst.ping_status = "Online"
            inst.last_ping_age = 0.0

    # ------------------------------------------------------------------ shutdown

    async def aclose(self) -> None:
        """End every session (channel_closed, processes killed, sockets closed). Idempotent."""
        self.closed = True
        agents = list(self.sessions.values())
        if agents:
            await asyncio.gather(*(agent.shutdown() for agent in agents))
        for task in list(self._pending):
            task.cancel()
        if self._owns_scratch:
            shutil.rmtree(self.config.scratch_root, ignore_errors=True)


def attach_agents(
    state: SimState,
    *,
    scratch_root: Path | None = None,
    pace: bool = False,
    faults: FaultPlan | Iterable[FaultPlan] | None = None,
    host_map: Mapping[str, str] | None = None,
    first_read_delay: float = 1.0,
    handshake_timeout: float = 15.0,
    resume_timeout: float = 30.0,
    window: int = 1000,
) -> AgentHub:
    """Serve every session of ``state`` with simulated agents; returns the :class:`AgentHub`.

    ``scratch_root`` holds each instance's HOME (``<root>/<instance-id>/home``); by default a
    temporary directory removed at shutdown. ``pace`` sleeps 1 ms per output frame like the
    real agent. ``host_map`` maps destination names of port sessions to loopback addresses.
    ``first_read_delay`` is the shell's wait before its first read (real agent: 1 s).
    """
    owns = scratch_root is None
    root = Path(tempfile.mkdtemp(prefix="ssmtui-demo-")) if scratch_root is None else scratch_root
    root.mkdir(parents=True, exist_ok=True)
    config = AgentConfig(
        scratch_root=root,
        pace=pace,
        host_map=dict(host_map or {}),
        first_read_delay=first_read_delay,
        handshake_timeout=handshake_timeout,
        resume_timeout=resume_timeout,
        window=window,
    )
    plans: list[FaultPlan] = []
    if isinstance(faults, FaultPlan):
        plans = [faults]
    elif faults is not None:
        plans = list(faults)
    hub = AgentHub(state, config, plans, owns_scratch=owns)
    state.data_channel_handler = hub.handle
    state.on_terminate = hub.on_terminate
    state.shutdown_hooks.append(hub.aclose)
    return hub
