"""The demo fleet's IAM: AWS managed policies, roles, instance profiles and the demo operator.

Every account of a fleet gets the same entities:

* the instance profile ``SSMManagedInstanceProfile`` -> role ``SSMManagedInstanceRole`` with
  ``AmazonSSMManagedInstanceCore`` (the default of every EC2 instance), a role for each hybrid
  node's service role, and the roles/profiles of the fleet file's ``[iam]`` table;
* the caller, IAM user ``demo``, with the customer-managed policy ``SsmtuiDemoOperator``: Session
  Manager, inventory and KMS access on ``*`` and an explicit Deny of ``ssm:StartSession`` on
  instances tagged ``Team=hr``. For the profiles in ``iam.break_glass_profiles`` the Allow of
  ``ssm:StartSession`` on instances is a break-glass grant that expires
  (``DateLessThan aws:CurrentTime`` = server start + 8 hours, rounded up to the hour).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ssmtui.sim.fleet import SimFleet
from ssmtui.sim.iam_policy import PolicySource

__all__ = [
    "AWS_MANAGED_POLICIES",
    "CORE_POLICY_ARN",
    "LEGACY_POLICY_ARN",
    "OPERATOR_POLICY",
    "S3_READ_ONLY_ARN",
    "AccountIam",
    "ManagedPolicy",
    "SimIam",
    "SimInstanceProfile",
    "SimRole",
    "SimUser",
]

CORE_POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
LEGACY_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonEC2RoleforSSM"
S3_READ_ONLY_ARN = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
#: Name of the demo caller's customer-managed policy.
OPERATOR_POLICY = "SsmtuiDemoOperator"
DEFAULT_PROFILE = "SSMManagedInstanceProfile"
DEFAULT_ROLE = "SSMManagedInstanceRole"
CREATED = datetime(2023, 3, 1, 9, 0, tzinfo=UTC)

_SSM_AGENT_ACTIONS = [
    "ssm:DescribeAssociation",
    "ssm:GetDeployablePatchSnapshotForInstance",
    "ssm:GetDocument",
    "ssm:DescribeDocument",
    "ssm:GetManifest",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:ListAssociations",
    "ssm:ListInstanceAssociations",
    "ssm:PutInventory",
    "ssm:PutComplianceItems",
    "ssm:PutConfigurePackageResult",
    "ssm:UpdateAssociationStatus",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:UpdateInstanceInformation",
]
_SSMMESSAGES = [
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]
_EC2MESSAGES = [
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
]


def _allow(actions: list[str] | str, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource, **extra}


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _hex(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length].upper()


@dataclass(frozen=True)
class ManagedPolicy:
    """A managed policy (AWS or customer) with its one default version."""

    arn: str
    name: str
    path: str
    document: Mapping[str, Any]
    description: str = ""

    @property
    def policy_id(self) -> str:
        """A stable ``ANPA…`` id."""
        return "ANPA" + _hex(self.arn)

    @property
    def aws_managed(self) -> bool:
        """True for ``arn:aws:iam::aws:policy/…``."""
        return self.arn.startswith("arn:aws:iam::aws:")


def _aws(name: str, path: str, description: str, document: dict[str, Any]) -> ManagedPolicy:
    return ManagedPolicy(f"arn:aws:iam::aws:policy{path}{name}", name, path, document, description)


#: The AWS managed policies the demo knows, by ARN.
AWS_MANAGED_POLICIES: dict[str, ManagedPolicy] = {
    p.arn: p
    for p in (
        _aws(
            "AmazonSSMManagedInstanceCore",
            "/",
            "The policy for Amazon EC2 Role to enable AWS Systems Manager service core "
            "functionality.",
            _doc(_allow(_SSM_AGENT_ACTIONS), _allow(_SSMMESSAGES), _allow(_EC2MESSAGES)),
        ),
        _aws(
            "AmazonEC2RoleforSSM",
            "/service-role/",
            "This policy will soon be deprecated. Please use AmazonSSMManagedInstanceCore "
            "policy to enable AWS Systems Manager service core functionality on EC2 instances.",
            _doc(
                _allow(_SSM_AGENT_ACTIONS),
                _allow(_SSMMESSAGES),
                _allow(_EC2MESSAGES),
                _allow("cloudwatch:PutMetricData"),
                _allow("ec2:DescribeInstanceStatus"),
                _allow(["ds:CreateComputer", "ds:DescribeDirectories"]),
                _allow(
                    [
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:DescribeLogGroups",
                        "logs:DescribeLogStreams",
                        "logs:PutLogEvents",
                    ]
                ),
                _allow(
                    [
                        "s3:GetBucketLocation",
                        "s3:PutObject",
                        "s3:GetObject",
                        "s3:GetEncryptionConfiguration",
                        "s3:AbortMultipartUpload",
                        "s3:ListMultipartUploadParts",
                        "s3:ListBucket",
                        "s3:ListBucketMultipartUploads",
                    ]
                ),
            ),
        ),
        _aws(
            "AmazonS3ReadOnlyAccess",
            "/",
            "Provides read only access to all buckets via the AWS Management Console.",
            _doc(
                _allow(
                    [
                        "s3:Get*",
                        "s3:List*",
                        "s3:Describe*",
                        "s3-object-lambda:Get*",
                        "s3-object-lambda:List*",
                    ]
                )
            ),
        ),
    )
}

_EC2_TRUST = _doc(
    {
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
)
_SSM_TRUST = _doc(
    {
        "Effect": "Allow",
        "Principal": {"Service": "ssm.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
)


def operator_document(expires: datetime | None) -> dict[str, Any]:
    """The demo caller's ``SsmtuiDemoOperator`` policy (break-glass when ``expires`` is set)."""
    instances = ["arn:aws:ec2:*:*:instance/*", "arn:aws:ssm:*:*:managed-instance/*"]
    session_actions = [
        "ssm:ResumeSession",
        "ssm:TerminateSession",
        "ssm:Describe*",
        "ssm:GetConnectionStatus",
        "ssm:GetDocument",
    ]
    statements: list[dict[str, Any]] = []
    if expires is None:
        allow = _allow(["ssm:StartSession", *session_actions])
        statements.append({"Sid": "SessionManager", **allow})
    else:
        until = expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        statements += [
            {"Sid": "SessionManager", **_allow(session_actions)},
            {"Sid": "SessionDocuments", **_allow("ssm:StartSession", "arn:aws:ssm:*:*:document/*")},
            {
                "Sid": "BreakGlassSessions",
                **_allow(
                    "ssm:StartSession",
                    instances,
                    Condition={"DateLessThan": {"aws:CurrentTime": until}},
                ),
            },
        ]
    statements += [
        {
            "Sid": "Inventory",
            **_allow(["ec2:Describe*", "iam:Get*", "iam:List*", "iam:SimulatePrincipalPolicy"]),
        },
        {"Sid": "SessionEncryption", **_allow(["kms:GenerateDataKey", "kms:Decrypt"])},
        {
            "Sid": "NoSessionsOnHrHosts",
            "Effect": "Deny",
            "Action": "ssm:StartSession",
            "Resource": instances,
            "Condition": {"StringEquals": {"ssm:resourceTag/Team": "hr"}},
        },
    ]
    return _doc(*statements)


@dataclass
class SimRole:
    """An IAM role: attached managed policies (ARNs) and inline policies (name -> document)."""

    name: str
    account_id: str
    managed: list[str] = field(default_factory=list)
    inline: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    trust: Mapping[str, Any] = field(default_factory=lambda: _EC2_TRUST)
    path: str = "/"

    @property
    def arn(self) -> str:
        """``arn:aws:iam::<account>:role<path><name>``."""
        return f"arn:aws:iam::{self.account_id}:role{self.path}{self.name}"

    @property
    def role_id(self) -> str:
        """A stable ``AROA…`` id."""
        return "AROA" + _hex(self.arn)


@dataclass
class SimInstanceProfile:
    """An instance profile holding (at most) one role."""

    name: str
    account_id: str
    role: str | None

    @property
    def arn(self) -> str:
        """``arn:aws:iam::<account>:instance-profile/<name>``."""
        return f"arn:aws:iam::{self.account_id}:instance-profile/{self.name}"

    @property
    def profile_id(self) -> str:
        """``AIPA…``, the same id EC2 reports in ``IamInstanceProfile.Id``."""
        return "AIPA" + hashlib.sha256(self.arn.encode()).hexdigest()[:17].upper()


@dataclass
class SimUser:
    """An IAM user (the demo caller)."""

    name: str
    account_id: str
    managed: list[str] = field(default_factory=list)
    inline: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        """``arn:aws:iam::<account>:user/<name>``."""
        return f"arn:aws:iam::{self.account_id}:user/{self.name}"

    @property
    def user_id(self) -> str:
        """The same ``AIDA…`` id STS GetCallerIdentity reports."""
        return ("AIDA" + self.account_id + self.name.upper()).ljust(21, "X")[:21]


@dataclass
class AccountIam:
    """The IAM entities of one account."""

    account_id: str
    roles: dict[str, SimRole] = field(default_factory=dict)
    profiles: dict[str, SimInstanceProfile] = field(default_factory=dict)
    users: dict[str, SimUser] = field(default_factory=dict)
    policies: dict[str, ManagedPolicy] = field(default_factory=dict)

    def policy(self, arn: str) -> ManagedPolicy | None:
        """A managed policy by ARN (AWS managed or this account's)."""
        return AWS_MANAGED_POLICIES.get(arn) or self.policies.get(arn)

    def principal(self, arn: str) -> SimRole | SimUser | None:
        """The user or role with this ARN."""
        entities: list[SimRole | SimUser] = [*self.users.values(), *self.roles.values()]
        return next((e for e in entities if e.arn == arn), None)

    def policy_sources(self, principal: SimRole | SimUser) -> list[PolicySource]:
        """The identity policies of a principal, tagged for ``MatchedStatements``."""
        kind = "user" if isinstance(principal, SimUser) else "role"
        sources: list[PolicySource] = []
        for arn in principal.managed:
            policy = self.policy(arn)
            if policy is not None:
                ptype = "aws-managed" if policy.aws_managed else "user-managed"
                sources.append(PolicySource(policy.name, ptype, policy.document))
        for name, document in principal.inline.items():
            sources.append(PolicySource(name, kind, document))
        return sources


def _load_json_map(raw: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        str(k): (json.loads(v) if isinstance(v, str) else dict(v)) for k, v in dict(raw).items()
    }


def break_glass_expiry(start: datetime) -> datetime:
    """Server start + 8 hours, rounded up to the next full hour."""
    end = start.astimezone(UTC) + timedelta(hours=8)
    floor = end.replace(minute=0, second=0, microsecond=0)
    return floor if floor == end else floor + timedelta(hours=1)


class SimIam:
    """The IAM of every account of a fleet (built once per server)."""

    def __init__(self, fleet: SimFleet, start: datetime) -> None:
        decl = dict(fleet.iam)
        self.expires = break_glass_expiry(start)
        break_glass = {str(p) for p in decl.get("break_glass_profiles", [])}
        self.accounts: dict[str, AccountIam] = {}
        for profile, account_id in fleet.accounts.items():
            if account_id in self.accounts:
                continue
            acct = AccountIam(account_id)
            acct.roles[DEFAULT_ROLE] = SimRole(DEFAULT_ROLE, account_id, [CORE_POLICY_ARN])
            acct.profiles[DEFAULT_PROFILE] = SimInstanceProfile(
                DEFAULT_PROFILE, account_id, DEFAULT_ROLE
            )
            for name, raw in dict(decl.get("roles", {})).items():
                role = dict(raw)
                acct.roles[str(name)] = SimRole(
                    str(name),
                    account_id,
                    [str(a) for a in role.get("managed_policies", [])],
                    _load_json_map(role.get("inline_policies", {})),
                )
            for name, role_name in dict(decl.get("instance_profiles", {})).items():
                acct.profiles[str(name)] = SimInstanceProfile(
                    str(name), account_id, str(role_name) or None
                )
            operator = ManagedPolicy(
                f"arn:aws:iam::{account_id}:policy/{OPERATOR_POLICY}",
                OPERATOR_POLICY,
                "/",
                operator_document(self.expires if profile in break_glass else None),
                "Session Manager access for the ssmtui demo operator",
            )
            acct.policies[operator.arn] = operator
            acct.users["demo"] = SimUser("demo", account_id, [operator.arn])
            self.accounts[account_id] = acct
        for inst in fleet:
            acct_iam = self.accounts.get(inst.account_id)
            if inst.iam_role and acct_iam is not None and inst.iam_role not in acct_iam.roles:
                acct_iam.roles[inst.iam_role] = SimRole(
                    inst.iam_role, inst.account_id, [CORE_POLICY_ARN], trust=_SSM_TRUST
                )

    def account(self, account_id: str) -> AccountIam:
        """The IAM of an account (an empty one for unknown accounts)."""
        return self.accounts.setdefault(account_id, AccountIam(account_id))
