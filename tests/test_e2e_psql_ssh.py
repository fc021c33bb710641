"""Real clients through ssmtui's tunnels: 20 concurrent ``psql`` sessions to a PostgreSQL
server reached with ``ssmtui --demo forward … --host db.demo.internal`` (remote-host port
forwarding), and OpenSSH through ``ssh -o ProxyCommand='ssmtui --demo proxy %h PORT'``.

The servers run on loopback, started by the tests; the demo agent of web-dev-1 dials them. The
tests skip (saying why) only when the PostgreSQL or OpenSSH programs are not installed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import PY, SSMTUI, WEB_DEV, clean_env, free_port, wait_for_port

pytestmark = pytest.mark.timeout(120)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROWS = 100
SSH = [
    "ssh",
    "-F",
    "/dev/null",
    *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
    *("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"),
]
CLIENTS = 20


def _tool(name: str, *dirs: Path) -> str | None:
    for d in dirs:
        if (d / name).exists():
            return str(d / name)
    return shutil.which(name)


# --------------------------------------------------------------------------- PostgreSQL


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{shlex.join(argv)}: {res.stdout}{res.stderr}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    """A throwaway PostgreSQL on 127.0.0.1 with database ``test`` and table ``items``."""
    initdb, pg_ctl = _tool("initdb", PG_BIN), _tool("pg_ctl", PG_BIN)
    psql = shutil.which("psql")
    if not (initdb and pg_ctl and psql):
        pytest.skip("PostgreSQL (initdb, pg_ctl, psql) is not installed")
    if os.geteuid() == 0:
        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
    # pytest's tmp dirs are private to root; the server needs a directory it can use
    root = Path(tempfile.mkdtemp(prefix="ssmtui-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        os.chown(root, pg_user.pw_uid, pg_user.pw_gid)
    port = free_port()
    try:
        _run(_as_postgres([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]))
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
            "-c fsync=off -c max_connections=60"
        )
        ctl = [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"]
        _run(_as_postgres(ctl))
        sql = [
            psql,
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
        ]
        _run([*sql, "-d", "postgres", "-c", "create database test"])
        table = (
            "create table items (id int primary key, name text not null);"
            f"insert into items select g, 'item-' || g from generate_series(1, {ROWS}) g;"
        )
        _run([*sql, "-d", "test", "-c", table])
        yield port
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def forwarding(*args: str, tunnels: int = 1) -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """``ssmtui --demo forward ARGS``: the process and the local ports it printed."""
    proc = subprocess.Popen(
        [*SSMTUI, "--demo", "forward", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        ports = []
        for _ in range(tunnels):
            line = proc.stdout.readline().decode()
            match = re.match(r"Forwarding 127\.0\.0\.1:(\d+) ", line)
            if match is None:
                _, err = proc.communicate(timeout=30)
                raise AssertionError(f"no Forwarding line: {line!r} {err!r}")
            ports.append(int(match.group(1)))
        yield proc, ports
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_twenty_psql_clients_through_a_remote_host_tunnel(postgres: int) -> None:
    psql = shutil.which("psql")
    assert psql
    with forwarding("web-dev-1", f"0:{postgres}", "--host", "db.demo.internal") as (proc, ports):
        (local,) = ports
        env = clean_env(PGCONNECT_TIMEOUT="10", PGSSLMODE="disable")
        client = [psql, "-X", "-h", "127.0.0.1", "-p", str(local), "-U", "postgres", "-d", "test"]

        def query(i: int) -> tuple[int, str, str]:
            lo, hi = i * 5 + 1, i * 5 + 5
            sql = f"select string_agg(name, ',' order by id) from items where id >= {lo}"
            sql += f" and id <= {hi}"
            res = subprocess.run(
                [*client, "-Atc", sql],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            return res.returncode, res.stdout.strip(), res.stderr

        with concurrent.futures.ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            results = list(pool.map(query, range(CLIENTS)))
        for i, (code, out, err) in enumerate(results):
            want = ",".join(f"item-{n}" for n in range(i * 5 + 1, i * 5 + 6))
            assert (code, out) == (0, want), err
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err


# --------------------------------------------------------------------------- OpenSSH


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An OpenSSH server on 127.0.0.1 that lets this user in with a key: (port, key)."""
    sshd_bin = _tool("sshd", Path("/usr/sbin"))
    keygen = shutil.which("ssh-keygen")
    if not (sshd_bin and shutil.which("ssh") and keygen):
        pytest.skip("OpenSSH (sshd, ssh, ssh-keygen) is not installed")
    tmp = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)],
            check=True,
            capture_output=True,
        )
    shutil.copy(tmp / "client_key.pub", tmp / "authorized_keys")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"HostKey {tmp / 'host_key'}",
                f"PidFile {tmp / 'sshd.pid'}",
                f"AuthorizedKeysFile {tmp / 'authorized_keys'}",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin yes",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [sshd_bin, "-D", "-e", "-f", str(config), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
        yield port, tmp / "client_key"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ssh(port: int, key: Path, host: str, command: str, stdin: bytes = b"") -> bytes:
    proxy = f"{shlex.quote(PY)} -m ssmtui --demo proxy %h {port}"
    user = pwd.getpwuid(os.geteuid()).pw_name
    res = subprocess.run(
        [*SSH, "-i", str(key), "-o", f"ProxyCommand={proxy}", f"{user}@{host}", command],
        input=stdin,
        capture_output=True,
        timeout=90,
        env=clean_env(),
    )
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res.stdout


def test_ssh_through_proxy_command(sshd: tuple[int, Path]) -> None:
    port, key = sshd
    assert _ssh(port, key, "web-dev-1", "echo via-ssm") == b"via-ssm\n"


def test_ssh_carries_a_megabyte_both_ways(sshd: tuple[int, Path]) -> None:
    port, key = sshd
    blob = os.urandom(1 << 20)
    out = _ssh(port, key, WEB_DEV, "sha256sum; head -c 300000 /dev/zero", stdin=blob)
    digest, _, zeros = out.partition(b"  -\n")
    assert digest.decode() == hashlib.sha256(blob).hexdigest()
    assert zeros == bytes(300000)
