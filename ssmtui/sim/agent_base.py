"""Building blocks shared by the simulated agent's modules: settings, endings, the plugin API."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssmtui.sim.agent_session import SimAgentSession

__all__ = ["AgentConfig", "AgentPlugin", "Ending"]


@dataclass(frozen=True)
class AgentConfig:
    """Settings shared by every simulated agent of one :class:`~ssmtui.sim.agent.AgentHub`."""

    scratch_root: Path
    #: Sleep 1 ms after each output frame, like the real agent's pumps.
    pace: bool = False
    #: Destination host name -> address to dial instead (names not listed use DNS).
    host_map: dict[str, str] = field(default_factory=dict)
    #: Seconds the shell's output pump waits before its first read (the real agent: 1 s).
    first_read_delay: float = 1.0
    #: Seconds the agent waits for the HandshakeResponse (and the KMS challenge answer).
    handshake_timeout: float = 15.0
    #: Seconds a session whose websocket dropped waits for the client to resume.
    resume_timeout: float = 30.0
    #: Unacknowledged output frames beyond which plugins stop reading their sources.
    window: int = 1000
    #: Seconds a finished shell waits for its output to be acknowledged before Terminating.
    drain_timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class Ending:
    """How a session ends (PROTOCOL.md §8.2; vectors/README.md "How sessions end")."""

    #: Send ``agent_session_state`` Terminating (shell and command sessions only).
    terminating: bool = False
    #: First wait (≤ ``drain_timeout``) for the client to acknowledge all output.
    drain: bool = False
    #: As the service, send ``channel_closed`` before dropping the connection.
    notify: bool = True
    #: Drop the connection abruptly with nothing more sent (network loss).
    abort: bool = False
    #: The session's status afterwards: ``Terminated`` or ``Failed``.
    status: str = "Terminated"
    #: The ``channel_closed`` Output text.
    output: str = ""
    reason: str = ""

    @classmethod
    def finished(cls, reason: str = "the session's process exited") -> Ending:
        """The shell or command ended: drain, Terminating, channel_closed, drop."""
        return cls(terminating=True, drain=True, reason=reason)

    @classmethod
    def port_closed(cls, reason: str) -> Ending:
        """A port session ended (Flag TerminateSession, destination EOF): no Terminating."""
        return cls(reason=reason)

    @classmethod
    def failed(cls, reason: str) -> Ending:
        """The agent gave up (handshake, dial, protocol error): drop with no agent message."""
        return cls(status="Failed", output=reason, reason=reason)

    @classmethod
    def terminated(cls, reason: str = "TerminateSession") -> Ending:
        """The service ended the session (TerminateSession API, server shutdown)."""
        return cls(reason=reason)

    @classmethod
    def lost(cls, reason: str, status: str = "Failed") -> Ending:
        """The connection is gone without a word (instance offline, abandoned session)."""
        return cls(notify=False, abort=True, status=status, reason=reason)


class AgentPlugin:
    """What runs behind a data channel (the agent's session plugin).

    :meth:`run` starts the work, calls ``host.set_ready(True)`` once input can be taken, and
    returns the :class:`Ending` when the work finished by itself. Input arrives through
    :meth:`on_input` (in order, decrypted, exactly once). :meth:`close` stops everything and must
    be idempotent.
    """

    #: Whether the agent handshakes even without KMS (Port, NonInteractiveCommands).
    handshake: bool = False
    #: KMS encryption applies (not for Port sessions).
    encryptable: bool = True

    def __init__(self, host: SimAgentSession) -> None:
        self.host = host

    @property
    def properties(self) -> Any:
        """The HandshakeRequest's ``Properties`` (None except for Port sessions)."""
        return None

    async def run(self) -> Ending:
        raise NotImplementedError

    def on_input(self, payload_type: int, data: bytes) -> None:
        """An in-order input payload (Output 1, Size 3, Flag 10, ...)."""

    def get_timer(self) -> float | None:
        """The plugin's next deadline (``time.time()`` scale), if any."""
        return None

    def handle_timer(self, now: float) -> None:
        """Run due timer work."""

    async def wait_accepting(self) -> None:
        """Return when the plugin can take more input (the websocket reader waits on it)."""

    def accepting(self) -> bool:
        """Whether the plugin takes more input right now (see :meth:`wait_accepting`)."""
        return True

    async def close(self) -> None:
        """Stop processes, close sockets, cancel tasks."""
