"""The demo fleet in its own process, for benchmarks: the real agent runs on another machine, so
the client under test must not share a Python process (and its one core) with the agents.

Starts :func:`ssmtui.sim.api.run_server` with :func:`ssmtui.sim.agent.attach_agents` and, on
the "instance" side, the TCP services the benchmarks forward to; prints one JSON line on stdout::

    {"endpoint": "http://127.0.0.1:PORT", "pid": 123, "pace": false, "instances": 12,
     "profiles": ["dev", "prod"], "regions": ["us-east-1", "eu-west-1"],
     "sink_port": 40001, "source_port": 40002}

then serves until stdin closes, SIGTERM or SIGINT. Nothing else is written to stdout.

TCP services (both start with an 8-byte big-endian size ``N`` sent by the client):

* sink: reads ``N`` bytes, then answers one byte ``K`` (so an upload's end is known at the
  client even through smux v1, which has no half-close), then reads until EOF;
* source: writes ``N`` bytes, then waits for EOF.

    python -m bench.simserver [--pace] [--generate 10000 --seed 1] [--first-read-delay 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import struct
import sys
import tempfile
import threading
from pathlib import Path

from bench.common import clean_env

HEADER = struct.Struct(">Q")
BLOCK = 64 * 1024


async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the size, then that many bytes; answer ``K``; read until EOF."""
    try:
        (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        got = 0
        while got < size:
            data = await reader.read(BLOCK)
            if not data:
                return
            got += len(data)
        writer.write(b"K")
        await writer.drain()
        while await reader.read(BLOCK):
            pass
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the size, write that many bytes, wait for EOF."""
    try:
        (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        block = b"d" * BLOCK
        left = size
        while left > 0:
            writer.write(block[: min(BLOCK, left)])
            left -= BLOCK
            await writer.drain()
        while await reader.read(BLOCK):
            pass
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin reaches EOF (the parent closed it or died)."""

    def run() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=run, name="stdin-watch", daemon=True).start()


async def serve(
    *, pace: bool, generate: int | None, seed: int, first_read_delay: float, tcp: bool
) -> None:
    """Serve until stdin closes or a signal arrives (see the module docstring)."""
    from ssmtui.sim.agent import attach_agents
    from ssmtui.sim.api import run_server
    from ssmtui.sim.fleet import default_fleet, generate_fleet
    from ssmtui.sim.state import SimState

    clean_env()
    fleet = generate_fleet(generate, seed=seed) if generate else default_fleet()
    state = SimState(fleet)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _watch_stdin(loop, stop)
    servers: list[asyncio.Server] = []
    ports: dict[str, int] = {}
    if tcp:
        for name, handler in (("sink_port", sink), ("source_port", source)):
            srv = await asyncio.start_server(handler, "127.0.0.1", 0)
            servers.append(srv)
            ports[name] = srv.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="ssmtui-bench-") as scratch:
        async with run_server(state=state) as server:
            hub = attach_agents(
                state, scratch_root=Path(scratch), pace=pace, first_read_delay=first_read_delay
            )
            hello = {
                "endpoint": server.endpoint,
                "pid": os.getpid(),
                "pace": pace,
                "instances": len(fleet),
                "profiles": list(fleet.profiles),
                "regions": list(fleet.regions),
                **ports,
            }
            sys.stdout.write(json.dumps(hello) + "\n")
            sys.stdout.flush()
            try:
                await stop.wait()
            finally:
                await hub.aclose()
    for srv in servers:
        srv.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the options and serve."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pace", action="store_true", help="pace agent output (1 KiB then 1 ms)")
    ap.add_argument("--generate", type=int, default=None, help="serve N generated instances")
    ap.add_argument("--seed", type=int, default=1, help="seed of the generated fleet")
    ap.add_argument(
        "--first-read-delay", type=float, default=0.05, help="shell's wait before its first read"
    )
    ap.add_argument("--no-tcp", action="store_true", help="no sink/source TCP services")
    args = ap.parse_args(argv)
    asyncio.run(
        serve(
            pace=args.pace,
            generate=args.generate,
            seed=args.seed,
            first_read_delay=args.first_read_delay,
            tcp=not args.no_tcp,
        )
    )


if __name__ == "__main__":
    main()
