"""Tunnel throughput, both directions, against the demo fleet.

Paced agent (1 KiB then 1 ms, like the real agent): MB/s as a ratio of that pace's cap measured
by the same agent loop in this run. Unpaced agent: MB/s beside raw loopback TCP in this run.

    python -m bench.tunnel_throughput [--mb 20] [--paced-mb 4]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import demo, instance, report, tcp_server

CHUNK = 64 * 1024


class Sink:
    """Counts what arrives (smux v1 has no half-close, so the count cannot travel back)."""

    def __init__(self) -> None:
        self.total = 0
        self.target = 0
        self.done = asyncio.Event()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(CHUNK):
            self.total += len(data)
            if self.target and self.total >= self.target:
                self.done.set()
        writer.close()


def _source(size: int) -> Any:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        block = b"x" * CHUNK
        left = size
        while left > 0:
            writer.write(block[: min(CHUNK, left)])
            left -= CHUNK
            await writer.drain()
        writer.close()

    return handler


async def _upload(port: int, size: int, sink: Sink) -> float:
    sink.total, sink.target = 0, size
    sink.done.clear()
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    block = b"u" * CHUNK
    t0 = time.perf_counter()
    left = size
    while left > 0:
        writer.write(block[: min(CHUNK, left)])
        left -= CHUNK
        await writer.drain()
    await asyncio.wait_for(sink.done.wait(), 600)
    dt = time.perf_counter() - t0
    writer.close()
    return size / dt / 1e6


async def _download(port: int, size: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.perf_counter()
    writer.write(b"g")
    await writer.drain()
    got = 0
    while data := await reader.read(CHUNK):
        got += len(data)
        if got >= size:
            break
    dt = time.perf_counter() - t0
    writer.close()
    assert got >= size, f"got {got} of {size}"
    return size / dt / 1e6


async def _through_tunnel(pace: bool, size: int) -> tuple[float, float, str]:
    from ssmtui.transport.tunnel import TunnelSpec

    async with demo(pace=pace) as (_server, _hub, svc):
        inst = await instance(svc)
        sink = Sink()
        async with tcp_server(sink) as sink_port, tcp_server(_source(size)) as source_port:
            up_t = svc.tunnel(inst, TunnelSpec(inst.instance_id, 0, sink_port))
            down_t = svc.tunnel(inst, TunnelSpec(inst.instance_id, 0, source_port))
            await up_t.start()
            await down_t.start()
            try:
                await up_t.wait_up()
                await down_t.wait_up()
                up = await _upload(up_t.stats.local_port, size, sink)
                down = await _download(down_t.stats.local_port, size)
                return up, down, up_t.stats.mode
            finally:
                await up_t.stop()
                await down_t.stop()


async def _raw(size: int) -> tuple[float, float]:
    sink = Sink()
    async with tcp_server(sink) as sink_port, tcp_server(_source(size)) as source_port:
        return await _upload(sink_port, size, sink), await _download(source_port, size)


async def _pace_cap(seconds: float = 1.0) -> float:
    """What the agent's own pacing loop allows here: 1 KiB per (1 ms sleep + loop) as MB/s."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        await asyncio.sleep(0.001)
        n += 1
    return n * 1024 / (time.perf_counter() - t0) / 1e6


async def main(mb: float, paced_mb: float) -> list[dict[str, Any]]:
    size, paced = int(mb * 1e6), int(paced_mb * 1e6)
    raw_up, raw_down = await _raw(size)
    up, down, mode = await _through_tunnel(False, size)
    cap = await _pace_cap()
    p_up, p_down, _ = await _through_tunnel(True, paced)
    rows = [
        {"case": "raw loopback TCP", "up_MBps": raw_up, "down_MBps": raw_down},
        {
            "case": f"tunnel, unpaced agent ({mode})",
            "up_MBps": up,
            "down_MBps": down,
            "up_vs_raw": up / raw_up,
            "down_vs_raw": down / raw_down,
        },
        {"case": "agent pace cap (1 KiB + 1 ms sleep)", "up_MBps": cap, "down_MBps": cap},
        {
            "case": "tunnel, paced agent",
            "up_MBps": p_up,
            "down_MBps": p_down,
            "up_vs_cap": p_up / cap,
            "down_vs_cap": p_down / cap,
        },
    ]
    return rows


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=20.0, help="MB per direction, unpaced")
    ap.add_argument("--paced-mb", type=float, default=4.0, help="MB per direction, paced")
    args = ap.parse_args(argv)
    rows = asyncio.run(main(args.mb, args.paced_mb))
    cols = ["case", "up_MBps", "down_MBps", "up_vs_raw", "down_vs_raw", "up_vs_cap", "down_vs_cap"]
    report("tunnel_throughput", rows, cols)
    return rows


if __name__ == "__main__":
    run()
