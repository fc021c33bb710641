"""``ssmtui sessions`` and ``ssmtui terminate`` as subprocesses: with ``--demo``, and against a
demo server running in the test (through a config file's ``endpoints`` and a credentials file,
as with real AWS) so a session started outside ssmtui can be listed and terminated, and the
fleet's state checked."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ssmtui.cli_active import render_table, valid_session_id
from ssmtui.config import ENDPOINT_SERVICES
from ssmtui.errors import UsageError
from ssmtui.sim.fleet import demo_credentials
from ssmtui.textfmt import format_age
from tests.cli_helpers import SSMTUI, assert_one_error, clean_env, pty_session, run_cli
from tests.sim_harness import WEB_DEV, Sim, aws_env, running_sim  # noqa: F401  (aws_env: autouse)

pytestmark = pytest.mark.timeout(120)


# --------------------------------------------------------------------------- units


def test_text_helpers() -> None:
    assert [format_age(s) for s in (1, 40, 1500, 7200, 200000)] == [
        "just now",
        "40s ago",
        "25m ago",
        "2h ago",
        "2d ago",
    ]
    assert render_table([("a", "bb")], header=("X", "Y")) == "X  Y\na  bb\n"
    assert valid_session_id(" demo-0123abc ") == "demo-0123abc"
    with pytest.raises(UsageError):
        valid_session_id("no spaces please")


# --------------------------------------------------------------------------- --demo


def test_demo_sessions_lists_and_json() -> None:
    res = run_cli("--demo", "sessions")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    if res.stdout:
        assert res.stdout.split()[:2] == ["Status", "Session"]
    else:
        assert res.stderr.strip() == "ssmtui: no active sessions"
    res = run_cli("--demo", "sessions", "--history", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["state"] == "History" and doc["errors"] == []
    assert isinstance(doc["sessions"], list)


def test_demo_terminate_errors_are_one_line() -> None:
    line = assert_one_error(run_cli("--demo", "terminate", "bad id!", "--yes"), 2)
    assert "bad session id" in line
    line = assert_one_error(run_cli("--demo", "terminate", "demo-00000000000000000", "--yes"), 1)
    assert "no session demo-00000000000000000 in" in line
    # not a terminal and no --yes: a usage error before any AWS call
    line = assert_one_error(run_cli("--demo", "terminate", "demo-00000000000000000"), 2)
    assert "--yes" in line or "not a terminal" in line


def test_demo_terminate_a_listed_session() -> None:
    """When the demo fleet has sessions (started "elsewhere"), one can be terminated."""
    listed = json.loads(run_cli("--demo", "sessions", "--json").stdout)["sessions"]
    if not listed:
        pytest.skip("the demo fleet has no active sessions")
    session = listed[0]
    res = run_cli(
        "--demo",
        "-p",
        session["profile"],
        "-r",
        session["region"],
        "terminate",
        session["session_id"],
        "--yes",
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"terminated {session['session_id']} on ")


# --------------------------------------------------------------------------- live server


@asynccontextmanager
async def live(tmp_path: Path) -> AsyncIterator[tuple[Sim, dict[str, str]]]:
    """A demo server in this test, and the environment that points ``ssmtui`` at it."""
    async with running_sim(tmp_path) as sim:
        creds = tmp_path / "credentials"
        lines = []
        for profile in ("dev", "prod"):
            key, secret = demo_credentials(profile)
            lines += [
                f"[{profile}]",
                f"aws_access_key_id = {key}",
                f"aws_secret_access_key = {secret}",
            ]
        creds.write_text("\n".join(lines) + "\n")
        config = tmp_path / "config.toml"
        endpoints = ", ".join(f'{s} = "{sim.server.endpoint}"' for s in ENDPOINT_SERVICES)
        config.write_text(
            f'profiles = ["dev"]\nregions = ["us-east-1"]\nendpoints = {{ {endpoints} }}\n'
        )
        env = clean_env(
            AWS_SHARED_CREDENTIALS_FILE=str(creds), SSMTUI_CONFIG=str(config), SSMTUI_HISTORY="off"
        )
        yield sim, env


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a thread (the demo server runs on this event loop)."""
    return await asyncio.to_thread(run_cli, *args, env=env)


async def test_list_and_terminate_a_session_started_elsewhere(tmp_path: Path) -> None:
    async with live(tmp_path) as (sim, env):
        other = await sim.start(WEB_DEV)
        sid = other.channel.session_id
        try:
            res = await cli(env, "sessions")
            assert res.returncode == 0, res.stderr
            row = next(line for line in res.stdout.splitlines() if sid in line)
            assert row.split()[:5] == ["Connected", sid, "web-dev-1", "you", "Shell"]

            sim.state.sessions[sid].owner = "arn:aws:iam::111111111111:user/ops/alice"
            doc = json.loads((await cli(env, "sessions", "--json")).stdout)
            item = next(s for s in doc["sessions"] if s["session_id"] == sid)
            assert (item["owner_name"], item["mine"], item["target_name"]) == (
                "alice",
                False,
                "web-dev-1",
            )
            assert datetime.fromisoformat(item["start"]) <= datetime.now(UTC)

            res = await cli(env, "terminate", sid, "--yes")
            assert res.returncode == 0, res.stderr
            assert res.stdout.strip() == f"terminated {sid} on web-dev-1"
            assert sim.state.sessions[sid].status == "Terminated"
            await other.wait_closed()

            res = await cli(env, "sessions", "--history")
            row = next(line for line in res.stdout.splitlines() if sid in line)
            assert row.split()[:2] == ["Terminated", sid]
            line = assert_one_error(await cli(env, "terminate", sid, "--yes"), 1)
            assert "already ended" in line
        finally:
            await other.aclose()


async def test_terminate_asks_on_a_terminal(tmp_path: Path) -> None:
    async with live(tmp_path) as (sim, env):
        other = await sim.start(WEB_DEV)
        sid = other.channel.session_id
        sim.state.sessions[sid].owner = "arn:aws:sts::111111111111:assumed-role/Ops/bob"

        def answer(key: bytes) -> tuple[int, bytes]:
            with pty_session([*SSMTUI, "terminate", sid], env, cols=200) as term:
                term.expect(b"This is bob's session, started elsewhere.")
                term.expect(f"Terminate {sid} on web-dev-1 (bob)? [y/N]".encode())
                term.send(key + b"\r")
                return term.wait(60), term.output

        try:
            code, out = await asyncio.to_thread(answer, b"n")
            assert code == 1 and b"not terminated" in out
            assert not sim.state.sessions[sid].terminated
            code, out = await asyncio.to_thread(answer, b"y")
            assert code == 0, out
            assert sim.state.sessions[sid].terminated
        finally:
            await other.aclose()
