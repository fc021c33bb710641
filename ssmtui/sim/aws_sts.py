"""Simulated AWS STS ``GetCallerIdentity`` (query protocol, ``Version=2011-06-15``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING

from ssmtui.sim.aws_wire import sub

if TYPE_CHECKING:
    from ssmtui.sim.state import RequestContext

__all__ = ["STS_OPERATIONS", "STS_XMLNS"]

STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"


def get_caller_identity(ctx: RequestContext, params: dict[str, str]) -> ET.Element:
    """STS GetCallerIdentity: the demo IAM user of the caller's account."""
    root = ET.Element("GetCallerIdentityResponse", xmlns=STS_XMLNS)
    result = sub(root, "GetCallerIdentityResult")
    sub(result, "Arn", ctx.caller.arn)
    sub(result, "UserId", ctx.caller.user_id)
    sub(result, "Account", ctx.caller.account_id)
    sub(sub(root, "ResponseMetadata"), "RequestId", ctx.request_id)
    return root


#: Operation name -> handler.
STS_OPERATIONS: dict[str, Callable[[RequestContext, dict[str, str]], ET.Element]] = {
    "GetCallerIdentity": get_caller_identity,
}
