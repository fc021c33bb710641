"""JSON and binary payloads carried inside agent messages, and the OpenDataChannel text frame.

Both real programs emit compact JSON with Go's encoder: struct fields in declaration order, map
keys sorted, ``<``, ``>`` and ``&`` escaped as ``\\u003c`` etc. :func:`go_json` reproduces that so
our bytes equal the reference ones (vectors/README.md, "Payload JSON"). Parsing is strict about
shape: a payload that is not what its type promises raises :class:`PayloadError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = [
    "Ack",
    "ActionStatus",
    "ChannelClosedInfo",
    "HandshakeComplete",
    "HandshakeRequest",
    "HandshakeResponse",
    "KMSAction",
    "OpenDataChannel",
    "PayloadError",
    "ProcessedAction",
    "SessionState",
    "go_json",
]

_U32 = struct.Struct(">I")
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")
_PLAIN_RE = re.compile(r"[A-Za-z0-9_.:-]*\Z")
_ACK_RE = re.compile(
    rb'\{"AcknowledgedMessageType":"([A-Za-z0-9_]*)","AcknowledgedMessageId":"([A-Za-z0-9-]*)",'
    rb'"AcknowledgedMessageSequenceNumber":(-?[0-9]{1,19}),"IsSequentialMessage":true\}\Z'
)

SESSION_TYPE_ACTION = "SessionType"
KMS_ACTION = "KMSEncryption"
KMS_CUSTOMER_MESSAGE = "This session is encrypted using AWS KMS."


class PayloadError(ValueError):
    """A payload that does not have the shape its PayloadType or MessageType promises."""


class ActionStatus(IntEnum):
    SUCCESS = 1
    FAILED = 2
    UNSUPPORTED = 3


def go_json(obj: Any) -> bytes:
    """Compact JSON as Go's ``encoding/json`` writes it (HTML-safe escapes, no spaces, UTF-8)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text).encode("utf-8")


def _load_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    # RecursionError: "[[[[…" nested deeper than the parser's stack, from the network
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise PayloadError(f"{what} is not a JSON object")
    return obj


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise PayloadError(f"{what}: {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError(f"{what} is not valid base64") from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- acknowledge --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    message_type: str
    message_id: str
    sequence_number: int
    is_sequential: bool = True

    def encode(self) -> bytes:
        if (
            self.is_sequential
            and _PLAIN_RE.match(self.message_type)
            and _PLAIN_RE.match(self.message_id)
        ):  # the hot path: one ack per frame received; same bytes as go_json
            return (
                b'{"AcknowledgedMessageType":"%s","AcknowledgedMessageId":"%s",'
                b'"AcknowledgedMessageSequenceNumber":%d,"IsSequentialMessage":true}'
                % (self.message_type.encode(), self.message_id.encode(), self.sequence_number)
            )
        return go_json(
            {
                "AcknowledgedMessageType": self.message_type,
                "AcknowledgedMessageId": self.message_id,
                "AcknowledgedMessageSequenceNumber": self.sequence_number,
                "IsSequentialMessage": self.is_sequential,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Ack:
        m = _ACK_RE.match(data)
        if m is not None:  # the canonical compact form both real programs send
            return cls(m.group(1).decode(), m.group(2).decode(), int(m.group(3)))
        obj = _load_object(data, "acknowledge")
        return cls(
            message_type=str(obj.get("AcknowledgedMessageType", "")),
            message_id=str(obj.get("AcknowledgedMessageId", "")),
            sequence_number=_get(obj, "AcknowledgedMessageSequenceNumber", int, "acknowledge"),
            is_sequential=bool(obj.get("IsSequentialMessage", True)),
        )


# --- agent_session_state ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionState:
    state: str
    session_id: str
    schema_version: int = 1

    def encode(self) -> bytes:
        return go_json(
            {
                "SchemaVersion": self.schema_version,
                "SessionState": self.state,
                "SessionId": self.session_id,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> SessionState:
        obj = _load_object(data, "agent_session_state")
        return cls(
            state=_get(obj, "SessionState", str, "agent_session_state"),
            session_id=str(obj.get("SessionId", "")),
            schema_version=int(obj.get("SchemaVersion", 1) or 1),
        )


# --- channel_closed -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelClosedInfo:
    message_id: str
    created_date: str
    session_id: str
    output: str = ""
    destination_id: str = ""
    schema_version: int = 1

    def encode(self) -> bytes:
        return go_json(
            {
                "MessageType": "channel_closed",
                "MessageId": self.message_id,
                "DestinationId": self.destination_id,
                "SessionId": self.session_id,
                "SchemaVersion": self.schema_version,
                "CreatedDate": self.created_date,
                "Output": self.output,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> ChannelClosedInfo:
        obj = _load_object(data, "channel_closed")
        return cls(
            message_id=str(obj.get("MessageId", "")),
            created_date=str(obj.get("CreatedDate", "")),
            session_id=str(obj.get("SessionId", "")),
            output=str(obj.get("Output") or ""),
            destination_id=str(obj.get("DestinationId") or ""),
        )


# --- handshake ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KMSAction:
    key_id: str
    challenge: str | None = None  # base64 text, kept exactly as received


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    agent_version: str
    session_type: str
    properties: Any  # the document's properties object (dict) or None
    kms: KMSAction | None = None
    unknown_actions: tuple[str, ...] = ()

    def encode(self) -> bytes:
        actions: list[dict[str, Any]] = [
            {
                "ActionType": SESSION_TYPE_ACTION,
                "ActionParameters": {
                    "SessionType": self.session_type,
                    "Properties": _sorted_props(self.properties),
                },
            }
        ]
        if self.kms is not None:
            params: dict[str, Any] = {"KMSKeyId": self.kms.key_id}
            if self.kms.challenge is not None:
                params["Challenge"] = self.kms.challenge
            actions.append({"ActionType": KMS_ACTION, "ActionParameters": params})
        return go_json({"AgentVersion": self.agent_version, "RequestedClientActions": actions})

    @classmethod
    def decode(cls, data: bytes) -> HandshakeRequest:
        what = "handshake request"
        obj = _load_object(data, what)
        actions = obj.get("RequestedClientActions")
        if not isinstance(actions, list):
            raise PayloadError(f"{what}: RequestedClientActions is not a list")
        session_type: str | None = None
        properties: Any = None
        kms: KMSAction | None = None
        unknown: list[str] = []
        for action in actions:
            if not isinstance(action, dict):
                raise PayloadError(f"{what}: an action is not an object")
            kind = action.get("ActionType")
            params = action.get("ActionParameters")
            if kind == SESSION_TYPE_ACTION and isinstance(params, dict):
                session_type = _get(params, "SessionType", str, what)
                properties = params.get("Properties")
            elif kind == KMS_ACTION and isinstance(params, dict):
                challenge = params.get("Challenge")
                kms = KMSAction(
                    key_id=_get(params, "KMSKeyId", str, what),
                    challenge=challenge if isinstance(challenge, str) else None,
                )
            else:
                unknown.append(str(kind))
        if session_type is None:
            raise PayloadError(f"{what}: no SessionType action")
        return cls(
            agent_version=str(obj.get("AgentVersion") or ""),
            session_type=session_type,
            properties=properties,
            kms=kms,
            unknown_actions=tuple(unknown),
        )


def _sorted_props(props: Any) -> Any:
    # Go marshals map[string]interface{} with sorted keys.
    if isinstance(props, Mapping):
        return {k: _sorted_props(props[k]) for k in sorted(props)}
    return props


@dataclass(frozen=True, slots=True)
class ProcessedAction:
    action_type: str
    status: int = ActionStatus.SUCCESS
    result: Any = None
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ActionType": self.action_type,
            "ActionStatus": int(self.status),
            "ActionResult": self.result,
            "Error": self.error,
        }


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    client_version: str
    actions: tuple[ProcessedAction, ...]
    errors: tuple[str, ...] | None = None

    def encode(self) -> bytes:
        return go_json(
            {
                "ClientVersion": self.client_version,
                "ProcessedClientActions": [a.to_json() for a in self.actions],
                "Errors": list(self.errors) if self.errors is not None else None,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> HandshakeResponse:
        what = "handshake response"
        obj = _load_object(data, what)
        raw = obj.get("ProcessedClientActions")
        if not isinstance(raw, list):
            raise PayloadError(f"{what}: ProcessedClientActions is not a list")
        actions = []
        for item in raw:
            if not isinstance(item, dict):
                raise PayloadError(f"{what}: an action is not an object")
            actions.append(
                ProcessedAction(
                    action_type=str(item.get("ActionType", "")),
                    status=_get(item, "ActionStatus", int, what),
                    result=item.get("ActionResult"),
                    error=str(item.get("Error") or ""),
                )
            )
        errors = obj.get("Errors")
        return cls(
            client_version=str(obj.get("ClientVersion") or ""),
            actions=tuple(actions),
            errors=tuple(str(e) for e in errors) if isinstance(errors, list) else None,
        )

    def kms_result(self) -> tuple[bytes, bool] | None:
        """(ciphertext blob, challenge acknowledged) from a successful KMS action, if any."""
        for action in self.actions:
            if action.action_type == KMS_ACTION and isinstance(action.result, dict):
                blob = action.result.get("KMSCipherTextKey")
                if not isinstance(blob, str):
                    raise PayloadError("handshake response: KMSCipherTextKey is missing")
                ack = action.result.get("ChallengeAcknowledgement") is True
                return _b64decode(blob, "KMSCipherTextKey"), ack
        return None


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    time_to_complete_ns: int
    customer_message: str = ""

    def encode(self) -> bytes:
        return go_json(
            {
                "HandshakeTimeToComplete": self.time_to_complete_ns,
                "CustomerMessage": self.customer_message,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> HandshakeComplete:
        obj = _load_object(data, "handshake complete")
        ns = obj.get("HandshakeTimeToComplete", 0)
        return cls(
            time_to_complete_ns=ns if isinstance(ns, int) else 0,
            customer_message=str(obj.get("CustomerMessage") or ""),
        )


def encode_challenge(blob: bytes) -> bytes:
    """EncChallengeRequest / EncChallengeResponse payload: ``{"Challenge": base64}``."""
    return go_json({"Challenge": b64encode(blob)})


def decode_challenge(data: bytes) -> bytes:
    obj = _load_object(data, "encryption challenge")
    return _b64decode(_get(obj, "Challenge", str, "encryption challenge"), "challenge")


# --- small binary / text payloads ---------------------------------------------------------------


def encode_size(cols: int, rows: int) -> bytes:
    return go_json({"cols": cols, "rows": rows})


def decode_size(data: bytes) -> tuple[int, int]:
    obj = _load_object(data, "size")
    cols = _get(obj, "cols", int, "size")
    rows = _get(obj, "rows", int, "size")
    if not (0 <= cols < 2**32 and 0 <= rows < 2**32):
        raise PayloadError("size: cols/rows out of range")
    return cols, rows


def encode_flag(value: int) -> bytes:
    return _U32.pack(value)


def decode_flag(data: bytes) -> int:
    if len(data) != 4:
        raise PayloadError(f"flag payload is {len(data)} bytes, not 4")
    return int(_U32.unpack(data)[0])


_EXIT_RE = re.compile(rb"^\s*EXIT_CODE:\s*(-?\d+)\s*$")


def encode_exit_code(code: int) -> bytes:
    return f"EXIT_CODE: {code}".encode("ascii")


def decode_exit_code(data: bytes) -> int:
    m = _EXIT_RE.match(data)
    if m is None:
        raise PayloadError(f"exit code payload {data[:40]!r} is not 'EXIT_CODE: <n>'")
    return int(m.group(1))


# --- OpenDataChannelInput (websocket text frame) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenDataChannel:
    """The first (text) message on a data-channel websocket (PROTOCOL.md §2.2)."""

    token: str
    request_id: str
    client_id: str
    client_version: str | None = None  # client only
    client_instance_id: str | None = None  # agent only
    schema_version: str = "1.0"

    def encode(self) -> str:
        obj: dict[str, Any] = {
            "MessageSchemaVersion": self.schema_version,
            "RequestId": self.request_id,
            "TokenValue": self.token,
        }
        if self.client_instance_id is not None:
            obj["ClientInstanceId"] = self.client_instance_id
        obj["ClientId"] = self.client_id
        if self.client_version is not None:
            obj["ClientVersion"] = self.client_version
        return go_json(obj).decode("utf-8")

    @classmethod
    def decode(cls, text: str | bytes) -> OpenDataChannel:
        what = "OpenDataChannel input"
        obj = _load_object(text.encode() if isinstance(text, str) else text, what)
        cv = obj.get("ClientVersion")
        ci = obj.get("ClientInstanceId")
        return cls(
            token=_get(obj, "TokenValue", str, what),
            request_id=str(obj.get("RequestId", "")),
            client_id=str(obj.get("ClientId", "")),
            client_version=cv if isinstance(cv, str) else None,
            client_instance_id=ci if isinstance(ci, str) else None,
            schema_version=str(obj.get("MessageSchemaVersion", "")),
        )


def join_actions(actions: Sequence[ProcessedAction]) -> str:
    """A one-line summary of failed actions, for error messages."""
    return "; ".join(f"{a.action_type}: {a.error or a.status}" for a in actions)
