"""Shared helpers for the benchmarks: a demo fleet on loopback, echo/sink/source TCP servers,
and table/JSON output. Benchmarks print ratios against a baseline measured in the same run."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def clean_env() -> None:
    """Keep machine-wide AWS and proxy settings away from the loopback demo fleet."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"


@asynccontextmanager
async def demo(**agent_kw: Any) -> AsyncIterator[Any]:
    """(server, hub, SessionService) on a fresh demo fleet."""
    from ssmtui.aws.clients import demo_clients
    from ssmtui.services import SessionService
    from ssmtui.sim.agent import attach_agents
    from ssmtui.sim.api import run_server
    from ssmtui.sim.fleet import default_fleet
    from ssmtui.sim.state import SimState

    clean_env()
    state = SimState(default_fleet())
    with tempfile.TemporaryDirectory() as scratch:
        async with run_server(state=state) as server:
            agent_kw.setdefault("first_read_delay", 0.05)
            hub = attach_agents(state, scratch_root=Path(scratch), **agent_kw)
            clients = demo_clients(server)
            try:
                yield server, hub, SessionService(clients)
            finally:
                await clients.aclose()
                await hub.aclose()


async def instance(svc: Any, target: str = "web-dev-1") -> Any:
    from ssmtui.aws.fleet import resolve_target
    from ssmtui.models import FleetScope

    scopes = [FleetScope(p, r) for p in ("dev", "prod") for r in ("us-east-1", "eu-west-1")]
    return await resolve_target(svc.clients, scopes, target)


@asynccontextmanager
async def tcp_server(handler: Callable[..., Any]) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def report(name: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print a table and write bench/results/<name>.json."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return "" if v is None else str(v)
