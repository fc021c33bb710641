"""Mutable state of the simulated AWS: sessions, Session Manager preferences, KMS, IAM, faults.

A new state seeds the fleet's ``[[sessions]]`` (:mod:`ssmtui.sim.session_seed`) and builds the
accounts' IAM (:mod:`ssmtui.sim.iam_model`) with "now" as the server start.

One :class:`SimState` backs one demo server (:func:`ssmtui.sim.api.run_server`). Tests and the
``--fault`` flag steer failures through :meth:`SimState.force_error`, :meth:`SimState.throttle`,
:attr:`SimState.expired_credentials` and :attr:`SimState.latency`; the simulated agents attach
through the :attr:`SimState.data_channel_handler` and :attr:`SimState.on_terminate` hooks.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ssmtui.sim.aws_kms import SimKms
from ssmtui.sim.aws_wire import AwsError, Caller, error_for
from ssmtui.sim.documents import DEFAULT_PREFERENCES, SESSION_DOCUMENTS
from ssmtui.sim.fleet import SimFleet, SimInstance, default_fleet
from ssmtui.sim.iam_model import SimIam
from ssmtui.sim.session_seed import seed_sessions

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "CallRecord",
    "DataChannelHandler",
    "FaultRule",
    "RequestContext",
    "SimSession",
    "SimState",
    "StartHook",
    "TerminateHook",
]

_SERVICES = ("ssm", "ec2", "kms", "sts", "iam")

TerminateHook = Callable[[str], "Awaitable[None] | None"]
StartHook = Callable[["SimSession"], "Awaitable[None] | None"]
DataChannelHandler = Callable[
    ["web.Request", "web.WebSocketResponse", "SimSession"], Awaitable[None]
]


@dataclass(eq=False)
class SimSession:
    """One Session Manager session, as created by StartSession.

    The simulated agent authenticates the data channel's ``open_data_channel`` message against
    :meth:`accepts_token` and reads :attr:`document_name` / :attr:`resolved_parameters` to decide
    what to run (shell, port forwarding, command).
    """

    session_id: str
    target: str
    document_name: str
    #: Parameters exactly as passed to StartSession (name -> list of values).
    parameters: dict[str, list[str]]
    #: Parameters after validation and document defaults (name -> value).
    resolved_parameters: dict[str, str]
    #: The current TokenValue (ResumeSession issues a new one).
    token: str
    #: ARN of the IAM principal that started the session.
    owner: str
    account_id: str
    region: str
    profile: str
    start_date: datetime
    #: ``Connected`` while usable, ``Terminated`` after TerminateSession (agent may set others).
    status: str = "Connected"
    end_date: datetime | None = None
    reason: str | None = None
    #: DescribeSessions ``Details`` (seeded sessions).
    details: str | None = None
    #: The StreamUrl handed out by StartSession / the last ResumeSession.
    stream_url: str = ""
    #: The document's ``sessionType``: ``Standard_Stream``, ``Port``, ``InteractiveCommands``...
    session_type: str = "Standard_Stream"
    #: Session Manager preferences in force for the session's account/region.
    preferences: dict[str, Any] = field(default_factory=dict)
    #: All TokenValues ever issued for the session.
    tokens: list[str] = field(default_factory=list)
    #: Open data-channel websockets of this session.
    websockets: set[web.WebSocketResponse] = field(default_factory=set, repr=False)
    #: Free-form scratch space for the simulated agent.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminated(self) -> bool:
        """True once the session ended (Terminated or Failed)."""
        return self.status in ("Terminated", "Failed")

    def accepts_token(self, token: str) -> bool:
        """Whether ``token`` is a TokenValue issued for this session (constant-time compare)."""
        return any(secrets.compare_digest(token, t) for t in self.tokens)

    def param(self, name: str, default: str | None = None) -> str | None:
        """A resolved document parameter (given value or the document default)."""
        return self.resolved_parameters.get(name, default)


@dataclass
class FaultRule:
    """A pending injected failure: a forced error code, or throttling."""

    operation: str
    kind: str
    code: str | None = None
    message: str | None = None
    remaining: int | None = 1
    status: int | None = None

    def matches(self, service: str, operation: str) -> bool:
        """Whether the rule applies to ``service``'s ``operation``."""
        return self.operation in ("*", operation, f"{service}:{operation}", f"{service}:*")


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One API call seen by the server (for tests and the demo's request log)."""

    service: str
    operation: str
    profile: str | None
    region: str | None
    error_code: str | None
    time: datetime


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What an operation handler knows about the request it serves."""

    state: SimState
    caller: Caller
    service: str
    operation: str
    request_id: str
    #: ``host[:port]`` the client used (for StreamUrl).
    host: str
    #: True when the request arrived over TLS (StreamUrl then uses ``wss://``).
    secure: bool


class SimState:
    """Everything one simulated AWS endpoint knows and every knob it offers."""

    def __init__(
        self,
        fleet: SimFleet | None = None,
        *,
        preferences: dict[str, dict[str, Any]] | None = None,
        forbidden_kms_keys: Iterable[str] = (),
        verify_signatures: bool = True,
    ) -> None:
        self.fleet: SimFleet = fleet if fleet is not None else default_fleet()
        #: Session preferences by region, or by ``"<account>:<region>"`` for one account.
        self.preferences: dict[str, dict[str, Any]] = (
            dict(preferences) if preferences is not None else dict(self.fleet.preferences)
        )
        self.sessions: dict[str, SimSession] = {}
        self.kms = SimKms(forbidden=forbidden_kms_keys)
        #: Reject requests whose SigV4 signature does not verify with the demo secret.
        self.verify_signatures = verify_signatures
        #: When True every call fails with the protocol's expired-token error.
        self.expired_credentials = False
        #: Seconds of delay added to every call, and per operation name (overrides).
        self.latency = 0.0
        self.op_latency: dict[str, float] = {}
        self.faults: list[FaultRule] = []
        #: Called with the session id after TerminateSession marked a session terminated. When
        #: unset, the server closes the session's websockets itself.
        self.on_terminate: TerminateHook | None = None
        #: Called with the new :class:`SimSession` after a successful StartSession.
        self.on_start_session: StartHook | None = None
        #: Serves an upgraded data-channel websocket; without it the socket is closed at once.
        self.data_channel_handler: DataChannelHandler | None = None
        #: Awaited by :meth:`shutdown` (server shutdown) before the websockets are closed.
        self.shutdown_hooks: list[Callable[[], Awaitable[None] | None]] = []
        #: Recent API calls, newest last.
        self.calls: deque[CallRecord] = deque(maxlen=10_000)
        self.websockets: set[web.WebSocketResponse] = set()
        self._background: set[asyncio.Task[Any]] = set()
        #: Source of "now" (override in tests for deterministic dates).
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        #: The accounts' IAM (roles, instance profiles, the caller's policies).
        self.iam = SimIam(self.fleet, self.now())
        seed_sessions(self)

    # ----------------------------------------------------------------- fault knobs

    @property
    def forbidden_kms_keys(self) -> set[str]:
        """KMS key ids/ARNs/aliases whose use fails with AccessDeniedException."""
        return self.kms.forbidden

    def force_error(
        self,
        operation: str,
        code: str,
        message: str | None = None,
        *,
        times: int | None = 1,
        status: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``operation`` (``"*"`` = any) fail with ``code``.

        ``times=None`` fails forever (until :meth:`clear_faults`). ``operation`` may be qualified
        with the service (``"ssm:StartSession"``).
        """
        self.faults.append(FaultRule(operation, "error", code, message, times, status))

    def throttle(self, times: int | None = 1, operation: str = "*") -> None:
        """Throttle the next ``times`` calls (of ``operation``) with the service's throttle code."""
        self.faults.append(FaultRule(operation, "throttle", remaining=times))

    def clear_faults(self) -> None:
        """Remove every injected fault, expired mode and latency."""
        self.faults.clear()
        self.expired_credentials = False
        self.latency = 0.0
        self.op_latency.clear()

    def apply_fault(self, spec: str) -> None:
        """Apply a ``--fault`` spec.

        ``expired`` | ``latency:SECONDS[:OPERATION]`` | ``throttle[:N[:OPERATION]]`` |
        ``error:OPERATION:CODE[:N]`` (N=0 means forever). OPERATION may be service-qualified
        (``ec2:DescribeInstances``).
        """
        parts = spec.strip().split(":")
        kind, args = parts[0].lower(), list[str]()
        for part in parts[1:]:  # keep "ssm:StartSession" style operations together
            if args and args[-1] in _SERVICES:
                args[-1] += ":" + part
            else:
                args.append(part)
        try:
            if kind == "expired" and not args:
                self.expired_credentials = True
            elif kind == "latency" and 1 <= len(args) <= 2:
                if len(args) == 2:
                    self.op_latency[args[1]] = float(args[0])
                else:
                    self.latency = float(args[0])
            elif kind == "throttle" and len(args) <= 2:
                times = int(args[0]) if args else 1
                self.throttle(times or None, args[1] if len(args) > 1 else "*")
            elif kind == "error" and 2 <= len(args) <= 3:
                times = int(args[2]) if len(args) > 2 else 1
                self.force_error(args[0], args[1], times=times or None)
            else:
                raise ValueError(spec)
        except ValueError:
            raise ValueError(
                f"bad fault spec {spec!r}: use expired | latency:SECONDS[:OP] | "
                "throttle[:N[:OP]] | error:OP:CODE[:N]"
            ) from None

    def take_fault(self, service: str, operation: str, protocol: str) -> AwsError | None:
        """The injected error for this call, if any (consumes one use of a counted rule)."""
        if self.expired_credentials:
            return error_for("expired", protocol)
        for rule in self.faults:
            if not rule.matches(service, operation):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.faults.remove(rule)
            if rule.kind == "throttle":
                return error_for("throttle", protocol)
            code = rule.code or "InternalServerError"
            return AwsError(code, rule.message or f"Injected fault: {code}", rule.status)
        return None

    def latency_for(self, operation: str) -> float:
        """Delay to add before answering ``operation``."""
        return self.op_latency.get(operation, self.latency)

    # ----------------------------------------------------------------- sessions

    def now(self) -> datetime:
        """The simulation's current time."""
        return self.clock()

    def has_preferences(self, account_id: str, region: str) -> bool:
        """Whether Session Manager preferences were ever configured for this account/region."""
        return region in self.preferences or f"{account_id}:{region}" in self.preferences

    def session_preferences(self, account_id: str, region: str) -> dict[str, Any]:
        """Effective Session Manager preferences of an account in a region."""
        merged = dict(DEFAULT_PREFERENCES)
        merged.update(self.preferences.get(region, {}))
        merged.update(self.preferences.get(f"{account_id}:{region}", {}))
        return merged

    def visible_instance(self, caller: Caller, instance_id: str) -> SimInstance | None:
        """The instance if it exists in the caller's account and region."""
        inst = self.fleet.get(instance_id)
        if inst is None or inst.account_id != caller.account_id or inst.region != caller.region:
            return None
        return inst

    def new_session(
        self,
        caller: Caller,
        target: str,
        document_name: str,
        parameters: dict[str, list[str]],
        resolved: dict[str, str],
        reason: str | None,
    ) -> SimSession:
        """Create and register a session (SessionId ``<user>-<17 hex>``, random TokenValue)."""
        session_id = f"{caller.user_name}-{secrets.token_hex(9)[:17]}"
        token = secrets.token_urlsafe(192)
        doc = SESSION_DOCUMENTS.get(document_name, {})
        session = SimSession(
            session_id=session_id,
            target=target,
            document_name=document_name,
            parameters=parameters,
            resolved_parameters=resolved,
            token=token,
            tokens=[token],
            owner=caller.arn,
            account_id=caller.account_id,
            region=caller.region,
            profile=caller.profile,
            start_date=self.now(),
            reason=reason,
            session_type=str(doc.get("sessionType", "Standard_Stream")),
            preferences=self.session_preferences(caller.account_id, caller.region),
        )
        self.sessions[session_id] = session
        return session

    def reissue_token(self, session: SimSession) -> str:
        """Issue a fresh TokenValue for a session (ResumeSession)."""
        token = secrets.token_urlsafe(192)
        session.token = token
        session.tokens.append(token)
        return token

    def sessions_for(self, account_id: str, region: str) -> list[SimSession]:
        """Sessions of one account in one region, oldest first."""
        return [
            s for s in self.sessions.values() if s.account_id == account_id and s.region == region
        ]

    async def terminate_session(self, session_id: str, *, notify: bool = True) -> SimSession | None:
        """Mark a session terminated; then run :attr:`on_terminate` or close its websockets.

        Idempotent. Returns the session, or None if unknown. ``notify=False`` only marks it (for
        the agent side reporting that a session ended by itself).
        """
        session = self.sessions.get(session_id)
        if session is None:
            return None
        if session.terminated:
            return session
        session.status = "Terminated"
        session.end_date = self.now()
        if not notify:
            return session
        if self.on_terminate is not None:
            result = self.on_terminate(session_id)
            if inspect.isawaitable(result):
                await result
        else:
            # Close in the background: a close handshake with a silent peer must not hold up
            # the TerminateSession response.
            for ws in list(session.websockets):
                task = asyncio.create_task(ws.close(message=b"session terminated"))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        return session

    async def shutdown(self) -> None:
        """Server shutdown: run :attr:`shutdown_hooks` (the agents), then close websockets."""
        for hook in list(self.shutdown_hooks):
            result = hook()
            if inspect.isawaitable(result):
                await result
        await self.close_websockets()

    async def close_websockets(self) -> None:
        """Close every open data-channel websocket (server shutdown)."""
        for ws in list(self.websockets):
            await ws.close(message=b"server shutdown")
