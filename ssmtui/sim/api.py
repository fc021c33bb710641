"""The demo fleet's loopback AWS endpoint: SSM, EC2, KMS, STS and IAM on one aiohttp port.

Point real boto3/aiobotocore clients at :attr:`SimServer.endpoint` with ``endpoint_url=`` and the
:func:`~ssmtui.sim.fleet.demo_credentials` of a profile; the SigV4 credential scope tells the server
the caller's account (access key id) and region. Requests are routed the way AWS front ends do:

* ``X-Amz-Target: AmazonSSM.<Op>`` / ``TrentService.<Op>`` -> SSM / KMS (JSON 1.1);
* form body ``Action=<Op>&Version=2016-11-15`` -> EC2, ``Version=2011-06-15`` -> STS,
  ``Version=2010-05-08`` -> IAM (query; global, so any signing region is accepted);
* ``GET /v1/data-channel/{session_id}`` -> the session's data-channel websocket, served by
  :attr:`SimState.data_channel_handler` (the simulated agent).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import ssl
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSCloseCode, web

from ssmtui.sim.aws_ec2 import EC2_OPERATIONS, EC2_XMLNS
from ssmtui.sim.aws_iam import IAM_OPERATIONS, IAM_XMLNS
from ssmtui.sim.aws_kms import KMS_OPERATIONS
from ssmtui.sim.aws_ssm import SSM_OPERATIONS
from ssmtui.sim.aws_sts import STS_OPERATIONS, STS_XMLNS
from ssmtui.sim.aws_wire import (
    JSON_CONTENT_TYPE,
    AwsError,
    Caller,
    error_for,
    json_error_body,
    parse_authorization,
    query_error_body,
    verify_sigv4,
    xml_document,
)
from ssmtui.sim.fleet import SimFleet, demo_credentials
from ssmtui.sim.state import CallRecord, RequestContext, SimSession, SimState

__all__ = [
    "STATE_KEY",
    "SimServer",
    "SimSession",
    "SimState",
    "build_app",
    "run_server",
    "serve_in_thread",
]

#: Where the :class:`SimState` lives on the aiohttp application.
STATE_KEY = web.AppKey("ssmtui_sim_state", SimState)

_JSON_SERVICES: dict[str, tuple[str, Mapping[str, Any]]] = {
    "AmazonSSM": ("ssm", SSM_OPERATIONS),
    "TrentService": ("kms", KMS_OPERATIONS),
}
_QUERY_SERVICES: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    # Version -> (service, protocol, xmlns, operations)
    "2016-11-15": ("ec2", "ec2", EC2_XMLNS, EC2_OPERATIONS),
    "2011-06-15": ("sts", "query", STS_XMLNS, STS_OPERATIONS),
    "2010-05-08": ("iam", "query", IAM_XMLNS, IAM_OPERATIONS),
}
_REQUEST_ID_HEADER = "x-amzn-RequestId"


@dataclass
class _Route:
    service: str
    protocol: str
    operation: str
    handler: Any
    params: dict[str, Any]
    xmlns: str = ""


def _route(request: web.Request, body: bytes) -> _Route:
    """Pick service/operation from ``X-Amz-Target`` or the query ``Action``/``Version``."""
    target = request.headers.get("X-Amz-Target")
    if target:
        prefix, _, operation = target.partition(".")
        service, ops = _JSON_SERVICES.get(prefix, ("", {}))
        if operation not in ops:
            raise AwsError("UnknownOperationException", f"Unknown operation {target}")
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise AwsError("SerializationException", "Could not parse the request body") from None
        if not isinstance(params, dict):
            raise AwsError("SerializationException", "The request body must be a JSON object")
        return _Route(service, "json", operation, ops[operation], params)
    form = dict(request.query)
    if body:
        form.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    action, version = form.pop("Action", ""), form.pop("Version", "")
    service, protocol, xmlns, ops = _QUERY_SERVICES.get(version, ("", "query", STS_XMLNS, {}))
    if action not in ops:
        err = AwsError("InvalidAction", f"Could not find operation {action} for version {version}")
        raise _RoutedError(err, _Route(service or "unknown", protocol, action, None, form, xmlns))
    return _Route(service, protocol, action, ops[action], form, xmlns)


class _RoutedError(Exception):
    """An error raised while routing, carrying the protocol to render it in."""

    def __init__(self, error: AwsError, route: _Route) -> None:
        super().__init__(error.message)
        self.error = error
        self.route = route


def _authenticate(state: SimState, request: web.Request, body: bytes, protocol: str) -> Caller:
    """Map the SigV4 credential to a demo profile/account and verify the signature."""
    auth = parse_authorization(request.headers.get("Authorization"))
    if auth is None:
        raise error_for("missing", protocol)
    profile = state.fleet.profile_for_access_key(auth.access_key_id)
    if profile is None:
        raise error_for("unrecognized", protocol)
    if state.verify_signatures:
        ok = verify_sigv4(
            method=request.method,
            url=f"{request.scheme}://{request.host}{request.raw_path}",
            headers=request.headers,
            header_values={h: request.headers.getall(h, []) for h in auth.signed_headers},
            body=body,
            auth=auth,
            secret_key=demo_credentials(profile)[1],
        )
        if not ok:
            raise error_for("signature", protocol)
    return Caller(
        profile=profile,
        account_id=state.fleet.account_for(profile),
        region=auth.region,
        service=auth.service,
        access_key_id=auth.access_key_id,
    )


def _error_response(error: AwsError, route: _Route, request_id: str) -> web.Response:
    if route.protocol == "json":
        return web.Response(
            status=error.status,
            body=json_error_body(error),
            content_type=JSON_CONTENT_TYPE,
            headers={_REQUEST_ID_HEADER: request_id},
        )
    return web.Response(
        status=error.status,
        body=query_error_body(error, route.protocol, request_id, route.xmlns),
        content_type="text/xml",
        headers={_REQUEST_ID_HEADER: request_id},
    )


async def _dispatch(request: web.Request) -> web.Response:
    """Serve one AWS API call."""
    state = request.app[STATE_KEY]
    request_id = str(uuid.uuid4())
    body = await request.read()
    caller: Caller | None = None
    try:
        route = _route(request, body)
    except _RoutedError as exc:
        return _error_response(exc.error, exc.route, request_id)
    except AwsError as err:
        return _error_response(err, _Route("unknown", "json", "", None, {}), request_id)
    try:
        caller = _authenticate(state, request, body, route.protocol)
        delay = state.latency_for(route.operation)
        if delay > 0:
            await asyncio.sleep(delay)
        fault = state.take_fault(route.service, route.operation, route.protocol)
        if fault is not None:
            raise fault
        ctx = RequestContext(
            state=state,
            caller=caller,
            service=route.service,
            operation=route.operation,
            request_id=request_id,
            host=request.host,
            secure=request.secure,
        )
        result = route.handler(ctx, route.params)
        if inspect.isawaitable(result):
            result = await result
    except AwsError as err:
        _record(state, route, caller, err.code)
        return _error_response(err, route, request_id)
    _record(state, route, caller, None)
    headers = {_REQUEST_ID_HEADER: request_id}
    if route.protocol == "json":
        payload = json.dumps(result).encode()
        return web.Response(body=payload, content_type=JSON_CONTENT_TYPE, headers=headers)
    assert isinstance(result, ET.Element)
    return web.Response(body=xml_document(result), content_type="text/xml", headers=headers)


def _record(state: SimState, route: _Route, caller: Caller | None, code: str | None) -> None:
    state.calls.append(
        CallRecord(
            service=route.service,
            operation=route.operation,
            profile=caller.profile if caller else None,
            region=caller.region if caller else None,
            error_code=code,
            time=state.now(),
        )
    )


async def _data_channel(request: web.Request) -> web.StreamResponse:
    """``GET /v1/data-channel/{session_id}``: hand the upgraded websocket to the agent hook."""
    state = request.app[STATE_KEY]
    session = state.sessions.get(request.match_info["session_id"])
    if session is None:
        raise web.HTTPNotFound(text="session not found")
    if session.terminated:
        raise web.HTTPForbidden(text="session terminated")
    if request.query.get("role", "publish_subscribe") != "publish_subscribe":
        raise web.HTTPBadRequest(text="unsupported role")
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    session.websockets.add(ws)
    state.websockets.add(ws)
    try:
        handler = state.data_channel_handler
        if handler is None:
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"no agent attached")
        else:
            await handler(request, ws, session)
    finally:
        session.websockets.discard(ws)
        state.websockets.discard(ws)
        if not ws.closed:
            await ws.close()
    return ws


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every response carries an ``x-amzn-RequestId``."""
    if _REQUEST_ID_HEADER not in response.headers:
        response.headers[_REQUEST_ID_HEADER] = str(uuid.uuid4())


def build_app(state: SimState) -> web.Application:
    """The aiohttp application serving ``state`` (all services on one port)."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[STATE_KEY] = state
    app.router.add_post("/", _dispatch)
    app.router.add_get("/", _dispatch)
    app.router.add_get("/v1/data-channel/{session_id}", _data_channel)
    app.on_response_prepare.append(_add_request_id)

    async def _shutdown(_app: web.Application) -> None:
        await state.shutdown()

    app.on_shutdown.append(_shutdown)
    return app


@dataclass
class SimServer:
    """A running demo endpoint."""

    state: SimState
    host: str
    port: int
    scheme: str
    runner: web.AppRunner
    loop: asyncio.AbstractEventLoop

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` with TLS): the ``endpoint_url`` for clients."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def client_kwargs(self, profile: str, region: str) -> dict[str, str]:
        """Keyword arguments for ``create_client`` to call this server as ``profile``."""
        access_key, secret_key = demo_credentials(profile)
        return {
            "endpoint_url": self.endpoint,
            "region_name": region,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
        }


@asynccontextmanager
async def run_server(
    fleet: SimFleet | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    state: SimState | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[SimServer]:
    """Serve a fleet (default: the shipped demo fleet) on ``host:port`` (0 = a free port)."""
    sim_state = state if state is not None else SimState(fleet)
    runner = web.AppRunner(build_app(sim_state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound = runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
        yield SimServer(
            state=sim_state,
            host=shown,
            port=int(bound),
            scheme="https" if ssl_context else "http",
            runner=runner,
            loop=asyncio.get_running_loop(),
        )
    finally:
        await runner.cleanup()


@contextmanager
def serve_in_thread(
    fleet: SimFleet | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    state: SimState | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[SimServer]:
    """Run :func:`run_server` on its own event loop in a daemon thread (for sync callers)."""
    started = threading.Event()
    holder: dict[str, Any] = {}
    loop = asyncio.new_event_loop()

    async def main() -> None:
        stop = asyncio.Event()
        holder["stop"] = stop
        async with run_server(fleet, host, port, state=state, ssl_context=ssl_context) as server:
            holder["server"] = server
            started.set()
            await stop.wait()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # surfaced to the caller below
            holder["error"] = exc
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=run, name="ssmtui-sim-server", daemon=True)
    thread.start()
    started.wait(30)
    if "server" not in holder:
        thread.join(5)
        raise RuntimeError("demo server failed to start") from holder.get("error")
    try:
        yield holder["server"]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
