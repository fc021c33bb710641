"""Simulated AWS Systems Manager (JSON 1.1, ``X-Amz-Target: AmazonSSM.<Op>``).

Operations: DescribeInstanceInformation, StartSession, ResumeSession, TerminateSession,
DescribeSessions, GetConnectionStatus, GetDocument. Each handler takes the request context and
the decoded JSON parameters and returns the JSON result, or raises :class:`AwsError`.
StartSession is authorized against the caller's identity policies (:mod:`ssmtui.sim.iam_policy`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ssmtui.sim.aws_wire import AwsError, epoch, fingerprint, page_offset, page_token
from ssmtui.sim.documents import (
    DEFAULT_DOCUMENT,
    SESSION_DOCUMENTS,
    document_content,
    normalize_document_name,
    resolve_parameters,
)
from ssmtui.sim.fleet import SimInstance
from ssmtui.sim.iam_policy import ALLOWED, EXPLICIT_DENY, evaluate

if TYPE_CHECKING:
    from ssmtui.sim.state import RequestContext, SimSession

__all__ = ["SSM_OPERATIONS", "instance_information"]

Handler = Callable[["RequestContext", dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]
InstancePredicate = Callable[[SimInstance], bool]


def _validation(field: str, value: Any, constraint: str) -> AwsError:
    return AwsError(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
        f"constraint: {constraint}",
    )


def _max_results(params: Mapping[str, Any], field: str, low: int, high: int, default: int) -> int:
    value = params.get("MaxResults")
    if value is None:
        return default
    if not isinstance(value, int) or value < low:
        raise _validation(field, value, f"Member must have value greater than or equal to {low}")
    if value > high:
        raise _validation(field, value, f"Member must have value less than or equal to {high}")
    return value


# --------------------------------------------------------------------------- instances

_FILTER_ATTRS: dict[str, Callable[[SimInstance], str | None]] = {
    "InstanceIds": lambda i: i.instance_id,
    "AgentVersion": lambda i: i.agent_version,
    "PingStatus": lambda i: i.ping_status,
    "PlatformTypes": lambda i: i.platform_type,
    "ActivationIds": lambda i: i.activation_id,
    "IamRole": lambda i: i.iam_role,
    "ResourceType": lambda i: i.resource_type,
    "AssociationStatus": lambda _i: "Success",
}


def _instance_predicate(key: str, values: list[str]) -> InstancePredicate:
    """One DescribeInstanceInformation filter as a predicate (values are OR-ed)."""
    if not values:
        raise AwsError(
            "InvalidInstanceInformationFilterValue", f"Filter {key} must have at least one value."
        )
    wanted = set(values)
    if key.startswith("tag:") and len(key) > 4:
        tag = key[4:]
        return lambda i: i.tags.get(tag) in wanted
    if key == "tag-key":
        return lambda i: bool(wanted & i.tags.keys())
    attr = _FILTER_ATTRS.get(key)
    if attr is None:
        raise AwsError("InvalidFilterKey", f"The filter key {key} is not valid.")
    return lambda i: attr(i) in wanted


def _instance_filters(params: Mapping[str, Any]) -> list[InstancePredicate]:
    preds: list[InstancePredicate] = []
    for flt in params.get("Filters") or []:
        preds.append(_instance_predicate(str(flt.get("Key", "")), list(flt.get("Values") or [])))
    for flt in params.get("InstanceInformationFilterList") or []:
        key = str(flt.get("key", ""))
        if key.startswith("tag"):
            raise AwsError("InvalidFilterKey", f"The filter key {key} is not valid.")
        preds.append(_instance_predicate(key, list(flt.get("valueSet") or [])))
    return preds


def instance_information(inst: SimInstance, now: datetime) -> dict[str, Any]:
    """The ``InstanceInformation`` JSON of one registered node."""
    item: dict[str, Any] = {
        "InstanceId": inst.instance_id,
        "PingStatus": inst.ping_status,
        "LastPingDateTime": epoch(inst.last_ping(now)),
        "AgentVersion": inst.agent_version,
        "IsLatestVersion": inst.is_latest_agent,
        "PlatformType": inst.platform_type,
        "PlatformName": inst.platform_name,
        "PlatformVersion": inst.platform_version,
        "ResourceType": inst.resource_type,
        "IPAddress": inst.private_ip,
        "ComputerName": inst.computer_name,
        "AssociationStatus": "Success",
        "SourceId": inst.instance_id,
        "SourceType": "AWS::SSM::ManagedInstance" if inst.is_hybrid else "AWS::EC2::Instance",
    }
    if inst.is_hybrid:
        item["Name"] = inst.name
        item["ActivationId"] = inst.activation_id
        item["IamRole"] = inst.iam_role
        if inst.registration_date is not None:
            item["RegistrationDate"] = epoch(inst.registration_date)
    return item


def describe_instance_information(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """SSM DescribeInstanceInformation: registered nodes of the caller's account and region."""
    if params.get("Filters") and params.get("InstanceInformationFilterList"):
        raise AwsError(
            "ValidationException",
            "Specify either InstanceInformationFilterList or Filters, not both.",
        )
    limit = _max_results(params, "maxResults", 5, 50, 10)
    preds = _instance_filters(params)
    caller = ctx.caller
    scope = fingerprint(
        caller.account_id,
        caller.region,
        params.get("Filters"),
        params.get("InstanceInformationFilterList"),
    )
    offset = page_offset(params.get("NextToken"), scope, "InvalidNextToken")
    matched = [
        i
        for i in ctx.state.fleet.in_scope(caller.account_id, caller.region)
        if i.registered and all(p(i) for p in preds)
    ]
    now = ctx.state.now()
    page = matched[offset : offset + limit]
    result: dict[str, Any] = {
        "InstanceInformationList": [instance_information(i, now) for i in page]
    }
    if offset + limit < len(matched):
        result["NextToken"] = page_token(offset + limit, scope)
    return result


def get_connection_status(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """SSM GetConnectionStatus: ``connected`` when a session could be started now."""
    target = str(params.get("Target", ""))
    inst = ctx.state.visible_instance(ctx.caller, target)
    online = inst is not None and inst.is_online
    return {"Target": target, "Status": "connected" if online else "notconnected"}


def get_document(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """SSM GetDocument for the session documents (incl. the Session Manager preferences)."""
    name = normalize_document_name(str(params.get("Name", "")))
    caller = ctx.caller
    prefs = ctx.state.session_preferences(caller.account_id, caller.region)
    content = document_content(name, prefs)
    if name == DEFAULT_DOCUMENT and not ctx.state.has_preferences(caller.account_id, caller.region):
        content = None  # never configured in this account/region: AWS has no such document
    if content is None:
        raise AwsError("InvalidDocument", "The specified document does not exist.")
    version = params.get("DocumentVersion") or "1"
    if version not in ("1", "$LATEST", "$DEFAULT"):
        raise AwsError(
            "InvalidDocumentVersion", "The document version is not valid or does not exist."
        )
    return {
        "Name": name,
        "CreatedDate": epoch(datetime(2018, 11, 16, tzinfo=UTC)),
        "DocumentVersion": "1",
        "Status": "Active",
        "Content": content,
        "DocumentType": "Session",
        "DocumentFormat": "JSON",
        "Requires": [],
    }


# --------------------------------------------------------------------------- sessions


def _stream_url(ctx: RequestContext, session_id: str) -> str:
    scheme = "wss" if ctx.secure else "ws"
    return f"{scheme}://{ctx.host}/v1/data-channel/{session_id}?role=publish_subscribe"


def _parameters(params: Mapping[str, Any]) -> dict[str, list[str]]:
    raw = params.get("Parameters") or {}
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise AwsError("SerializationException", "Parameters must be a map of string lists")
    return {str(k): [str(x) for x in v] for k, v in raw.items()}


def _authorize_start(
    ctx: RequestContext, target: str, inst: SimInstance | None, document: str
) -> None:
    """Evaluate the caller's identity policies for ``ssm:StartSession`` like IAM would.

    Context: ``aws:CurrentTime`` and ``ssm:resourceTag/<key>`` of the target's tags.
    """
    caller = ctx.caller
    acct = ctx.state.iam.account(caller.account_id)
    principal = acct.principal(caller.arn)
    if principal is None:
        return
    policies = acct.policy_sources(principal)
    now = ctx.state.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    context: dict[str, list[str]] = {"aws:CurrentTime": [now]}
    if inst is not None:
        context.update({f"ssm:resourceTag/{k}": [v] for k, v in inst.tags.items()})
    kind = "managed-instance" if target.startswith("mi-") else "instance"
    service = "ssm" if kind == "managed-instance" else "ec2"
    resources = [
        f"arn:aws:{service}:{caller.region}:{caller.account_id}:{kind}/{target}",
        f"arn:aws:ssm:{caller.region}::document/{document}",
    ]
    for resource in resources:
        decision = evaluate(policies, "ssm:StartSession", resource, context)
        if decision.decision == ALLOWED:
            continue
        why = (
            "with an explicit deny in an identity-based policy"
            if decision.decision == EXPLICIT_DENY
            else "because no identity-based policy allows the ssm:StartSession action"
        )
        raise AwsError(
            "AccessDeniedException",
            f"User: {caller.arn} is not authorized to perform: ssm:StartSession on resource: "
            f"{resource} {why}",
        )


async def start_session(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """SSM StartSession: authorize, validate document/target/parameters, create a session."""
    target = str(params.get("Target", ""))
    document = normalize_document_name(params.get("DocumentName"))
    inst = ctx.state.visible_instance(ctx.caller, target)
    _authorize_start(ctx, target, inst, document)
    if document != DEFAULT_DOCUMENT and document not in SESSION_DOCUMENTS:
        raise AwsError("InvalidDocument", f"Document with name {document} does not exist.")
    if inst is None or not inst.is_online:
        raise AwsError("TargetNotConnected", f"{target} is not connected.")
    given = _parameters(params)
    try:
        resolved = resolve_parameters(document, given)
    except ValueError as exc:
        raise AwsError("InvalidParameters", str(exc)) from None
    reason = params.get("Reason")
    session = ctx.state.new_session(
        ctx.caller, target, document, given, resolved, str(reason) if reason else None
    )
    session.stream_url = _stream_url(ctx, session.session_id)
    hook = ctx.state.on_start_session
    if hook is not None:
        result = hook(session)
        if inspect.isawaitable(result):
            await result
    return {
        "SessionId": session.session_id,
        "TokenValue": session.token,
        "StreamUrl": session.stream_url,
    }


def _own_session(ctx: RequestContext, session_id: str) -> SimSession | None:
    session = ctx.state.sessions.get(session_id)
    if session is None:
        return None
    if session.account_id != ctx.caller.account_id or session.region != ctx.caller.region:
        return None
    return session


def resume_session(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """SSM ResumeSession: a new token and stream URL for a live session."""
    session_id = str(params.get("SessionId", ""))
    session = _own_session(ctx, session_id)
    if session is None or session.terminated:
        raise AwsError("DoesNotExistException", f"Session with id {session_id} does not exist.")
    token = ctx.state.reissue_token(session)
    session.stream_url = _stream_url(ctx, session_id)
    return {"SessionId": session_id, "TokenValue": token, "StreamUrl": session.stream_url}


async def terminate_session(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """SSM TerminateSession (idempotent; an unknown id is a no-op, as its model has no error)."""
    session_id = str(params.get("SessionId", ""))
    if _own_session(ctx, session_id) is not None:
        await ctx.state.terminate_session(session_id)
    return {"SessionId": session_id}


def _parse_filter_date(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AwsError("InvalidFilterKey", f"Invalid date value {value!r}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _session_predicate(key: str, value: str) -> Callable[[SimSession], bool]:
    if key == "InvokedAfter":
        after = _parse_filter_date(value)
        return lambda s: s.start_date >= after
    if key == "InvokedBefore":
        before = _parse_filter_date(value)
        return lambda s: s.start_date <= before
    attrs: dict[str, Callable[[SimSession], str]] = {
        "Target": lambda s: s.target,
        "Owner": lambda s: s.owner,
        "Status": lambda s: s.status,
        "SessionId": lambda s: s.session_id,
        "AccessType": lambda _s: "Standard",
    }
    attr = attrs.get(key)
    if attr is None:
        raise AwsError("InvalidFilterKey", f"The filter key {key} is not valid.")
    return lambda s: attr(s) == value


def session_json(session: SimSession) -> dict[str, Any]:
    """The ``Session`` JSON of DescribeSessions."""
    item: dict[str, Any] = {
        "SessionId": session.session_id,
        "Target": session.target,
        "Status": session.status,
        "StartDate": epoch(session.start_date),
        "DocumentName": session.document_name,
        "Owner": session.owner,
        "AccessType": "Standard",
    }
    if session.end_date is not None:
        item["EndDate"] = epoch(session.end_date)
    if session.reason:
        item["Reason"] = session.reason
    if session.details:
        item["Details"] = session.details
    prefs = session.preferences
    if prefs.get("maxSessionDuration"):
        item["MaxSessionDuration"] = str(prefs["maxSessionDuration"])
    if session.terminated:
        output: dict[str, str] = {}
        if prefs.get("s3BucketName"):
            prefix = str(prefs.get("s3KeyPrefix") or "")
            output["S3OutputUrl"] = (
                f"https://{prefs['s3BucketName']}.s3.amazonaws.com/{prefix}{session.session_id}.log"
            )
        if prefs.get("cloudWatchLogGroupName"):
            output["CloudWatchOutputUrl"] = (
                f"https://console.aws.amazon.com/cloudwatch/home?region={session.region}"
                f"#logEventViewer:group={prefs['cloudWatchLogGroupName']};"
                f"stream={session.session_id}"
            )
        if output:
            item["OutputUrl"] = output
    return item


def describe_sessions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """SSM DescribeSessions: Active or History sessions of the caller's account and region."""
    state_name = params.get("State")
    if state_name not in ("Active", "History"):
        raise _validation(
            "state", state_name, "Member must satisfy enum value set: [Active, History]"
        )
    limit = _max_results(params, "maxResults", 1, 200, 20)
    filters = params.get("Filters") or []
    preds = [_session_predicate(str(f.get("key", "")), str(f.get("value", ""))) for f in filters]
    caller = ctx.caller
    scope = fingerprint(caller.account_id, caller.region, state_name, filters)
    offset = page_offset(params.get("NextToken"), scope, "InvalidNextToken")
    want_history = state_name == "History"
    matched = [
        s
        for s in reversed(ctx.state.sessions_for(caller.account_id, caller.region))
        if s.terminated == want_history and all(p(s) for p in preds)
    ]
    page = matched[offset : offset + limit]
    result: dict[str, Any] = {"Sessions": [session_json(s) for s in page]}
    if offset + limit < len(matched):
        result["NextToken"] = page_token(offset + limit, scope)
    return result


#: Operation name -> handler (sync or async).
SSM_OPERATIONS: dict[str, Handler] = {
    "DescribeInstanceInformation": describe_instance_information,
    "StartSession": start_session,
    "ResumeSession": resume_session,
    "TerminateSession": terminate_session,
    "DescribeSessions": describe_sessions,
    "GetConnectionStatus": get_connection_status,
    "GetDocument": get_document,
}
