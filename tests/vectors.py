"""Loading the recorded Session Manager traces and frames in ../shared/ssm/vectors/."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def vectors_dir() -> Path:
    env = os.environ.get("SSMTUI_VECTORS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    for base in (here.parent / "shared", here / "shared"):
        if (base / "ssm" / "vectors").is_dir():
            return base / "ssm" / "vectors"
    raise FileNotFoundError("shared/ssm/vectors not found beside the repository")


VECTORS = vectors_dir()


@dataclass
class Rec:
    """One websocket message of a trace, normalised over both trace formats."""

    t: float  # seconds
    dir: str  # agent->client, client->agent, mgs->client, ...
    ws: str  # bin or text
    raw: bytes
    seq_status: str | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trace:
    name: str
    meta: dict[str, Any]
    records: list[Rec]
    events: list[dict[str, Any]]
    keys: dict[str, Any] | None = None

    def frames(self, direction: str) -> list[Rec]:
        return [r for r in self.records if r.dir == direction and r.ws == "bin"]


def load_trace(path: Path) -> Trace:
    meta: dict[str, Any] = {}
    records: list[Rec] = []
    events: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        ev = json.loads(line)
        kind = ev.get("ev")
        if kind in ("meta", "setup"):
            meta.update(ev)
        if kind != "frame":
            events.append(ev)
            continue
        if "t_ms" in ev:
            t = ev["t_ms"] / 1000.0
        else:
            t = float(ev["t"])
        ws = "text" if ev.get("ws") == "text" else "bin"
        raw = ev["text"].encode() if ws == "text" else bytes.fromhex(ev["hex"])
        records.append(Rec(t, ev["dir"], ws, raw, ev.get("seq_status"), ev.get("note", ""), ev))
    keys_path = path.with_suffix(".keys.json")
    keys = json.loads(keys_path.read_text()) if keys_path.exists() else None
    return Trace(path.stem, meta, records, events, keys)


def agent_traces() -> list[Path]:
    return sorted(VECTORS.glob("agent-*.jsonl")) + sorted((VECTORS / "kms").glob("agent-*.jsonl"))


def all_traces() -> list[Path]:
    return sorted(VECTORS.glob("*.jsonl")) + sorted((VECTORS / "kms").glob("*.jsonl"))


def golden_frames() -> list[dict[str, Any]]:
    return list(json.loads((VECTORS / "frames.json").read_text())["frames"])
