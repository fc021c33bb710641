"""Wire-level pieces shared by the simulated AWS services: errors, SigV4, response rendering.

Three protocols are spoken, exactly as botocore's serializers/parsers expect them:

* ``json`` (AWS JSON 1.1; SSM, KMS): ``X-Amz-Target: <Prefix>.<Operation>`` request header, JSON
  bodies, errors as HTTP 4xx with ``{"__type": code, "message": text}``;
* ``ec2`` (EC2 query): form body with ``Action``/``Version=2016-11-15``, XML responses, errors as
  ``<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>``;
* ``query`` (STS): like EC2 but results wrapped in ``<OpResult>`` and errors as ``<ErrorResponse>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

__all__ = [
    "AwsError",
    "Caller",
    "SigV4Header",
    "epoch",
    "error_for",
    "fingerprint",
    "iso8601",
    "json_error_body",
    "page_offset",
    "page_token",
    "parse_authorization",
    "query_error_body",
    "sub",
    "verify_sigv4",
    "xml_document",
]

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
XML_CONTENT_TYPE = "text/xml;charset=UTF-8"

#: Per-protocol codes for the generic failure kinds the simulation produces.
_KIND_CODES: dict[str, dict[str, tuple[str, int, str]]] = {
    "json": {
        "unrecognized": (
            "UnrecognizedClientException",
            400,
            "The security token included in the request is invalid.",
        ),
        "signature": (
            "InvalidSignatureException",
            400,
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details.",
        ),
        "missing": (
            "MissingAuthenticationTokenException",
            400,
            "Missing Authentication Token",
        ),
        "expired": (
            "ExpiredTokenException",
            400,
            "The security token included in the request is expired",
        ),
        "throttle": ("ThrottlingException", 400, "Rate exceeded"),
        "denied": ("AccessDeniedException", 400, "User is not authorized to perform this action"),
    },
    "ec2": {
        "unrecognized": (
            "AuthFailure",
            401,
            "AWS was not able to validate the provided access credentials",
        ),
        "signature": (
            "AuthFailure",
            401,
            "AWS was not able to validate the provided access credentials",
        ),
        "missing": ("MissingAuthenticationToken", 401, "Request is missing Authentication Token"),
        "expired": ("RequestExpired", 400, "Request has expired."),
        "throttle": ("RequestLimitExceeded", 503, "Request limit exceeded."),
        "denied": (
            "UnauthorizedOperation",
            403,
            "You are not authorized to perform this operation.",
        ),
    },
    "query": {
        "unrecognized": (
            "InvalidClientTokenId",
            403,
            "The security token included in the request is invalid.",
        ),
        "signature": (
            "SignatureDoesNotMatch",
            403,
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details.",
        ),
        "missing": ("MissingAuthenticationToken", 403, "Request is missing Authentication Token"),
        "expired": ("ExpiredToken", 400, "The security token included in the request is expired"),
        "throttle": ("Throttling", 400, "Rate exceeded"),
        "denied": ("AccessDenied", 403, "User is not authorized to perform this action"),
    },
}

#: Codes whose HTTP status is a server error rather than 400.
_SERVER_CODES = {
    "InternalServerError": 500,
    "InternalFailure": 500,
    "InternalError": 500,
    "KMSInternalException": 500,
    "ServiceUnavailable": 503,
    "Unavailable": 503,
}


class AwsError(Exception):
    """An AWS error response; rendered per protocol by the dispatcher."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else _SERVER_CODES.get(code, 400)


def error_for(kind: str, protocol: str, message: str | None = None) -> AwsError:
    """The protocol-appropriate :class:`AwsError` for a generic failure ``kind``.

    Kinds: ``unrecognized``, ``signature``, ``missing``, ``expired``, ``throttle``, ``denied``.
    """
    code, status, default_message = _KIND_CODES[protocol][kind]
    return AwsError(code, message or default_message, status)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal of a request, derived from the SigV4 credential scope."""

    profile: str
    account_id: str
    region: str
    service: str
    access_key_id: str
    user_name: str = "demo"

    @property
    def arn(self) -> str:
        """``arn:aws:iam::<account>:user/<name>``."""
        return f"arn:aws:iam::{self.account_id}:user/{self.user_name}"

    @property
    def user_id(self) -> str:
        """A stable fake ``AIDA…`` unique id of the IAM user."""
        return ("AIDA" + self.account_id + self.user_name.upper()).ljust(21, "X")[:21]


@dataclass(frozen=True, slots=True)
class SigV4Header:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 …`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)


def parse_authorization(value: str | None) -> SigV4Header | None:
    """Parse a SigV4 ``Authorization`` header; None if absent or malformed."""
    if not value:
        return None
    match = _AUTH_RE.match(value.strip())
    if not match:
        return None
    parts = match.group("cred").split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return None
    return SigV4Header(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=tuple(match.group("signed").lower().split(";")),
        signature=match.group("sig").lower(),
    )


def verify_sigv4(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    header_values: Mapping[str, list[str]],
    body: bytes,
    auth: SigV4Header,
    secret_key: str,
) -> bool:
    """Recompute the SigV4 signature of a request with botocore's signer and compare.

    ``header_values`` maps each lower-cased signed header name to all its values as received.
    """
    amz_date = headers.get("X-Amz-Date") or headers.get("x-amz-date")
    if not amz_date or not amz_date.startswith(auth.date):
        return False
    request = AWSRequest(method=method, url=url, data=body)
    for name in auth.signed_headers:
        for value in header_values.get(name, []):
            request.headers[name] = value
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(auth.access_key_id, secret_key), auth.service, auth.region)
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    return hmac.compare_digest(expected, auth.signature)


# --------------------------------------------------------------------------- rendering


def epoch(dt: datetime) -> float:
    """A datetime as the epoch-seconds number the JSON protocol uses for timestamps."""
    return round(dt.timestamp(), 3)


def iso8601(dt: datetime) -> str:
    """A datetime in the ISO-8601 form the XML protocols use (``2024-01-01T00:00:00.000Z``)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def json_error_body(error: AwsError) -> bytes:
    """The AWS JSON 1.1 error body."""
    return json.dumps({"__type": error.code, "message": error.message}).encode()


def xml_document(root: ET.Element) -> bytes:
    """Serialize an XML tree with the declaration AWS sends."""
    text = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode()


def sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    """Append a child element, optionally with text (bools as ``true``/``false``)."""
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = ("true" if text else "false") if isinstance(text, bool) else str(text)
    return child


def query_error_body(error: AwsError, protocol: str, request_id: str, xmlns: str) -> bytes:
    """The XML error body of the EC2 (``ec2``) or STS-style (``query``) protocol."""
    if protocol == "ec2":
        root = ET.Element("Response")
        err = sub(sub(root, "Errors"), "Error")
        sub(err, "Code", error.code)
        sub(err, "Message", error.message)
        sub(root, "RequestID", request_id)
    else:
        root = ET.Element("ErrorResponse", xmlns=xmlns)
        err = sub(root, "Error")
        sub(err, "Type", "Sender" if error.status < 500 else "Receiver")
        sub(err, "Code", error.code)
        sub(err, "Message", error.message)
        sub(root, "RequestId", request_id)
    return xml_document(root)


# --------------------------------------------------------------------------- paging


def page_token(offset: int, scope: str) -> str:
    """An opaque NextToken for ``offset`` into a listing identified by ``scope``."""
    raw = json.dumps({"o": offset, "f": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_offset(token: str | None, scope: str, error_code: str) -> int:
    """Decode a NextToken of :func:`page_token`; a foreign/corrupt one raises ``error_code``."""
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(data["o"])
        if data["f"] != scope or offset < 0:
            raise ValueError(token)
    except (ValueError, KeyError, TypeError):
        raise AwsError(error_code, "The specified token is not valid.") from None
    return offset


def fingerprint(*parts: Any) -> str:
    """A short stable hash of a listing's scope and filters (binds NextTokens to a query)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
