"""Every benchmark runs in a tiny configuration, so none of them rots.

No timing assertions: speed and memory are judged by the benchmarks' own ratios against
baselines measured in the same run (see ``bench/README.md``), never by tests. Each benchmark
runs as its users run it (``python -m bench.<name>``), with its JSON redirected to a temporary
directory so real results in ``bench/results/`` are left alone.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import common
from bench.common import RemoteDemo, percentile, to_instance, verdict

ROOT = Path(__file__).resolve().parent.parent

#: name -> tiny arguments.
TINY = {
    "tunnel_throughput": ["--mb", "0.2", "--paced-mb", "0.05", "--rounds", "1"],
    "echo_latency": ["--samples", "20", "--warmup", "5"],
    "session_pool": ["--sessions", "2", "--mb", "0.05", "--rounds", "1"],
    "fleet_scale": ["--instances", "500", "--keys", "4"],
    "startup": ["--runs", "1", "--app-runs", "1"],
    "memory": ["--shells", "2", "--tunnels", "1"],
    "terminal_render": ["--mb", "0.2"],
}


def _run_bench(name: str, args: list[str], results: Path) -> dict[str, Any]:
    env = dict(os.environ, SSMTUI_BENCH_RESULTS=str(results))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    res = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert res.returncode == 0, f"{name} failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    assert "machine:" in res.stdout or "skipped" in res.stdout, res.stdout
    data: dict[str, Any] = json.loads((results / f"{name}.json").read_text())
    assert data["rows"], data
    assert "load" in data["meta"] or data["rows"][0]["case"].startswith("skipped")
    return data


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_benchmark_runs_tiny(name: str, tmp_path: Path) -> None:
    data = _run_bench(name, TINY[name], tmp_path)
    rows = data["rows"]
    assert isinstance(rows, list)
    if name == "tunnel_throughput":
        assert {r["dir"] for r in rows} == {"up", "down"}
        assert all(r["MBps"] > 0 for r in rows)
        assert sum("vs_cap" in r for r in rows) == 2
    elif name == "echo_latency":
        assert [r["n"] for r in rows] == [20] * len(rows)
        assert "added_p99_ms" in rows[1]
    elif name == "fleet_scale":
        assert any(r.get("rows") == 500 for r in rows)
    elif name == "memory":
        assert all(r["rss_MB"] > 0 for r in rows)


def test_terminal_render_skips_without_the_widget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import terminal_render

    monkeypatch.setenv("SSMTUI_BENCH_RESULTS", str(tmp_path))
    monkeypatch.setattr(terminal_render, "WIDGET", ROOT / "ssmtui/ui/widgets/no_such_widget.py")
    rows = terminal_render.run([])
    assert rows[0]["case"].startswith("skipped")
    assert "does not exist" in capsys.readouterr().out
    assert json.loads((tmp_path / "terminal_render.json").read_text())["rows"] == rows


def test_helpers() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile(list(range(101)), 99) == 99
    assert math.isnan(percentile([], 50))
    assert verdict(1.0, 0.95) == "ok"
    assert verdict(2.0, 1.0, higher_is_better=False) == "MISS"
    assert verdict(float("nan"), 1.0) == "?"
    demo = RemoteDemo("http://127.0.0.1:1", 1, True, 3, ["dev"], ["us-east-1"], 5, 6)
    again = RemoteDemo.from_json(demo.to_json())
    assert again == demo
    assert again.state.fleet.profiles == ["dev"]
    assert again.client_kwargs("dev", "us-east-1")["endpoint_url"] == "http://127.0.0.1:1"
    load = common.machine_load()
    assert load["busy_cores"] >= 0 and load["other_cores"] >= 0


def test_to_instance_matches_the_listing_shape() -> None:
    from ssmtui.sim.fleet import generate_fleet

    fleet = generate_fleet(50, seed=3)
    rows = common.fleet_instances(fleet)
    assert len(rows) == sum(1 for i in fleet.instances if i.registered or i.is_ec2)
    one = next(i for i in fleet.instances if i.is_ec2 and i.registered)
    inst = to_instance(one)
    assert inst.instance_id == one.instance_id
    assert inst.tag("Name") == one.name
    assert inst.state == "running" and inst.registered
