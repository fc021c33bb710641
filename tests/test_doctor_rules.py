"""The doctor's rules, pure: hand-made facts (shaped like the AWS responses) in, findings out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ssmtui.aws.doctor import (
    CallerFacts,
    InstanceFacts,
    NetworkFacts,
    PolicyDoc,
    PreferencesFacts,
    RoleFacts,
    Unknown,
    pick_route_table,
    policy_document,
)
from ssmtui.doctor.model import Diagnosis
from ssmtui.doctor.policy import action_matches, allowed_actions_missing, guards_for
from ssmtui.doctor.render import render_report
from ssmtui.doctor.rules import diagnose, preference_findings
from ssmtui.models import Instance

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CORE = PolicyDoc(
    "AmazonSSMManagedInstanceCore", "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", None
)
REGION = "us-east-1"


def inst(**kw: Any) -> Instance:
    base: dict[str, Any] = dict(
        instance_id="i-0123456789abcdef0",
        name="box",
        state="running",
        vpc_id="vpc-1",
        subnet_id="subnet-1",
        private_ip="10.0.1.10",
        profile="dev",
        region=REGION,
        account_id="111111111111",
        instance_profile="arn:aws:iam::111111111111:instance-profile/ok",
    )
    base.update(kw)
    return Instance(**base)


def role(*policies: PolicyDoc, **kw: Any) -> RoleFacts:
    base: dict[str, Any] = dict(
        profile_arn="arn:aws:iam::111111111111:instance-profile/ok",
        profile_name="ok",
        profile_found=True,
        role_name="OkRole",
        policies=list(policies) or [CORE],
    )
    base.update(kw)
    return RoleFacts(**base)


def table(default: dict[str, str] | None, *, main: bool = False) -> dict[str, Any]:
    routes: list[dict[str, str]] = [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"}]
    if default:
        routes.append({"DestinationCidrBlock": "0.0.0.0/0", "State": "active", **default})
    assoc = {"Main": True} if main else {"SubnetId": "subnet-1", "Main": False}
    return {"RouteTableId": "rtb-1", "Routes": routes, "Associations": [assoc]}


def endpoint(service: str, *, dns: bool = True, group: str = "sg-e") -> dict[str, Any]:
    return {
        "VpcEndpointId": f"vpce-{service}",
        "VpcEndpointType": "Interface",
        "ServiceName": f"com.amazonaws.{REGION}.{service}",
        "State": "available",
        "PrivateDnsEnabled": dns,
        "Groups": [{"GroupId": group}],
    }


def group(port: int = 443, cidr: str = "10.0.0.0/16") -> dict[str, Any]:
    return {
        "GroupId": "sg-e",
        "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}
        ],
    }


def net(default: dict[str, str] | None = None, **kw: Any) -> NetworkFacts:
    base: dict[str, Any] = dict(
        vpc_id="vpc-1",
        subnet_id="subnet-1",
        private_ip="10.0.1.10",
        public_ip=None,
        subnet={"SubnetId": "subnet-1", "CidrBlock": "10.0.1.0/24"},
        route_table=table(default if default is not None else {"NatGatewayId": "nat-1"}),
    )
    base.update(kw)
    return NetworkFacts(**base)


def run(instance: Instance, **facts: Any) -> Diagnosis:
    facts.setdefault("role", role())
    facts.setdefault("network", net())
    return diagnose(InstanceFacts(instance, **facts), NOW)


def statuses(d: Diagnosis) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in d.findings:
        out[f.check] = max(
            out.get(f.check, "ok"), f.status, key=["ok", "info", "unknown", "warn", "fail"].index
        )
    return out


def test_healthy_registered_instance_gets_a_clean_bill() -> None:
    box = inst(registered=True, ping_status="Online", agent_version="3.3.987.0", last_ping=NOW)
    d = run(box)
    assert d.healthy, [f.title for f in d.problems]
    assert statuses(d)["ssm-agent"] == "ok"
    assert statuses(d)["role-policy"] == "ok"
    assert statuses(d)["network"] == "ok"
    assert statuses(d)["agent-version"] == "ok"


def test_stopped_instance() -> None:
    d = run(inst(state="stopped"))
    f = d.finding("ec2-state")
    assert f is not None and f.status == "fail" and "start-instances" in f.fix


def test_no_instance_profile() -> None:
    d = run(inst(instance_profile=None), role=RoleFacts(None, profile_found=False))
    f = d.finding("instance-profile")
    assert f is not None and f.status == "fail"
    assert "associate-iam-instance-profile" in f.fix and "AmazonSSMManagedInstanceCore" in f.fix
    reg = d.finding("ssm-agent")
    assert reg is not None and reg.status == "fail" and "other failed checks" in reg.detail


def test_deleted_profile_and_profile_without_role() -> None:
    d = run(inst(), role=role(profile_found=False))
    assert "does not exist" in (d.finding("instance-profile") or d.findings[0]).title
    d = run(inst(), role=role(role_name=None))
    assert "has no role" in (d.finding("instance-profile") or d.findings[0]).title


def test_role_without_ssm_permissions() -> None:
    s3 = PolicyDoc(
        "AmazonS3ReadOnlyAccess",
        "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        {"Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}]},
    )
    d = run(inst(), role=role(s3))
    f = d.finding("role-policy")
    assert f is not None and f.status == "fail"
    assert "ssmmessages:OpenDataChannel" in f.detail
    assert "attach-role-policy --role-name OkRole" in f.fix


def test_custom_policy_granting_the_agent_actions_passes() -> None:
    custom = PolicyDoc(
        "Custom",
        None,
        {
            "Statement": {
                "Effect": "Allow",
                "Action": ["ssm:UpdateInstance*", "ssmmessages:*", "ec2messages:*"],
                "Resource": "*",
            }
        },
        inline=True,
    )
    assert statuses(run(inst(), role=role(custom)))["role-policy"] == "ok"


def test_legacy_policy_is_information_not_a_problem() -> None:
    legacy = PolicyDoc(
        "AmazonEC2RoleforSSM", "arn:aws:iam::aws:policy/service-role/AmazonEC2RoleforSSM", None
    )
    f = run(inst(), role=role(legacy)).finding("role-policy")
    assert f is not None and f.status == "info" and "deprecated" in f.title


def test_unreadable_role_is_unknown() -> None:
    d = run(inst(), role=RoleFacts("arn:x", unknown=Unknown("iam:GetInstanceProfile", "denied")))
    assert statuses(d)["instance-profile"] == "unknown"


def test_public_subnet_without_public_ip() -> None:
    d = run(inst(), network=net({"GatewayId": "igw-1"}))
    f = d.finding("network")
    assert f is not None and f.status == "fail"
    assert "no public IP" in f.title
    assert "associate-address" in f.fix and "ssmmessages" in f.fix
    assert not any(x.check == "vpc-endpoints" for x in d.findings)  # one finding says it all


def test_public_subnet_with_public_ip() -> None:
    d = run(inst(public_ip="3.3.3.3"), network=net({"GatewayId": "igw-1"}, public_ip="3.3.3.3"))
    assert statuses(d)["network"] == "ok"


def test_main_route_table_is_named() -> None:
    n = net(route_table=table({"NatGatewayId": "nat-1"}, main=True), route_table_is_main=True)
    f = run(inst(), network=n).finding("network")
    assert f is not None and f.status == "ok" and "main route table" in f.title


def test_isolated_subnet_without_endpoints() -> None:
    d = run(inst(), network=net({}))
    f = d.finding("network")
    assert f is not None and f.status == "fail" and "no route to the internet" in f.title
    assert "create-route" in f.fix and "{ssm,ssmmessages,ec2messages}" in f.fix


def test_isolated_subnet_missing_two_endpoints() -> None:
    eps = [endpoint("ssm")]
    d = run(inst(), network=net({}, endpoints=eps, groups={"sg-e": group()}))
    assert statuses(d)["network"] == "info"
    (bad,) = [f for f in d.findings if f.check == "vpc-endpoints"]
    assert bad.title == "no VPC endpoint for ssmmessages, ec2messages"
    assert "{ssmmessages,ec2messages}" in bad.fix and "once per service" in bad.fix


def test_isolated_subnet_missing_one_endpoint() -> None:
    eps = [endpoint("ssm"), endpoint("ec2messages")]
    d = run(inst(), network=net({}, endpoints=eps, groups={"sg-e": group()}))
    bad = [f for f in d.findings if f.check == "vpc-endpoints"]
    assert [f.title for f in bad] == ["no VPC endpoint for ssmmessages"]
    assert "com.amazonaws.us-east-1.ssmmessages" in bad[0].fix


def test_isolated_subnet_with_complete_endpoints_is_fine() -> None:
    eps = [endpoint(s) for s in ("ssm", "ssmmessages", "ec2messages")]
    d = run(inst(), network=net({}, endpoints=eps, groups={"sg-e": group()}))
    assert statuses(d)["network"] == "ok" and statuses(d)["vpc-endpoints"] == "ok"


def test_private_dns_off() -> None:
    eps = [endpoint(s, dns=False) for s in ("ssm", "ssmmessages", "ec2messages")]
    d = run(inst(), network=net({}, endpoints=eps, groups={"sg-e": group()}))
    (bad,) = [f for f in d.findings if f.check == "vpc-endpoints"]
    assert "private DNS off" in bad.title and "ssm, ssmmessages, ec2messages" in bad.title
    assert "--private-dns-enabled" in bad.fix and "vpce-ec2messages" in bad.fix


def test_endpoint_security_group_without_443_blocks_even_with_a_nat() -> None:
    eps = [endpoint(s) for s in ("ssm", "ssmmessages", "ec2messages")]
    d = run(inst(), network=net(endpoints=eps, groups={"sg-e": group(port=80)}))
    (bad,) = [f for f in d.findings if f.check == "vpc-endpoints"]
    assert "do not accept HTTPS" in bad.title and bad.status == "fail"
    assert "authorize-security-group-ingress --group-id sg-e" in bad.fix


def test_endpoint_group_allowing_the_instance_group() -> None:
    sg = {
        "GroupId": "sg-e",
        "IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-instance"}]}],
    }
    eps = [endpoint(s) for s in ("ssm", "ssmmessages", "ec2messages")]
    n = net({}, endpoints=eps, groups={"sg-e": sg}, instance_groups=["sg-instance"])
    assert run(inst(), network=n).healthy is False  # not registered: still a fail overall
    assert statuses(run(inst(), network=n))["vpc-endpoints"] == "ok"


def test_agent_running_is_the_remaining_explanation() -> None:
    d = run(inst())
    f = d.finding("ssm-agent")
    assert f is not None and f.status == "fail"
    assert "everything checkable" in f.title and "amazon-ssm-agent" in f.fix


def test_old_agent_features() -> None:
    old = inst(registered=True, ping_status="Online", agent_version="3.0.161.0")
    f = run(old).finding("agent-version")
    assert f is not None and f.status == "warn"
    assert "smux" in f.detail and "remote-host" in f.detail and "AWS-UpdateSSMAgent" in f.fix
    mid = inst(registered=True, ping_status="Online", agent_version="3.1.100.0")
    f = run(mid).finding("agent-version")
    assert f is not None and "remote-host" in f.detail and "smux" not in f.detail


def test_connection_lost_and_inactive() -> None:
    lost = inst(registered=True, ping_status="ConnectionLost", last_ping=NOW - timedelta(hours=3))
    f = run(lost).finding("ssm-agent")
    assert f is not None and f.status == "warn" and "3 h ago" in f.title
    gone = inst(registered=True, ping_status="Inactive")
    f = run(gone).finding("ssm-agent")
    assert f is not None and f.status == "warn"


def caller(decision: str, *docs: PolicyDoc, **kw: Any) -> CallerFacts:
    return CallerFacts(
        "arn:aws:iam::111111111111:user/demo",
        principal_arn="arn:aws:iam::111111111111:user/demo",
        decision=decision,
        policies=list(docs),
        now=NOW,
        **kw,
    )


def test_permission_allowed_denied_and_expiring() -> None:
    ok = inst(registered=True, ping_status="Online", agent_version="3.3.987.0")
    assert statuses(run(ok, caller=caller("allowed")))["permission"] == "ok"
    deny = PolicyDoc(
        "Operator",
        "arn:aws:iam::111111111111:policy/Operator",
        {
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": "ssm:StartSession",
                    "Resource": "arn:aws:ec2:*:*:instance/*",
                    "Condition": {"StringEquals": {"ssm:resourceTag/Team": "hr"}},
                }
            ]
        },
    )
    f = run(ok, caller=caller("explicitDeny", deny)).finding("permission")
    assert f is not None and f.status == "fail" and "ssm:resourceTag/Team" in f.detail
    f = run(ok, caller=caller("implicitDeny")).finding("permission")
    assert f is not None and f.status == "fail" and "no policy allows" in f.title
    until = (NOW + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    grant = PolicyDoc(
        "BreakGlass",
        None,
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "ssm:Start*",
                    "Resource": "*",
                    "Condition": {"DateLessThan": {"aws:CurrentTime": until}},
                }
            ]
        },
        inline=True,
    )
    f = run(ok, caller=caller("allowed", grant)).finding("permission")
    assert f is not None and f.status == "warn" and "until" in f.title and "in 5 h" in f.title
    unknown = CallerFacts("arn:x", unknown=Unknown("iam:SimulatePrincipalPolicy", "denied"))
    assert statuses(run(ok, caller=unknown))["permission"] == "unknown"


def test_preferences() -> None:
    assert preference_findings(PreferencesFacts(exists=False), REGION)[0].status == "warn"
    got = {f.check: f for f in preference_findings(PreferencesFacts(True, {}), REGION)}
    assert got["logging"].status == "warn" and got["kms"].status == "info"
    full = PreferencesFacts(
        True,
        {
            "s3BucketName": "logs",
            "cloudWatchLogGroupName": "/ssm",
            "kmsKeyId": "alias/k",
            "idleSessionTimeout": "15",
            "maxSessionDuration": "60",
            "runAsEnabled": True,
            "runAsDefaultUser": "ops",
        },
    )
    got = {f.check: f for f in preference_findings(full, REGION)}
    assert got["logging"].status == "ok" and "s3://logs/" in got["logging"].title
    assert got["kms"].status == "ok" and "15 min" in got["timeouts"].title
    assert "60 min" in got["timeouts"].title and "ops" in got["run-as"].title


def test_policy_helpers() -> None:
    assert action_matches("ssmmessages:Open*", "ssmmessages:OpenDataChannel")
    assert action_matches("SSM:*", "ssm:StartSession")
    assert not action_matches("ssm:Start?", "ssm:StartSession")
    doc = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    assert allowed_actions_missing([doc], ["ssm:UpdateInstanceInformation"]) == []
    deny = {"Statement": [{"Effect": "Deny", "Action": "ssm:*", "Resource": "*"}]}
    assert allowed_actions_missing([doc, deny], ["ssm:UpdateInstanceInformation"])
    guards = guards_for(
        [
            (
                "p",
                {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "ssm:StartSession",
                            "Condition": {"DateGreaterThan": {"aws:EpochTime": "1700000000"}},
                        }
                    ]
                },
            )
        ],
        "ssm:StartSession",
    )
    assert guards[0].since is not None and guards[0].until is None
    assert policy_document("%7B%22Statement%22%3A%5B%5D%7D") == {"Statement": []}
    assert policy_document({"a": 1}) == {"a": 1} and policy_document("nope") is None


def test_pick_route_table_prefers_the_explicit_association() -> None:
    main = {"RouteTableId": "rtb-main", "Associations": [{"Main": True}]}
    own = {"RouteTableId": "rtb-own", "Associations": [{"SubnetId": "subnet-1"}]}
    assert pick_route_table([main, own], "subnet-1") == (own, False)
    assert pick_route_table([main, own], "subnet-2") == (main, True)
    assert pick_route_table([own], "subnet-2") == (None, False)


def test_render_ascii_and_unicode() -> None:
    from ssmtui.doctor.model import DoctorReport, ScopeReport
    from ssmtui.models import FleetScope

    d = run(inst(instance_profile=None), role=RoleFacts(None, profile_found=False))
    report = DoctorReport((ScopeReport(FleetScope("dev", REGION), diagnoses=(d,)),))
    text = render_report(report)
    assert "✗ no IAM instance profile" in text and "associate-iam-instance-profile" in text
    ascii_text = render_report(report, unicode=False)
    assert "XX no IAM instance profile" in ascii_text
    assert report.failed
