"""StartSession / ResumeSession / TerminateSession / DescribeSessions, and the signed stream URL.

Functions take an aiobotocore SSM client (from :mod:`ssmtui.aws.clients`) so callers decide
profile, region and endpoint. Errors come out as :mod:`ssmtui.errors` through
:func:`ssmtui.aws.errors.translate` when that module is present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ssmtui.models import RemoteSession

__all__ = [
    "DOCUMENTS",
    "StartedSession",
    "caller_arn",
    "describe_sessions",
    "parse_session",
    "port_parameters",
    "resume_session",
    "sign_stream_url",
    "start_session",
    "terminate_session",
]

#: Session documents by what the user asked for.
DOCUMENTS = {
    "shell": None,
    "port": "AWS-StartPortForwardingSession",
    "remote": "AWS-StartPortForwardingSessionToRemoteHost",
    "ssh": "AWS-StartSSHSession",
    "interactive": "AWS-StartInteractiveCommand",
    "command": "AWS-StartNonInteractiveCommand",
}

_PRESIGNED = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
)


@dataclass(frozen=True, slots=True)
class StartedSession:
    session_id: str
    token: str = field(repr=False)
    stream_url: str
    target: str
    document: str | None
    region: str


def port_parameters(
    remote_port: int, *, host: str | None = None, local_port: int | None = None
) -> dict[str, list[str]]:
    params = {"portNumber": [str(remote_port)]}
    if host:
        params["host"] = [host]
    if local_port is not None:
        params["localPortNumber"] = [str(local_port)]
    return params


async def start_session(
    ssm: Any,
    target: str,
    *,
    document: str | None = None,
    parameters: Mapping[str, Sequence[str]] | None = None,
    reason: str | None = None,
) -> StartedSession:
    """Call StartSession; returns the session id, token and stream URL."""
    kwargs: dict[str, Any] = {"Target": target}
    if document:
        kwargs["DocumentName"] = document
    if parameters:
        kwargs["Parameters"] = {k: list(v) for k, v in parameters.items()}
    if reason:
        kwargs["Reason"] = reason[:256]
    resp = await _call(ssm, "start_session", **kwargs)
    return StartedSession(
        session_id=resp["SessionId"],
        token=resp["TokenValue"],
        stream_url=resp["StreamUrl"],
        target=target,
        document=document,
        region=ssm.meta.region_name,
    )


async def resume_session(ssm: Any, session_id: str) -> tuple[str, str]:
    """ResumeSession: a fresh (stream URL, token) for a dropped, not terminated, session."""
    resp = await _call(ssm, "resume_session", SessionId=session_id)
    token = resp.get("TokenValue") or ""
    if not token:
        raise RuntimeError(f"session {session_id} timed out")
    return resp.get("StreamUrl") or "", token


async def terminate_session(ssm: Any, session_id: str) -> None:
    await _call(ssm, "terminate_session", SessionId=session_id)


#: DescribeSessions' page size maximum.
_DESCRIBE_PAGE = 200


async def describe_sessions(
    ssm: Any,
    state: str = "Active",
    *,
    filters: Sequence[Mapping[str, str]] = (),
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """DescribeSessions (``state`` ``Active`` or ``History``), following NextToken until
    ``limit`` sessions (History can hold every session ever: keep ``limit`` modest)."""
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"State": state, "MaxResults": min(_DESCRIBE_PAGE, max(1, limit))}
    if filters:
        kwargs["Filters"] = [{"key": f["key"], "value": f["value"]} for f in filters]
    while len(found) < limit:
        resp = await _call(ssm, "describe_sessions", **kwargs)
        found.extend(resp.get("Sessions") or [])
        token = resp.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    return found[:limit]


def parse_session(item: Mapping[str, Any], profile: str, region: str) -> RemoteSession:
    """One DescribeSessions ``Session`` as a :class:`~ssmtui.models.RemoteSession`."""
    output = item.get("OutputUrl") or {}
    return RemoteSession(
        session_id=str(item.get("SessionId") or ""),
        target=str(item.get("Target") or ""),
        status=str(item.get("Status") or ""),
        owner=str(item.get("Owner") or ""),
        start=_utc(item.get("StartDate")),
        end=_utc(item.get("EndDate")),
        document=str(item.get("DocumentName") or ""),
        reason=str(item.get("Reason") or ""),
        details=str(item.get("Details") or ""),
        profile=profile,
        region=region,
        output_url=str(output.get("S3OutputUrl") or output.get("CloudWatchOutputUrl") or ""),
    )


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None


async def caller_arn(sts: Any) -> str:
    """STS GetCallerIdentity: the ARN of the principal these credentials act as."""
    resp = await _call(sts, "get_caller_identity")
    return str(resp.get("Arn") or "")


async def _call(client: Any, method: str, **kwargs: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await getattr(client, method)(**kwargs)
    except Exception as exc:
        try:
            from ssmtui.aws.errors import translate
        except ImportError:
            raise
        raise translate(exc, operation=method) from exc
    return result


def sign_stream_url(url: str, credentials: Any, region: str) -> dict[str, str]:
    """SigV4 headers for the websocket upgrade (service ``ssmmessages``), as current AWS clients
    send them; empty when the URL is presigned or there are no credentials (then the service
    takes the token alone)."""
    parts = urlsplit(url)
    if credentials is None or any(key in parts.query for key in _PRESIGNED):
        return {}
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    scheme = "https" if parts.scheme == "wss" else "http"
    request = AWSRequest(method="GET", url=urlunsplit((scheme, *parts[1:])))
    SigV4Auth(credentials, "ssmmessages", region).add_auth(request)
    return {
        k: v
        for k, v in request.headers.items()
        if k.lower() in ("authorization", "x-amz-date", "x-amz-security-token")
    }
