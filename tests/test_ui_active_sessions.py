"""The Active Sessions pane against the REAL demo fleet: a session started outside ssmtui shows
up with its owner and target, terminating it from the pane ends it in the fleet (and ends our own
open connection with a reason), "n" cancels, the recent view shows it ended, and a failing scope
or a refused TerminateSession is one line in the pane."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Static

from ssmtui.aws.clients import demo_clients
from ssmtui.aws.sessions import parse_session
from ssmtui.models import FleetScope, RemoteSession
from ssmtui.services import SessionService
from ssmtui.ui.app import SsmtuiApp, create_app
from ssmtui.ui.screens.active_sessions import ActiveSessionsScreen
from ssmtui.ui.screens.sessions import ConfirmScreen
from ssmtui.ui.source import AwsFleetSource
from tests.sim_harness import WEB_DEV, Sim, aws_env, running_sim  # noqa: F401  (aws_env: autouse)

pytestmark = pytest.mark.timeout(90)
SCOPES = [FleetScope(p, r) for p in ("dev", "prod") for r in ("us-east-1", "eu-west-1")]
ALICE = "arn:aws:sts::111111111111:assumed-role/Admin/alice@example.com"


@asynccontextmanager
async def active_app(
    tmp_path: Path, scopes: Sequence[FleetScope] = SCOPES
) -> AsyncIterator[tuple[SsmtuiApp, object, Sim, SessionService]]:
    async with running_sim(tmp_path) as sim:
        clients = demo_clients(sim.server)
        try:
            services = SessionService(clients)
            app = create_app(AwsFleetSource(clients, scopes), refresh_interval=0, services=services)
            async with app.run_test(size=(200, 50)) as pilot:
                await until(pilot, lambda: app.fleet.fleet_loaded, "the fleet")
                yield app, pilot, sim, services
        finally:
            await clients.aclose()


async def until(pilot: object, cond: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


async def open_pane(app: SsmtuiApp, pilot: object) -> ActiveSessionsScreen:
    app.fleet.table.focus()
    await pilot.press("a")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, ActiveSessionsScreen), "the pane")
    screen = app.screen
    assert isinstance(screen, ActiveSessionsScreen)
    await until(pilot, lambda: screen.load_count > 0, "the first listing")
    return screen


def cells(screen: ActiveSessionsScreen, session: RemoteSession) -> list[str]:
    key = f"{session.profile}/{session.region}/{session.session_id}"
    return [c.plain if isinstance(c, Text) else str(c) for c in screen.table.get_row(key)]


async def find_row(
    pilot: object, screen: ActiveSessionsScreen, session_id: str, what: str
) -> RemoteSession:
    """Reload until the session is listed; select it."""
    deadline = time.monotonic() + 30
    while not screen.select(session_id):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} {session_id} never listed")
        if not screen.listing_busy:
            screen.reload()
        await pilot.pause(0.1)  # type: ignore[attr-defined]
    found = screen.selected
    assert found is not None and found.session_id == session_id
    return found


async def test_terminate_elsewhere_and_own_sessions_from_the_pane(tmp_path: Path) -> None:
    async with active_app(tmp_path) as (app, pilot, sim, services):
        # Started outside ssmtui (plain aiobotocore StartSession + its own websocket client, the
        # simulated agent runs it) and, as the demo has one IAM user, re-owned by "alice".
        other = await sim.start(WEB_DEV)
        other_id = other.channel.session_id
        sim.state.sessions[other_id].owner = ALICE
        # ...and one of ours, open through the service.
        conn = await services.open(app.fleet.result.by_id()[WEB_DEV])
        try:
            screen = await open_pane(app, pilot)
            theirs = await find_row(pilot, screen, other_id, "the elsewhere session")
            row = cells(screen, theirs)
            assert row[:5] == ["Connected", other_id, "web-dev-1", "alice@example.com", "Shell"]
            assert row[7] == "dev/us-east-1" and row[5].endswith(("ago)", "just now)"))
            assert ALICE in str(screen.details.content)
            mine = await find_row(pilot, screen, conn.session_id, "our session")
            assert cells(screen, mine)[3] == "you"

            # "n" cancels: nothing happens in the fleet
            await find_row(pilot, screen, other_id, "the elsewhere session")
            await pilot.press("x")  # type: ignore[attr-defined]
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            assert "alice@example.com's session, started elsewhere" in confirm.question
            assert "web-dev-1" in confirm.question and other_id in confirm.question
            await pilot.press("n")  # type: ignore[attr-defined]
            await until(pilot, lambda: app.screen is screen, "the pane again")
            await pilot.pause(0.2)  # type: ignore[attr-defined]
            assert not sim.state.sessions[other_id].terminated and not screen.terminated

            # "y" terminates it in the fleet; the other client's connection ends
            await pilot.press("x")  # type: ignore[attr-defined]
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            await pilot.press("y")  # type: ignore[attr-defined]
            await until(pilot, lambda: sim.state.sessions[other_id].terminated, "the terminate")
            assert sim.state.sessions[other_id].status == "Terminated"
            await other.wait_closed()
            await until(pilot, lambda: not screen.select(other_id), "the row to go")

            # our own session: a plainer question, and our connection ends with a reason
            await find_row(pilot, screen, conn.session_id, "our session")
            await pilot.press("delete")  # type: ignore[attr-defined]
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            assert "(you)" in confirm.question and "elsewhere" not in confirm.question
            await pilot.press("y")  # type: ignore[attr-defined]
            await until(pilot, lambda: conn.closed, "our connection to end")
            assert conn.end_reason and sim.state.sessions[conn.session_id].terminated

            # the recent view lists both as ended
            await pilot.press("v")  # type: ignore[attr-defined]
            ended = await find_row(pilot, screen, other_id, "the ended session")
            assert cells(screen, ended)[0] == "Terminated" and ended.end is not None
            assert "Recent" in str(screen.query_one("#active-mode", Static).content)
            await pilot.press("x")  # type: ignore[attr-defined]
            await pilot.pause(0.2)  # type: ignore[attr-defined]
            assert app.screen is screen  # nothing to terminate: no question
            await pilot.press("v")  # type: ignore[attr-defined]
            await until(
                pilot, lambda: "Active" in str(screen.query_one("#active-mode", Static).content), ""
            )

            await pilot.press("escape")  # type: ignore[attr-defined]
            await until(pilot, lambda: app.screen is app.fleet, "the fleet")
        finally:
            await conn.close()
            await other.aclose()


async def test_a_failing_scope_and_a_refused_terminate_are_one_line(tmp_path: Path) -> None:
    ghost = FleetScope("ghost", "us-east-1")  # credentials the demo server does not know
    async with active_app(tmp_path, [*SCOPES, ghost]) as (app, pilot, sim, _services):
        other = await sim.start(WEB_DEV)
        other_id = other.channel.session_id
        try:
            screen = await open_pane(app, pilot)
            await find_row(pilot, screen, other_id, "the session")  # the other scopes list
            assert "ghost/us-east-1" in screen.error_text
            assert len(screen.error_text.splitlines()) == 1

            sim.state.force_error("TerminateSession", "AccessDeniedException", "not allowed")
            await pilot.press("x")  # type: ignore[attr-defined]
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            await pilot.press("enter")  # type: ignore[attr-defined]
            await until(pilot, lambda: "terminate" in screen.action_error, "the error line")
            assert "\n" not in screen.action_error and other_id in screen.action_error
            assert screen.action_error in screen.error_text
            assert not sim.state.sessions[other_id].terminated and app.screen is screen
        finally:
            await other.aclose()


async def test_palette_entry_opens_the_pane(tmp_path: Path) -> None:
    from ssmtui.ui.commands import fleet_commands

    async with active_app(tmp_path, SCOPES[:1]) as (app, pilot, _sim, _services):
        entry = next(c for c in fleet_commands(app.fleet) if c[0] == "Active sessions")
        result = entry[2]()
        if inspect.isawaitable(result):
            await result
        await until(pilot, lambda: isinstance(app.screen, ActiveSessionsScreen), "the pane")
        screen = app.screen
        assert isinstance(screen, ActiveSessionsScreen)
        await until(pilot, lambda: screen.load_count > 0, "the first listing")
        await pilot.pause()  # type: ignore[attr-defined]
        ids = [row[2] for row in app.help_rows()]
        assert "active.terminate" in ids and "active.view" in ids


def test_remote_session_model() -> None:
    item = {
        "SessionId": "alice-0123456789abcdef0",
        "Target": "i-0123456789abcdef0",
        "Status": "Connected",
        "StartDate": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "DocumentName": "AWS-StartPortForwardingSessionToRemoteHost",
        "Owner": ALICE,
        "Reason": "db migration",
        "OutputUrl": {"S3OutputUrl": "https://b.s3.amazonaws.com/x.log"},
    }
    s = parse_session(item, "dev", "us-east-1")
    assert (s.owner_name, s.what, s.reason, s.active) == (
        "alice@example.com",
        "Remote host",
        "db migration",
        True,
    )
    assert s.is_mine(ALICE) and not s.is_mine("arn:aws:iam::111111111111:user/demo")
    assert not s.is_mine(None) and s.output_url.endswith("x.log")
    assert s.duration(datetime(2026, 1, 2, 3, 5, 5, tzinfo=UTC)) == 60
    user = RemoteSession("s", "i-1", "Terminated", owner="arn:aws:iam::1:user/ops/bob")
    assert (user.owner_name, user.what, user.active) == ("bob", "Shell", False)
    assert RemoteSession("s", "i-1", "Connected", owner="arn:aws:iam::1:root").owner_name == "root"
    port = RemoteSession(
        "s",
        "i-1",
        "Connected",
        document="AWS-StartPortForwardingSession",
        parameters=(("portNumber", "5432"),),
    )
    assert port.what == "Port 5432"
    assert port.to_json()["what"] == "Port 5432"
