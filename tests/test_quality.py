"""Lint, format, types and the protocol core's branch coverage, as part of the one test command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROTOCOL_TESTS = [
    "tests/test_frames.py",
    "tests/test_payloads.py",
    "tests/test_channel.py",
    "tests/test_traces.py",
    "tests/test_smux.py",
]


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint() -> None:
    res = _run(_tool("ruff"), "check", "ssmtui", "tests", "bench")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_format() -> None:
    res = _run(_tool("ruff"), "format", "--check", "ssmtui", "tests", "bench")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_strict_protocol() -> None:
    res = _run(_tool("mypy"), "--strict", "ssmtui/protocol")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(
    os.environ.get("SSMTUI_INNER_COVERAGE") == "1", reason="already inside the coverage run"
)
def test_protocol_branch_coverage_at_least_95() -> None:
    env = dict(os.environ, SSMTUI_INNER_COVERAGE="1")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--cov=ssmtui.protocol",
            "--cov-branch",
            "--cov-report=term",
            "--cov-fail-under=95",
            *PROTOCOL_TESTS,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    tail = "\n".join(res.stdout.splitlines()[-15:])
    print(tail)
    assert res.returncode == 0, tail + res.stderr[-2000:]
