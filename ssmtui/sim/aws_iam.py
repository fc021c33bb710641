"""Simulated AWS IAM (query protocol, ``Version=2010-05-08``): read calls and the policy simulator.

Operations: GetInstanceProfile, GetRole, ListAttachedRolePolicies, ListRolePolicies, GetRolePolicy,
GetUser, ListAttachedUserPolicies, ListUserPolicies, GetUserPolicy, GetPolicy, GetPolicyVersion,
SimulatePrincipalPolicy. IAM is global: the caller's account (from the access key) is all that
matters. Policy documents are returned URL-encoded, as AWS does.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ssmtui.sim.aws_wire import AwsError, iso8601, sub
from ssmtui.sim.iam_model import CREATED, AccountIam, SimRole, SimUser
from ssmtui.sim.iam_policy import evaluate

if TYPE_CHECKING:
    from ssmtui.sim.state import RequestContext

__all__ = ["IAM_OPERATIONS", "IAM_XMLNS"]

IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"


def _no_such(message: str) -> AwsError:
    return AwsError("NoSuchEntity", message, 404)


def _encoded(document: Mapping[str, Any]) -> str:
    return quote(json.dumps(document, indent=4), safe="*")


def _response(ctx: RequestContext, op: str) -> tuple[ET.Element, ET.Element]:
    root = ET.Element(f"{op}Response", xmlns=IAM_XMLNS)
    return root, sub(root, f"{op}Result")


def _finish(ctx: RequestContext, root: ET.Element) -> ET.Element:
    """Append ``ResponseMetadata`` (last, as AWS sends it)."""
    sub(sub(root, "ResponseMetadata"), "RequestId", ctx.request_id)
    return root


def _account(ctx: RequestContext) -> AccountIam:
    return ctx.state.iam.account(ctx.caller.account_id)


def _indexed(params: Mapping[str, str], prefix: str) -> list[str]:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
    found = [(int(m.group(1)), v) for k, v in params.items() if (m := pattern.match(k))]
    return [v for _, v in sorted(found)]


def _role(ctx: RequestContext, params: Mapping[str, str]) -> SimRole:
    name = params.get("RoleName", "")
    role = _account(ctx).roles.get(name)
    if role is None:
        raise _no_such(f"The role with name {name} cannot be found.")
    return role


def _user(ctx: RequestContext, params: Mapping[str, str]) -> SimUser:
    name = params.get("UserName") or ctx.caller.user_name
    user = _account(ctx).users.get(name)
    if user is None:
        raise _no_such(f"The user with name {name} cannot be found.")
    return user


def _role_xml(parent: ET.Element, role: SimRole) -> None:
    sub(parent, "Path", role.path)
    sub(parent, "RoleName", role.name)
    sub(parent, "RoleId", role.role_id)
    sub(parent, "Arn", role.arn)
    sub(parent, "CreateDate", iso8601(CREATED))
    sub(parent, "AssumeRolePolicyDocument", _encoded(role.trust))
    sub(parent, "MaxSessionDuration", 3600)


def get_instance_profile(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM GetInstanceProfile: the profile and its role."""
    name = params.get("InstanceProfileName", "")
    acct = _account(ctx)
    profile = acct.profiles.get(name)
    if profile is None:
        raise _no_such(f"Instance Profile {name} cannot be found.")
    root, result = _response(ctx, "GetInstanceProfile")
    node = sub(result, "InstanceProfile")
    sub(node, "Path", "/")
    sub(node, "InstanceProfileName", profile.name)
    sub(node, "InstanceProfileId", profile.profile_id)
    sub(node, "Arn", profile.arn)
    sub(node, "CreateDate", iso8601(CREATED))
    roles = sub(node, "Roles")
    role = acct.roles.get(profile.role or "")
    if role is not None:
        _role_xml(sub(roles, "member"), role)
    return _finish(ctx, root)


def get_role(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM GetRole."""
    role = _role(ctx, params)
    root, result = _response(ctx, "GetRole")
    _role_xml(sub(result, "Role"), role)
    return _finish(ctx, root)


def _attached(ctx: RequestContext, op: str, arns: list[str]) -> ET.Element:
    root, result = _response(ctx, op)
    listing = sub(result, "AttachedPolicies")
    acct = _account(ctx)
    for arn in arns:
        policy = acct.policy(arn)
        member = sub(listing, "member")
        sub(member, "PolicyName", policy.name if policy else arn.rsplit("/", 1)[-1])
        sub(member, "PolicyArn", arn)
    sub(result, "IsTruncated", False)
    return _finish(ctx, root)


def _names(ctx: RequestContext, op: str, names: list[str]) -> ET.Element:
    root, result = _response(ctx, op)
    listing = sub(result, "PolicyNames")
    for name in names:
        sub(listing, "member", name)
    sub(result, "IsTruncated", False)
    return _finish(ctx, root)


def list_attached_role_policies(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM ListAttachedRolePolicies."""
    return _attached(ctx, "ListAttachedRolePolicies", _role(ctx, params).managed)


def list_role_policies(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM ListRolePolicies (inline policy names)."""
    return _names(ctx, "ListRolePolicies", list(_role(ctx, params).inline))


def _inline_policy(
    ctx: RequestContext,
    op: str,
    kind: str,
    owner: str,
    inline: Mapping[str, Any],
    name: str,
) -> ET.Element:
    """Get{Role,User}Policy: one inline policy of its owner."""
    if name not in inline:
        raise _no_such(f"The {kind.lower()} policy with name {name} cannot be found.")
    root, result = _response(ctx, op)
    sub(result, f"{kind}Name", owner)
    sub(result, "PolicyName", name)
    sub(result, "PolicyDocument", _encoded(inline[name]))
    return _finish(ctx, root)


def get_role_policy(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM GetRolePolicy: one inline policy of a role."""
    role = _role(ctx, params)
    name = params.get("PolicyName", "")
    return _inline_policy(ctx, "GetRolePolicy", "Role", role.name, role.inline, name)


def get_user(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM GetUser (the caller without ``UserName``)."""
    user = _user(ctx, params)
    root, result = _response(ctx, "GetUser")
    node = sub(result, "User")
    sub(node, "Path", "/")
    sub(node, "UserName", user.name)
    sub(node, "UserId", user.user_id)
    sub(node, "Arn", user.arn)
    sub(node, "CreateDate", iso8601(CREATED))
    return _finish(ctx, root)


def list_attached_user_policies(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM ListAttachedUserPolicies."""
    return _attached(ctx, "ListAttachedUserPolicies", _user(ctx, params).managed)


def list_user_policies(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM ListUserPolicies (inline policy names)."""
    return _names(ctx, "ListUserPolicies", list(_user(ctx, params).inline))


def get_user_policy(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM GetUserPolicy: one inline policy of a user."""
    user = _user(ctx, params)
    name = params.get("PolicyName", "")
    return _inline_policy(ctx, "GetUserPolicy", "User", user.name, user.inline, name)


def get_policy(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM GetPolicy: a managed policy's metadata (default version ``v1``)."""
    arn = params.get("PolicyArn", "")
    policy = _account(ctx).policy(arn)
    if policy is None:
        raise _no_such(f"Policy {arn} does not exist or is not attachable.")
    root, result = _response(ctx, "GetPolicy")
    node = sub(result, "Policy")
    sub(node, "PolicyName", policy.name)
    sub(node, "PolicyId", policy.policy_id)
    sub(node, "Arn", policy.arn)
    sub(node, "Path", policy.path)
    sub(node, "DefaultVersionId", "v1")
    sub(node, "AttachmentCount", 1)
    sub(node, "PermissionsBoundaryUsageCount", 0)
    sub(node, "IsAttachable", True)
    if policy.description:
        sub(node, "Description", policy.description)
    sub(node, "CreateDate", iso8601(CREATED))
    sub(node, "UpdateDate", iso8601(CREATED))
    return _finish(ctx, root)


def get_policy_version(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM GetPolicyVersion: the (URL-encoded) document of version ``v1``."""
    arn = params.get("PolicyArn", "")
    policy = _account(ctx).policy(arn)
    if policy is None:
        raise _no_such(f"Policy {arn} does not exist or is not attachable.")
    version = params.get("VersionId", "")
    if version != "v1":
        raise _no_such(f"Policy {arn} version {version} does not exist or is not attachable.")
    root, result = _response(ctx, "GetPolicyVersion")
    node = sub(result, "PolicyVersion")
    sub(node, "Document", _encoded(policy.document))
    sub(node, "VersionId", "v1")
    sub(node, "IsDefaultVersion", True)
    sub(node, "CreateDate", iso8601(CREATED))
    return _finish(ctx, root)


def _context(params: Mapping[str, str]) -> dict[str, list[str]]:
    context: dict[str, list[str]] = {}
    index = 1
    while f"ContextEntries.member.{index}.ContextKeyName" in params:
        prefix = f"ContextEntries.member.{index}"
        name = params[f"{prefix}.ContextKeyName"]
        context[name] = _indexed(params, f"{prefix}.ContextKeyValues.member")
        index += 1
    return context


def simulate_principal_policy(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """IAM SimulatePrincipalPolicy over the identity policies of a user or role."""
    source = params.get("PolicySourceArn", "")
    acct = _account(ctx)
    principal = acct.principal(source)
    if principal is None:
        raise _no_such(f"The principal {source} cannot be found.")
    actions = _indexed(params, "ActionNames.member")
    if not actions:
        raise AwsError(
            "ValidationError",
            "1 validation error detected: Value null at 'actionNames' failed to satisfy "
            "constraint: Member must not be null",
        )
    resources = _indexed(params, "ResourceArns.member") or ["*"]
    context = _context(params)
    policies = acct.policy_sources(principal)
    root, result = _response(ctx, "SimulatePrincipalPolicy")
    results = sub(result, "EvaluationResults")
    for action in actions:
        for resource in resources:
            decision = evaluate(policies, action, resource, context)
            member = sub(results, "member")
            sub(member, "EvalActionName", action)
            sub(member, "EvalResourceName", resource)
            sub(member, "EvalDecision", decision.decision)
            matched = sub(member, "MatchedStatements")
            for policy in decision.matched:
                stmt = sub(matched, "member")
                sub(stmt, "SourcePolicyId", policy.policy_id)
                sub(stmt, "SourcePolicyType", policy.policy_type)
            missing = sub(member, "MissingContextValues")
            for key in decision.missing:
                sub(missing, "member", key)
    sub(result, "IsTruncated", False)
    return _finish(ctx, root)


#: Operation name -> handler.
IAM_OPERATIONS: dict[str, Callable[[RequestContext, dict[str, str]], ET.Element]] = {
    "GetInstanceProfile": get_instance_profile,
    "GetRole": get_role,
    "ListAttachedRolePolicies": list_attached_role_policies,
    "ListRolePolicies": list_role_policies,
    "GetRolePolicy": get_role_policy,
    "GetUser": get_user,
    "ListAttachedUserPolicies": list_attached_user_policies,
    "ListUserPolicies": list_user_policies,
    "GetUserPolicy": get_user_policy,
    "GetPolicy": get_policy,
    "GetPolicyVersion": get_policy_version,
    "SimulatePrincipalPolicy": simulate_principal_policy,
}
