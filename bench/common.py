"""Shared helpers for the benchmarks.

* :func:`remote_demo` runs the demo fleet (:mod:`bench.simserver`) in a separate process and
  yields a :class:`RemoteDemo` that :func:`ssmtui.aws.clients.demo_clients` accepts;
  :func:`remote_services` adds the clients and a :class:`~ssmtui.services.SessionService`.
* :func:`tcp_upload` / :func:`tcp_download` talk to the simserver's sink and source services
  (directly for the raw TCP baseline, or through a tunnel's local port).
* :class:`LoopLag` measures event-loop stalls; :class:`FrameClock` timestamps every frame a
  (headless) Textual app composes.
* :func:`report` prints a table and writes ``bench/results/<name>.json`` with how busy the
  machine was during the run (``SSMTUI_BENCH_RESULTS`` redirects the JSON elsewhere).

Benchmarks print ratios against a baseline measured in the same run, never absolute verdicts
from another day's numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssmtui.aws.clients import AwsClients
    from ssmtui.models import Instance
    from ssmtui.services import SessionService
    from ssmtui.sim.fleet import SimFleet, SimInstance

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
HEADER = struct.Struct(">Q")
BLOCK = 64 * 1024
MB = 1e6


def clean_env() -> None:
    """Keep machine-wide AWS and proxy settings away from the loopback demo fleet."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"


# --------------------------------------------------------------------------- the remote fleet


@dataclass
class RemoteDemo:
    """A demo server in another process, shaped like ``ssmtui.sim.api.SimServer`` for
    :func:`~ssmtui.aws.clients.demo_clients` (``endpoint``, ``client_kwargs``, ``state.fleet``
    with ``profiles`` / ``regions``)."""

    endpoint: str
    pid: int
    pace: bool
    instances: int
    profiles: list[str]
    regions: list[str]
    sink_port: int = 0
    source_port: int = 0
    state: Any = field(init=False)

    def __post_init__(self) -> None:
        self.state = SimpleNamespace(
            fleet=SimpleNamespace(profiles=list(self.profiles), regions=list(self.regions))
        )

    def client_kwargs(self, profile: str, region: str) -> dict[str, str]:
        """``create_client`` keyword arguments to call the server as ``profile``."""
        from ssmtui.sim.fleet import demo_credentials

        access_key, secret_key = demo_credentials(profile)
        return {
            "endpoint_url": self.endpoint,
            "region_name": region,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
        }

    def to_json(self) -> str:
        """What a child process needs to rebuild this object (:meth:`from_json`)."""
        fields = ("endpoint", "pid", "pace", "instances", "profiles", "regions")
        data = {k: getattr(self, k) for k in fields}
        data.update(sink_port=self.sink_port, source_port=self.source_port)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> RemoteDemo:
        """The inverse of :meth:`to_json` (also reads the simserver's hello line)."""
        data = json.loads(text)
        return cls(
            endpoint=data["endpoint"],
            pid=int(data["pid"]),
            pace=bool(data["pace"]),
            instances=int(data["instances"]),
            profiles=list(data["profiles"]),
            regions=list(data["regions"]),
            sink_port=int(data.get("sink_port", 0)),
            source_port=int(data.get("source_port", 0)),
        )


def child_env() -> dict[str, str]:
    """The environment for benchmark child processes (``bench`` importable, AWS settings out)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def split_cpus(fleet_pid: int) -> set[int] | None:
    """Give the simulated fleet (the simserver and the shells and services it starts later,
    which inherit its affinity) the last CPU, and this process the others: the real agent runs
    on another machine, and on a small box the fleet's own work (a ``yes`` flood, the agent's
    pacing) would otherwise take the client's CPU away mid-frame. Returns this process's
    previous CPU set (to restore), or None when there are fewer than 2 CPUs or no affinity."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    os.sched_setaffinity(fleet_pid, {cpus[-1]})
    os.sched_setaffinity(0, set(cpus[:-1]))
    return set(cpus)


@asynccontextmanager
async def remote_demo(
    *,
    pace: bool = False,
    generate: int | None = None,
    seed: int = 1,
    first_read_delay: float = 0.05,
    timeout: float = 60.0,
) -> AsyncIterator[RemoteDemo]:
    """Run :mod:`bench.simserver` in a child process; stop it (stdin EOF) on exit."""
    clean_env()
    argv = [sys.executable, "-m", "bench.simserver", "--first-read-delay", str(first_read_delay)]
    if pace:
        argv.append("--pace")
    if generate:
        argv += ["--generate", str(generate), "--seed", str(seed)]
    with tempfile.TemporaryFile() as errors:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
            cwd=ROOT,
            env=child_env(),
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout)
            except TimeoutError:
                line = b""
            if not line:
                errors.seek(0)
                tail = errors.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"bench.simserver did not start:\n{tail}")
            restore = split_cpus(proc.pid)
            try:
                yield RemoteDemo.from_json(line.decode())
            finally:
                if restore is not None:
                    os.sched_setaffinity(0, restore)
        finally:
            with contextlib.suppress(ConnectionError):
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


@asynccontextmanager
async def remote_services(demo: RemoteDemo) -> AsyncIterator[tuple[AwsClients, SessionService]]:
    """Demo clients aimed at ``demo`` and a SessionService over them (closed on exit)."""
    from ssmtui.aws.clients import demo_clients
    from ssmtui.services import SessionService

    clients = demo_clients(demo)
    try:
        yield clients, SessionService(clients)
    finally:
        await clients.aclose()


async def instance(clients: AwsClients, target: str = "web-dev-1") -> Instance:
    """Resolve a target of the demo fleet (``web-dev-1``: dev/us-east-1, no KMS)."""
    from ssmtui.aws.fleet import resolve_target
    from ssmtui.models import FleetScope, Target

    scopes = [FleetScope(p, r) for p in ("dev", "prod") for r in ("us-east-1", "eu-west-1")]
    return await resolve_target(clients, scopes, Target.parse(target))


def to_instance(sim: SimInstance) -> Instance:
    """A simulated instance as the UI's :class:`~ssmtui.models.Instance` (what listing it
    through SSM + EC2 would give, near enough for rendering benchmarks)."""
    from ssmtui.models import Instance, sorted_tags

    tags = dict(sim.tags)
    if sim.name and not sim.is_hybrid:
        tags.setdefault("Name", sim.name)
    fields: dict[str, Any] = dict(
        instance_id=sim.instance_id,
        name=sim.name,
        ping_status=sim.ping_status if sim.registered else "NotRegistered",
        platform_type=sim.platform_type,
        platform_name=sim.platform_name,
        platform_version=sim.platform_version,
        agent_version=sim.agent_version if sim.registered else "",
        private_ip=sim.private_ip or None,
        public_ip=sim.public_ip,
        computer_name=sim.computer_name,
        resource_type=sim.resource_type,
        state=sim.ec2_state if sim.is_ec2 else None,
        vpc_id=sim.vpc_id,
        subnet_id=sim.subnet_id,
        instance_profile=sim.instance_profile_arn or sim.iam_role,
        tags=sorted_tags(tags),
        profile=sim.profile,
        region=sim.region,
        account_id=sim.account_id,
        registered=sim.registered,
        instance_type=sim.instance_type if sim.is_ec2 else None,
    )
    return Instance(**fields)


def fleet_instances(fleet: SimFleet) -> list[Instance]:
    """The rows a listing of ``fleet`` shows: registered nodes and every EC2 instance."""
    return [to_instance(i) for i in fleet.instances if i.registered or i.is_ec2]


# --------------------------------------------------------------------------- TCP transfers


async def tcp_upload(port: int, size: int, host: str = "127.0.0.1") -> float:
    """Send ``size`` bytes to the sink behind ``port``; MB/s until its ``K`` came back."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        block = b"u" * BLOCK
        t0 = time.perf_counter()
        writer.write(HEADER.pack(size))
        left = size
        while left > 0:
            writer.write(block[: min(BLOCK, left)])
            left -= BLOCK
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(1), 600)
        dt = time.perf_counter() - t0
        if answer != b"K":
            raise RuntimeError(f"the sink did not confirm the upload (got {answer!r})")
        return size / dt / MB
    finally:
        writer.close()


async def tcp_download(port: int, size: int, host: str = "127.0.0.1") -> float:
    """Ask the source behind ``port`` for ``size`` bytes; MB/s until the last one arrived."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        t0 = time.perf_counter()
        writer.write(HEADER.pack(size))
        got = 0
        while got < size:
            data = await asyncio.wait_for(reader.read(BLOCK), 600)
            if not data:
                raise RuntimeError(f"the source stopped after {got} of {size} bytes")
            got += len(data)
        return size / (time.perf_counter() - t0) / MB
    finally:
        writer.close()


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: Iterable[float]) -> float:
    """The median (NaN for no values)."""
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


def verdict(value: float, target: float, *, higher_is_better: bool = True) -> str:
    """``ok`` / ``MISS`` against a target (``?`` when not measured)."""
    if value != value:  # NaN
        return "?"
    good = value >= target if higher_is_better else value <= target
    return "ok" if good else "MISS"


class LoopLag:
    """How late a short sleep wakes up, over and over: the event loop's stalls (seconds)."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.lags: list[float] = []
        #: ``perf_counter`` at each wake-up, beside :attr:`lags`.
        self.times: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.tick)
            t1 = time.perf_counter()
            self.times.append(t1)
            self.lags.append(t1 - t0 - self.tick)

    def between(self, start: float, end: float) -> list[float]:
        """The lags of the wake-ups in ``[start, end]``."""
        return [lag for t, lag in zip(self.times, self.lags, strict=True) if start <= t <= end]

    def start(self) -> LoopLag:
        """Start sampling (on the running loop)."""
        self.lags.clear()
        self.times.clear()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> list[float]:
        """Stop sampling; return the lags."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return self.lags


class FrameClock:
    """Timestamps (``perf_counter``) every frame a Textual app composes, headless included.

    Wraps ``app._display`` (called with each compositor update). With ``encode`` the update is
    also turned into terminal escape sequences, as a real terminal driver would (headless
    Textual skips that step), so frame costs are not understated.
    """

    def __init__(self, app: Any, *, encode: bool = True) -> None:
        from textual._compositor import CompositorUpdate

        self.app = app
        self.encode = encode
        self.times: list[float] = []
        self.encoded_chars = 0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is None or app._batch_count:
                return
            if self.encode and isinstance(renderable, CompositorUpdate):
                self.encoded_chars += len(renderable.render_segments(app.console))
            now = time.perf_counter()
            self.times.append(now)
            self._check(now)

        app._display = display

    def _check(self, now: float) -> None:
        for item in list(self._waiters):
            predicate, future = item
            if future.done():
                self._waiters.remove(item)
                continue
            try:
                ok = predicate()
            except Exception:  # the widget the predicate reads may not exist yet
                ok = False
            if ok:
                future.set_result(now)
                self._waiters.remove(item)

    def watch(self, predicate: Callable[[], bool]) -> asyncio.Future[float]:
        """A future set to the time of the first frame composed from now on at which
        ``predicate()`` holds (register it before the event that should cause that frame)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> float:
        """The time of the first frame composed from now on at which ``predicate()`` holds."""
        return await settle(self.watch(predicate), timeout)

    def gaps(self, start: float, end: float) -> list[float]:
        """Seconds between consecutive frames in ``[start, end]`` (from ``start``)."""
        stamps = [start, *(t for t in self.times if start < t <= end)]
        return [b - a for a, b in itertools.pairwise(stamps)]


async def settle(future: asyncio.Future[float], timeout: float = 60.0) -> float:
    """Await a :meth:`FrameClock.watch` future (cancelled on timeout)."""
    try:
        return await asyncio.wait_for(future, timeout)
    finally:
        if not future.done():
            future.cancel()


def rss_bytes(pid: int | str = "self") -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of a process in bytes, from ``/proc/<pid>/status`` (Linux)."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


# --------------------------------------------------------------------------- machine load


def _cpu_jiffies() -> tuple[float, float]:
    """(busy, total) seconds of every CPU since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat") as fh:
            parts = [float(x) for x in fh.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)
    total = sum(parts[:8])
    return (total - idle) / hz, total / hz


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


_START = (time.monotonic(), *_cpu_jiffies(), _own_cpu())


def machine_load() -> dict[str, float]:
    """How busy the machine was since this module was imported, in cores: all CPUs, this
    benchmark (itself and its reaped children), and everything else (other engineers' tests)."""
    t0, busy0, _total0, own0 = _START
    busy1, _total1 = _cpu_jiffies()
    wall = max(1e-9, time.monotonic() - t0)
    busy = (busy1 - busy0) / wall
    ours = (_own_cpu() - own0) / wall
    return {
        "wall_s": round(wall, 1),
        "busy_cores": round(busy, 2),
        "bench_cores": round(ours, 2),
        "other_cores": round(max(0.0, busy - ours), 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


# --------------------------------------------------------------------------- output


def report(
    name: str, rows: list[dict[str, Any]], columns: list[str], notes: Sequence[str] = ()
) -> Path:
    """Print a table (and notes, and the machine's load) and write ``<results>/<name>.json``."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in rows:
        cells = (_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True))
        print("  ".join(cells).rstrip())
    load = machine_load()
    for note in notes:
        print(f"note: {note}")
    print(
        f"machine: {os.cpu_count()} cpus, {load['busy_cores']} busy over {load['wall_s']} s "
        f"(this benchmark {load['bench_cores']}, others {load['other_cores']}; "
        f"loadavg {load['loadavg_1m']})"
    )
    meta = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "argv": sys.argv[1:],
        "load": load,
        "notes": list(notes),
    }
    out_dir = Path(os.environ.get("SSMTUI_BENCH_RESULTS") or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return "" if v is None else str(v)


def proc_cpu(pid: int | str = "self") -> float:
    """CPU seconds (user + system) a process has used so far, from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Wall time and the CPU share (in cores) of this process and of another one (the agent's)
    over a block: ``with CpuMeter(pid) as m: ...`` then ``m.ours``, ``m.theirs``, ``m.wall``."""

    def __init__(self, other_pid: int | None = None) -> None:
        self.other_pid = other_pid
        self.wall = self.ours = self.theirs = float("nan")

    def __enter__(self) -> CpuMeter:
        self._t0 = time.perf_counter()
        self._ours0 = time.process_time()
        self._theirs0 = proc_cpu(self.other_pid) if self.other_pid else float("nan")
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = max(1e-9, time.perf_counter() - self._t0)
        self.ours = (time.process_time() - self._ours0) / self.wall
        if self.other_pid:
            self.theirs = (proc_cpu(self.other_pid) - self._theirs0) / self.wall
