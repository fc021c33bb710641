"""The doctor against the REAL demo fleet: every broken instance gets its diagnosis and fix, a
healthy one a clean bill; the CLI verb and the Doctor pane show the same.

No mocks: ``run_doctor`` reads EC2, IAM, SSM and STS through aiobotocore from the loopback
simulation, whose instances are broken on purpose (see ssmtui/sim/fleets/default.toml).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from ssmtui.aws.clients import AwsClients, demo_clients
from ssmtui.doctor import DoctorReport, run_doctor
from ssmtui.doctor.model import Diagnosis
from ssmtui.errors import TargetError
from ssmtui.models import FleetScope
from ssmtui.sim.api import run_server
from ssmtui.sim.fleet import default_fleet
from ssmtui.ui.app import create_app
from ssmtui.ui.screens.doctor import DoctorScreen
from ssmtui.ui.source import AwsFleetSource
from tests.cli_helpers import run_cli
from tests.sim_harness import aws_env  # noqa: F401  (autouse: no machine-wide AWS settings)

SCOPES = [
    FleetScope("dev", "us-east-1"),
    FleetScope("dev", "eu-west-1"),
    FleetScope("prod", "us-east-1"),
    FleetScope("prod", "eu-west-1"),
]

#: instance Name -> (check, status, words in the title, words in the fix)
BROKEN: dict[str, tuple[str, str, str, str]] = {
    "orphan-no-profile": ("instance-profile", "fail", "no IAM instance profile", "associate-iam"),
    "orphan-no-policy": (
        "role-policy",
        "fail",
        "lacks the agent's SSM permissions",
        "AmazonSSMManagedInstanceCore",
    ),
    "orphan-public-no-ip": ("network", "fail", "no public IP", "associate-address"),
    "isolated-no-path": ("network", "fail", "no route to the internet", "create-route"),
    "isolated-missing-ssmmessages": (
        "vpc-endpoints",
        "fail",
        "no VPC endpoint for ssmmessages",
        ".ssmmessages",
    ),
    "isolated-no-private-dns": (
        "vpc-endpoints",
        "fail",
        "private DNS off on the endpoints for ssm, ssmmessages, ec2messages",
        "--private-dns",
    ),
    "isolated-sg-blocks-443": (
        "vpc-endpoints",
        "fail",
        "do not accept HTTPS",
        "authorize-security-group-ingress",
    ),
    "agent-stopped": ("ssm-agent", "fail", "everything checkable", "amazon-ssm-agent"),
    "reporting-old": ("ec2-state", "fail", "stopped", "start-instances"),
}


@pytest.fixture
async def clients() -> AsyncIterator[AwsClients]:
    async with run_server(default_fleet()) as server, demo_clients(server) as aws:
        yield aws


def by_name(report: DoctorReport) -> dict[str, Diagnosis]:
    return {d.instance.display_name: d for d in report.diagnoses}


async def test_every_broken_instance_gets_its_diagnosis_and_fix(clients: AwsClients) -> None:
    report = await run_doctor(clients, SCOPES)
    found = by_name(report)
    for name, (check, status, title, fix) in BROKEN.items():
        assert name in found, f"{name} not examined: {sorted(found)}"
        d = found[name]
        matching = [f for f in d.findings if f.check == check and f.status == status]
        assert matching, (
            f"{name}: no {status} {check}: {[(f.check, f.status, f.title) for f in d.findings]}"
        )
        assert any(title in f.title for f in matching), (name, [f.title for f in matching])
        assert any(fix in f.fix for f in matching), (name, [f.fix for f in matching])
        assert not d.healthy
    # one cause each: the other checks of a broken instance pass
    assert found["isolated-missing-ssmmessages"].finding("instance-profile").status == "ok"  # type: ignore[union-attr]
    endpoints = [
        f for f in found["isolated-missing-ssmmessages"].findings if f.check == "vpc-endpoints"
    ]
    assert [f.title for f in endpoints if f.is_problem] == ["no VPC endpoint for ssmmessages"]
    assert found["orphan-no-policy"].finding("network").status == "ok"  # type: ignore[union-attr]
    # healthy online instances are not listed unasked
    assert "web-dev-1" not in found
    assert report.failed


async def test_a_healthy_instance_gets_a_clean_bill(clients: AwsClients) -> None:
    report = await run_doctor(clients, SCOPES, "web-dev-1")
    (d,) = report.diagnoses
    assert d.healthy, [(f.check, f.status, f.title) for f in d.problems]
    checks = {f.check: f.status for f in d.findings}
    for check in ("ec2-state", "ssm-agent", "instance-profile", "role-policy", "network"):
        assert checks[check] == "ok", (check, checks)
    assert checks["permission"] == "ok" and checks["agent-version"] == "ok"
    assert not report.failed


async def test_permission_denied_by_tag_and_expiring_grant(clients: AwsClients) -> None:
    (d,) = (await run_doctor(clients, SCOPES, "payroll-dev")).diagnoses
    f = d.finding("permission")
    assert f is not None and f.status == "fail" and "explicitly denied" in f.title
    assert "Team" in f.detail
    (d,) = (await run_doctor(clients, SCOPES, "web-prod-1")).diagnoses
    f = d.finding("permission")
    assert f is not None and f.status == "warn" and "until" in f.title


async def test_agent_features_and_legacy_role(clients: AwsClients) -> None:
    (d,) = (await run_doctor(clients, SCOPES, "api-dev-1")).diagnoses
    f = d.finding("agent-version")
    assert f is not None and f.status == "warn" and "smux" in f.detail
    (d,) = (await run_doctor(clients, SCOPES, "legacy-batch-dev")).diagnoses
    f = d.finding("role-policy")
    assert f is not None and f.status == "info" and "AmazonEC2RoleforSSM" in f.title


async def test_session_preferences_per_scope(clients: AwsClients) -> None:
    report = await run_doctor(clients, SCOPES)
    prefs = {str(s.scope): {f.check: f for f in s.findings} for s in report.scopes}
    assert prefs["dev/us-east-1"]["logging"].status == "ok"
    assert prefs["dev/eu-west-1"]["kms"].status == "ok"
    assert prefs["prod/us-east-1"]["logging"].status == "warn"
    assert "ops" in prefs["prod/us-east-1"]["run-as"].title


async def test_unknown_target_is_one_error(clients: AwsClients) -> None:
    with pytest.raises(TargetError):
        await run_doctor(clients, SCOPES, "no-such-box")


def test_cli_doctor_fleet_target_and_json() -> None:
    res = run_cli("--demo", "doctor")
    assert res.returncode == 1, res.stderr
    for name in BROKEN:
        assert name in res.stdout
    assert "Traceback" not in res.stderr
    res = run_cli("--demo", "doctor", "web-dev-1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "web-dev-1: clean bill of health" in res.stdout
    res = run_cli("--demo", "doctor", "orphan-no-profile", "--json")
    assert res.returncode == 1
    data = json.loads(res.stdout)
    (inst,) = data["scopes"][0]["instances"]
    assert inst["name"] == "orphan-no-profile" and not inst["healthy"]
    res = run_cli("--demo", "doctor", "no-such-box")
    assert res.returncode != 0 and res.stderr.startswith("ssmtui: ")
    assert "Traceback" not in res.stderr


async def test_doctor_pane_shows_findings_and_fixes(clients: AwsClients) -> None:
    app = create_app(AwsFleetSource(clients, SCOPES), refresh_interval=0)
    async with app.run_test(size=(180, 50)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.fleet.set_filter("web-dev-1")
        await pilot.pause()
        await pilot.press("D")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DoctorScreen)
        assert screen.chosen is not None and screen.chosen.display_name == "web-dev-1"
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.loads == 1
        names = {d.instance.display_name for d in screen.instance_rows.values()}
        assert "web-dev-1" in names and set(BROKEN) <= names
        first = screen.selected_key()
        assert first is not None and "web-dev-1" in screen.rows[first][0]
        assert "you may start sessions" in screen.details_text
        # walk to orphan-no-profile and read its fix
        keys = list(screen.rows)
        target = next(
            k
            for k, d in screen.instance_rows.items()
            if d.instance.display_name == "orphan-no-profile"
        )
        screen.table.move_cursor(row=keys.index(target))
        await pilot.pause()
        assert "no IAM instance profile" in screen.details_text
        assert "associate-iam-instance-profile" in screen.details_text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DoctorScreen)


def test_what_the_caller_may_not_read_is_reported_as_unknown() -> None:
    """AccessDenied on IAM reads and on the policy simulation: the doctor still runs the other
    checks and says what it could not check, and why (no traceback, no false clean bill)."""
    res = run_cli(
        "--demo",
        "--demo-fault",
        "error:GetInstanceProfile:AccessDenied:0",
        "--demo-fault",
        "error:SimulatePrincipalPolicy:AccessDenied:0",
        "doctor",
        "orphan-no-policy",
        "--all",
    )
    assert "Traceback" not in res.stderr, res.stderr
    out = res.stdout
    assert "? could not read the instance profile" in out, out
    assert "? could not check whether you may start sessions" in out, out
    assert "iam:SimulatePrincipalPolicy" in out
    assert "✓ EC2 instance is running" in out  # the other checks ran
    assert "clean bill" not in out and res.returncode == 1
