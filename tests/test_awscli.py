"""AWS's own CLI (`aws ssm start-session`) runs ssmtui's session-manager-plugin drop-in against
the demo fleet: a shell and a port forward, with no AWS binary anywhere."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssmtui.sim.fleet import demo_credentials
from tests.cli_helpers import ROOT, SSMTUI, WEB_DEV, clean_env, pty_session

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
AWSCLI_VENV = ROOT / ".venv-awscli"  # git-ignored; made once, reused


@pytest.fixture(scope="module")
def aws_bin() -> Path:
    aws = AWSCLI_VENV / "bin" / "aws"
    if not aws.exists():
        try:
            subprocess.run(
                [sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True, timeout=120
            )
            subprocess.run(
                [str(AWSCLI_VENV / "bin" / "pip"), "install", "-q", "awscli"],
                check=True,
                timeout=240,
                capture_output=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            shutil.rmtree(AWSCLI_VENV, ignore_errors=True)
            pytest.skip(f"the AWS CLI (PyPI package awscli) could not be installed: {exc}")
    return aws


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    proc = subprocess.Popen(
        [*SSMTUI, "sim", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.match(r"endpoint: (http://\S+)", line)
            if m:
                yield m.group(1)
                break
        else:
            raise AssertionError("ssmtui sim printed no endpoint")
    finally:
        proc.terminate()
        proc.wait(20)


def _env(endpoint: str) -> dict[str, str]:
    key, secret = demo_credentials("dev")
    bin_dir = Path(sys.executable).parent  # holds the session-manager-plugin console script
    assert (bin_dir / "session-manager-plugin").exists(), "reinstall: pip install -e '.[test]'"
    return clean_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
    )


def test_aws_cli_shell_through_the_drop_in(aws_bin: Path, endpoint: str) -> None:
    argv = [str(aws_bin), "ssm", "start-session", "--target", WEB_DEV]
    with pty_session(argv, _env(endpoint)) as term:
        term.expect(b"Starting session with SessionId:")
        term.expect(b"$ ")
        term.send(b"echo via-aws-$((40+2))\r")
        term.expect(b"via-aws-42")
        term.send(b"exit\r")
        term.expect(b"Exiting session")
        assert term.wait() == 0
        assert b"outdated SessionManagerPlugin" not in term.output


def test_aws_cli_port_forward_through_the_drop_in(aws_bin: Path, endpoint: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        remote = srv.getsockname()[1]
        local = _free_port()
        argv = [
            str(aws_bin),
            "ssm",
            "start-session",
            "--target",
            WEB_DEV,
            "--document-name",
            "AWS-StartPortForwardingSession",
            "--parameters",
            f"portNumber={remote},localPortNumber={local}",
        ]
        with pty_session(argv, _env(endpoint)) as term:
            term.expect(f"Port {local} opened".encode())
            with socket.create_connection(("127.0.0.1", local), timeout=20) as client:
                conn, _ = srv.accept()
                with conn:
                    client.sendall(b"ping through aws cli")
                    assert conn.recv(100) == b"ping through aws cli"
                    conn.sendall(b"pong")
                    assert client.recv(100) == b"pong"
            term.send(b"\x03")  # Ctrl-C: the plugin sends TerminateSession and exits
            assert term.wait() in (0, 130)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
