"""Facts in, findings out: the doctor's rules (pure; no network, no clock but the facts').

An EC2 instance shows up in Session Manager when (1) it runs, (2) the SSM agent runs on it,
(3) its instance profile's role lets the agent talk to Systems Manager
(``AmazonSSMManagedInstanceCore``), and (4) it can reach the ssm, ssmmessages and ec2messages
endpoints: over the internet (public IP + internet gateway, or a NAT) or through VPC interface
endpoints with private DNS and HTTPS open to it. Sessions then also need the agent to be recent
enough for what is asked, and the *caller* to be allowed ``ssm:StartSession``.
"""

from __future__ import annotations

from datetime import datetime

from ssmtui.aws.doctor import CallerFacts, InstanceFacts, RoleFacts, ScopeFacts, instance_arn
from ssmtui.doctor.model import Diagnosis, Finding, ScopeReport
from ssmtui.doctor.network import ENDPOINT_SERVICES, network_findings, where
from ssmtui.doctor.policy import allowed_actions_missing, guards_for
from ssmtui.doctor.preferences import preference_findings
from ssmtui.models import REMOTE_HOST_MIN_AGENT, Instance

__all__ = [
    "AGENT_ACTIONS",
    "ENDPOINT_SERVICES",
    "diagnose",
    "network_findings",
    "preference_findings",
    "role_findings",
    "scope_report",
]

#: What the agent calls (AmazonSSMManagedInstanceCore grants these and more).
AGENT_ACTIONS = (
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:GetMessages",
)
_CORE = {"AmazonSSMManagedInstanceCore", "AmazonSSMManagedEC2InstanceDefaultPolicy"}
_LEGACY = "AmazonEC2RoleforSSM"
_CORE_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


def _ago(then: datetime | None, now: datetime | None) -> str:
    if then is None or now is None:
        return ""
    minutes = int(max(0.0, (now - then).total_seconds()) // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // 1440} days ago"


def _in(then: datetime, now: datetime | None) -> str:
    if now is None:
        return ""
    minutes = int(max(0.0, (then - now).total_seconds()) // 60)
    return f"in {minutes} min" if minutes < 120 else f"in {minutes // 60} h"


# ---------------------------------------------------------------------- state and registration


def state_findings(inst: Instance) -> list[Finding]:
    if inst.is_hybrid or inst.state is None:
        return []
    if inst.state == "running":
        return [Finding("ec2-state", "ok", "EC2 instance is running")]
    return [
        Finding(
            "ec2-state",
            "fail",
            f"EC2 instance is {inst.state}",
            "The agent only registers, and sessions only start, while the instance runs.",
            f"aws ec2 start-instances --instance-ids {inst.instance_id} {where(inst)}",
        )
    ]


def registration_finding(inst: Instance, now: datetime | None) -> Finding | None:
    """The SSM registration, for a registered instance (unregistered: see :func:`diagnose`)."""
    if not inst.registered:
        return None
    seen = _ago(inst.last_ping, now)
    if inst.ping_status == "Online":
        return Finding(
            "ssm-agent",
            "ok",
            "SSM agent registered and online" + (f" (ping {seen})" if seen else ""),
        )
    if inst.ping_status == "ConnectionLost":
        return Finding(
            "ssm-agent",
            "warn",
            "SSM agent registered but not pinging" + (f" since {seen}" if seen else ""),
            "Systems Manager has not heard from the agent recently: the instance may be down, "
            "the agent stopped, or its network path or role credentials broke.",
            "check the agent on the instance (sudo systemctl status amazon-ssm-agent; log "
            "/var/log/amazon/ssm/amazon-ssm-agent.log) and the checks below",
        )
    if inst.is_hybrid:
        fix = (
            "start the node's agent, or deregister a node that is gone: aws ssm "
            f"deregister-managed-instance --instance-id {inst.instance_id} {where(inst)}"
        )
    else:
        fix = "make sure the instance runs and the agent is enabled (see the checks below)"
    return Finding(
        "ssm-agent",
        "warn",
        f"SSM registration is {inst.ping_status}",
        "The agent stopped reporting long ago.",
        fix,
    )


# ---------------------------------------------------------------------- instance role


def role_findings(inst: Instance, role: RoleFacts | None) -> list[Finding]:
    if role is None:
        return []
    if role.unknown is not None:
        return [
            Finding(
                "instance-profile",
                "unknown",
                "could not read the instance profile",
                f"{role.unknown.call}: {role.unknown.reason}",
                "needs iam:GetInstanceProfile, iam:ListAttachedRolePolicies, "
                "iam:ListRolePolicies, iam:GetRolePolicy, iam:GetPolicyVersion to check",
            )
        ]
    attach = (
        f"aws ec2 associate-iam-instance-profile --instance-id {inst.instance_id} "
        f"--iam-instance-profile Name=PROFILE {where(inst)}"
    )
    if not role.profile_arn:
        return [
            Finding(
                "instance-profile",
                "fail",
                "no IAM instance profile",
                "Without a role the agent cannot authenticate to Systems Manager.",
                f"attach a profile whose role has AmazonSSMManagedInstanceCore: {attach} (or turn "
                "on Default Host Management Configuration in Fleet Manager, agent ≥ 3.2.582.0 "
                "with IMDSv2)",
            )
        ]
    if role.profile_found is False:
        return [
            Finding(
                "instance-profile",
                "fail",
                f"instance profile {role.profile_name} does not exist",
                f"The instance points at {role.profile_arn}, which was deleted.",
                f"attach an existing profile: {attach}",
            )
        ]
    if not role.role_name:
        return [
            Finding(
                "instance-profile",
                "fail",
                f"instance profile {role.profile_name} has no role",
                fix=f"aws iam add-role-to-instance-profile --instance-profile-name "
                f"{role.profile_name} --role-name ROLE",
            )
        ]
    found = [
        Finding(
            "instance-profile",
            "ok",
            f"instance profile {role.profile_name} → role {role.role_name}",
        )
    ]
    names = {p.name for p in role.policies}
    fix = f"aws iam attach-role-policy --role-name {role.role_name} --policy-arn {_CORE_ARN}"
    if names & _CORE:
        found.append(Finding("role-policy", "ok", f"role has {sorted(names & _CORE)[0]}"))
        return found
    if _LEGACY in names:
        found.append(
            Finding(
                "role-policy",
                "info",
                f"role uses the deprecated {_LEGACY}",
                "It works, but grants far more than the agent needs (ssm:*, s3 object access…).",
                f"{fix}, then detach {_LEGACY}",
            )
        )
        return found
    unreadable = [p.name for p in role.policies if p.document is None]
    missing = allowed_actions_missing((p.document for p in role.policies), AGENT_ACTIONS)
    policy_list = ", ".join(sorted(names)) or "none"
    if missing and unreadable:
        found.append(
            Finding(
                "role-policy",
                "unknown",
                "could not read all of the role's policies",
                f"unreadable: {', '.join(unreadable)}; "
                f"not granted by the others: {', '.join(missing)}",
                fix,
            )
        )
    elif missing:
        found.append(
            Finding(
                "role-policy",
                "fail",
                f"role {role.role_name} lacks the agent's SSM permissions",
                f"policies: {policy_list}; missing: {', '.join(missing)}",
                f"{fix} (the agent picks up the new permissions within minutes; "
                "sudo systemctl restart amazon-ssm-agent retries at once)",
            )
        )
    else:
        found.append(
            Finding(
                "role-policy",
                "ok",
                "role grants the agent's SSM permissions",
                f"policies: {policy_list}",
            )
        )
    return found


# ---------------------------------------------------------------------- agent and caller


def agent_findings(inst: Instance) -> list[Finding]:
    if not inst.registered or not inst.agent_version:
        return []
    lacks: list[str] = []
    if not inst.supports_mux:
        lacks.append(
            "smux multiplexing (> 3.0.196.0): a tunnel carries one TCP connection at a time"
        )
    if not inst.supports_remote_host:
        lacks.append(
            f"remote-host forwarding (≥ {REMOTE_HOST_MIN_AGENT}): no tunnels through it to RDS"
        )
    if not lacks:
        return [
            Finding(
                "agent-version", "ok", f"agent {inst.agent_version} has every feature ssmtui uses"
            )
        ]
    return [
        Finding(
            "agent-version",
            "warn",
            f"agent {inst.agent_version} is too old for "
            + ("some features" if len(lacks) > 1 else "one feature"),
            "; ".join(lacks),
            f"aws ssm send-command --document-name AWS-UpdateSSMAgent --instance-ids "
            f"{inst.instance_id} {where(inst)}",
        )
    ]


def caller_findings(inst: Instance, caller: CallerFacts | None) -> list[Finding]:
    if caller is None:
        return []
    who = caller.principal_arn or caller.arn or "you"
    if caller.unknown is not None or not caller.decision:
        reason = (
            f"{caller.unknown.call}: {caller.unknown.reason}" if caller.unknown else "no answer"
        )
        return [
            Finding(
                "permission",
                "unknown",
                "could not check whether you may start sessions",
                reason,
                "needs iam:SimulatePrincipalPolicy (and iam:GetRole for a role session)",
            )
        ]
    policies = [(p.name, p.document) for p in caller.policies]
    guards = guards_for(policies, "ssm:StartSession")
    arn = instance_arn(inst)
    if caller.decision == "allowed":
        expiring = [g for g in guards if g.effect == "Allow" and g.until is not None]
        if expiring:
            first = min(expiring, key=lambda g: g.until or datetime.max)
            assert first.until is not None
            return [
                Finding(
                    "permission",
                    "warn",
                    f"you may start sessions until {first.until:%Y-%m-%d %H:%M} UTC "
                    f"({_in(first.until, caller.now)})",
                    f"policy {first.policy} allows ssm:StartSession only while {first.describe()}",
                    "ask for the grant to be extended before it runs out",
                )
            ]
        return [
            Finding(
                "permission", "ok", "you may start sessions here (ssm:StartSession allowed)", who
            )
        ]
    matched = ", ".join(caller.matched_policies)
    if caller.decision == "explicitDeny":
        denies = [g for g in guards if g.effect == "Deny"]
        why = "; ".join(f"{g.policy}: {g.describe()}" for g in denies) or matched
        return [
            Finding(
                "permission",
                "fail",
                "you are explicitly denied ssm:StartSession on this instance",
                f"{who}: deny in {why or 'an identity-based policy'}",
                "an explicit Deny beats every Allow: ask an administrator to change that policy "
                "(or its condition) or use a role it does not apply to",
            )
        ]
    missing = (
        f" (the simulator lacked: {', '.join(caller.missing_context)})"
        if caller.missing_context
        else ""
    )
    return [
        Finding(
            "permission",
            "fail",
            "no policy allows you ssm:StartSession on this instance",
            f"{who}{missing}",
            f"allow ssm:StartSession on {arn} and on the session documents "
            f"(arn:aws:ssm:{inst.region}::document/AWS-*, and "
            f"arn:aws:ssm:{inst.region}:ACCOUNT:document/SSM-SessionManagerRunShell)",
        )
    ]


# ---------------------------------------------------------------------- preferences


# ---------------------------------------------------------------------- putting it together


def diagnose(facts: InstanceFacts, now: datetime | None = None) -> Diagnosis:
    """Every finding about one instance, in the order a person would check them."""
    inst = facts.instance
    state = state_findings(inst)
    role = role_findings(inst, facts.role)
    net = network_findings(inst, facts.network)
    agent = agent_findings(inst)
    caller = caller_findings(inst, facts.caller)
    findings: list[Finding] = [*state]
    reg = registration_finding(inst, now)
    if reg is not None:
        findings.append(reg)
    else:
        blockers = [f for f in (*state, *role, *net) if f.status == "fail"]
        if blockers:
            reg = Finding(
                "ssm-agent",
                "fail",
                "not registered with Systems Manager",
                "Fix the other failed checks; the agent retries and registers within minutes "
                "(sudo systemctl restart amazon-ssm-agent retries at once).",
            )
        else:
            reg = Finding(
                "ssm-agent",
                "fail",
                "not registered, though everything checkable from outside is in place",
                "The role, the network path and the instance state look right, so the SSM agent "
                "is probably not installed or not running (or the OS cannot resolve DNS / keep "
                "time).",
                "on the instance (EC2 serial console or user data): sudo systemctl enable --now "
                "amazon-ssm-agent (snap.amazon-ssm-agent.amazon-ssm-agent on Ubuntu); its log is "
                "/var/log/amazon/ssm/amazon-ssm-agent.log",
            )
        findings.append(reg)
    findings += [*role, *net, *agent, *caller]
    return Diagnosis(inst, tuple(findings))


def scope_report(
    facts: ScopeFacts, *, online: int = 0, registered: int = 0, now: datetime | None = None
) -> ScopeReport:
    """A scope's report from its facts (``online`` / ``registered``: fleet counts to show)."""
    if facts.error is not None:
        return ScopeReport(
            facts.scope,
            error=str(facts.error),
            hint=facts.error.hint,
            online=online,
            registered=registered,
        )
    return ScopeReport(
        facts.scope,
        account_id=facts.account_id,
        caller_arn=facts.caller_arn,
        findings=tuple(preference_findings(facts.preferences, facts.scope.region)),
        diagnoses=tuple(diagnose(f, now) for f in facts.instances),
        online=online,
        registered=registered,
    )
