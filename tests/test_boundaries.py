"""The layering is enforced here, not by hope (see ARCHITECTURE in the developers' docs).

* ``ssmtui.protocol`` is sans-I/O: importing it loads no asyncio, sockets, websockets, AWS SDK
  or textual, and its source calls no clock and makes no random ids.
* only ``ssmtui/ui`` imports textual; only ``ssmtui/aws`` imports the AWS SDKs (the demo fleet
  in ``ssmtui/sim`` plays AWS itself and may use botocore's signer to check signatures).
* lower layers never import higher ones.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "ssmtui"
HEAVY = [
    "asyncio",
    "websockets",
    "botocore",
    "aiobotocore",
    "boto3",
    "textual",
    "aiohttp",
    "socket",
]

# package -> ssmtui packages it may import (besides itself and the top-level modules)
ALLOWED_INTERNAL = {
    "protocol": set(),
    "store": {"protocol"},
    "aws": {"protocol"},
    "transport": {"protocol", "aws"},
    "services": {"protocol", "aws", "transport", "store"},
    "doctor": {"aws"},
    "sim": {"protocol"},
}
SDK = {"boto3", "botocore", "aiobotocore"}
SDK_ALLOWED = {"aws", "sim"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                rel = path.parent.relative_to(ROOT).parts[
                    : len(path.parent.relative_to(ROOT).parts) - node.level + 1
                ]
                names.add(".".join(rel) + ("." + node.module if node.module else ""))
            elif node.module:
                names.add(node.module)
    return names


def _package_of(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else ""


def test_protocol_import_loads_nothing_heavy() -> None:
    code = (
        "import sys, json\n"
        "import ssmtui.protocol.channel, ssmtui.protocol.smux, ssmtui.protocol.versions\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_layering(path: Path) -> None:
    pkg = _package_of(path)
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "textual":
            assert pkg == "ui", f"{path}: textual outside ssmtui/ui"
        if top in SDK:
            assert pkg in SDK_ALLOWED, f"{path}: {name} outside ssmtui/aws"
        if pkg == "protocol":
            assert top not in HEAVY, f"{path}: protocol imports {name}"
        if top == "ssmtui" and pkg in ALLOWED_INTERNAL:
            parts = name.split(".")
            target = parts[1] if len(parts) > 1 else ""
            sub = PKG / target
            if target != pkg and sub.is_dir():
                assert target in ALLOWED_INTERNAL[pkg], f"{path}: {pkg} imports {name}"


def test_protocol_source_has_no_clock_or_random_ids() -> None:
    for path in (PKG / "protocol").glob("*.py"):
        text = path.read_text()
        for banned in ("time.time(", "time.monotonic(", "uuid.uuid4(", "os.urandom(", "random."):
            assert banned not in text, f"{path}: {banned}"
