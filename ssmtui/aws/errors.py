"""The one place that turns botocore/aiobotocore failures into :mod:`ssmtui.errors`.

Every AWS call in :mod:`ssmtui.aws` runs inside :func:`aws_errors` (or passes its exception to
:func:`translate`), so the rest of the app only ever sees :class:`~ssmtui.errors.SsmtuiError`\\ s
that carry the profile, region, operation and request id, a plain one-line message and a hint.
Expired or missing credentials become :class:`~ssmtui.errors.CredentialsError`, never an empty
result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore import exceptions as bce  # type: ignore[import-untyped]

from ssmtui.errors import (
    AccessDenied,
    AwsError,
    ConfigError,
    CredentialsError,
    NetworkError,
    SsmtuiError,
    TargetError,
    TargetNotConnected,
    Throttled,
    one_line,
)

__all__ = ["aws_errors", "translate"]

EXPIRED_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "TokenRefreshRequired",
        "UnauthorizedSSOTokenError",
    }
)
INVALID_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "AuthFailure",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "InvalidAccessKeyId",
    }
)
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "OptInRequired",
    }
)
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "LimitExceededException",
    }
)
TARGET_CODES = frozenset({"InvalidInstanceId", "InvalidInstanceID.NotFound", "InvalidTarget"})


def _where(profile: str | None, region: str | None) -> str:
    if profile and region:
        return f"{profile}/{region}"
    return profile or region or "AWS"


def _login_hint(profile: str | None) -> str:
    return f"run: aws sso login --profile {profile or 'default'}"


def _client_error(
    exc: Any, profile: str | None, region: str | None, service: str | None, operation: str | None
) -> SsmtuiError:
    response = getattr(exc, "response", {}) or {}
    error = response.get("Error", {}) or {}
    code = str(error.get("Code") or "Unknown")
    detail = one_line(error.get("Message") or "", 200)
    request_id = (response.get("ResponseMetadata") or {}).get("RequestId") or None
    op = operation or getattr(exc, "operation_name", None)
    where = _where(profile, region)
    tail = f" ({code}{f' on {op}' if op else ''}{f', request {request_id}' if request_id else ''})"
    common: dict[str, Any] = {
        "cause": exc,
        "code": code,
        "request_id": request_id,
        "profile": profile,
        "region": region,
        "operation": op,
        "service": service,
    }
    if code in EXPIRED_CODES:
        return CredentialsError(
            f"{where}: the AWS credentials have expired{tail}", hint=_login_hint(profile), **common
        )
    if code in INVALID_CREDENTIAL_CODES:
        return CredentialsError(
            f"{where}: the AWS credentials were rejected{tail}",
            hint=f"check the keys of profile {profile or 'default'}, or {_login_hint(profile)}",
            **common,
        )
    if code in DENIED_CODES:
        action = f"{service}:{op}" if service and op else (op or "this action")
        return AccessDenied(
            f"{where}: not authorized to call {action}{tail}",
            hint="ask for an IAM policy that allows it, or use another --profile"
            + ("; ssmtui doctor TARGET shows which policy decides" if op == "StartSession" else ""),
            **common,
        )
    if code in THROTTLE_CODES:
        return Throttled(
            f"{where}: AWS is throttling the requests{tail}",
            hint="wait a moment and retry, or list fewer profiles/regions at once",
            **common,
        )
    if code == "TargetNotConnected":
        return TargetNotConnected(
            f"{where}: {detail or 'the target is not connected'}{tail}",
            hint="check that the instance is running and its SSM agent is Online "
            "(ssmtui doctor TARGET says why it is not)",
            **common,
        )
    if code in TARGET_CODES:
        return TargetError(
            f"{where}: {detail or 'no such instance'}{tail}",
            hint="check the instance id, profile and region",
            cause=exc,
        )
    message = f"{where}: {detail}{tail}" if detail else f"{where}: AWS error{tail}"
    return AwsError(message, **common)


def translate(
    exc: BaseException,
    *,
    profile: str | None = None,
    region: str | None = None,
    service: str | None = None,
    operation: str | None = None,
) -> SsmtuiError:
    """Map a botocore / aiobotocore exception to an :class:`SsmtuiError` (others: ``AwsError``).

    An :class:`SsmtuiError` is returned unchanged.
    """
    if isinstance(exc, SsmtuiError):
        return exc
    where = _where(profile, region)
    ctx: dict[str, Any] = {
        "cause": exc,
        "profile": profile,
        "region": region,
        "operation": operation,
        "service": service,
    }
    if isinstance(exc, bce.ClientError):
        return _client_error(exc, profile, region, service, operation)
    if isinstance(exc, bce.UnauthorizedSSOTokenError | bce.SSOTokenLoadError):
        return CredentialsError(
            f"{where}: the AWS SSO session has expired or is not logged in",
            hint=_login_hint(profile),
            code="SSOTokenExpired",
            **ctx,
        )
    if isinstance(exc, bce.TokenRetrievalError | bce.SSOError):
        return CredentialsError(
            f"{where}: could not refresh the AWS SSO token ({one_line(exc, 160)})",
            hint=_login_hint(profile),
            code="SSOTokenExpired",
            **ctx,
        )
    if isinstance(exc, bce.NoCredentialsError):
        return CredentialsError(
            f"{where}: no AWS credentials found",
            hint=f"run: aws configure --profile {profile or 'default'} "
            f"(or aws sso login --profile {profile or 'default'})",
            code="NoCredentials",
            **ctx,
        )
    if isinstance(exc, bce.PartialCredentialsError | bce.CredentialRetrievalError):
        return CredentialsError(
            f"{where}: could not load the AWS credentials ({one_line(exc, 160)})",
            hint=f"check profile {profile or 'default'} in ~/.aws/config and ~/.aws/credentials",
            code="CredentialsError",
            **ctx,
        )
    if isinstance(exc, bce.RefreshWithMFAUnsupportedError):
        return CredentialsError(
            f"{where}: the credentials need an MFA code to refresh",
            hint=f"refresh them outside ssmtui (e.g. {_login_hint(profile)})",
            code="MFARequired",
            **ctx,
        )
    if isinstance(exc, bce.ProfileNotFound):
        return ConfigError(
            f"unknown AWS profile {profile or getattr(exc, 'kwargs', {}).get('profile')!r}",
            hint="list profiles with: aws configure list-profiles",
            cause=exc,
        )
    if isinstance(exc, bce.NoRegionError | bce.InvalidRegionError):
        return ConfigError(
            f"{where}: no valid AWS region",
            hint="pass --region or set one with: aws configure set region REGION",
            cause=exc,
        )
    if isinstance(exc, bce.SSLError):
        return NetworkError(
            f"{where}: TLS certificate check failed ({one_line(exc, 200)})",
            hint="set ca_bundle in the config or AWS_CA_BUNDLE to your CA bundle",
            code="SSLError",
            **ctx,
        )
    if isinstance(exc, bce.ProxyConnectionError):
        return NetworkError(
            f"{where}: could not connect through the proxy ({one_line(exc, 200)})",
            hint="check HTTPS_PROXY / NO_PROXY or proxies in the config",
            code="ProxyError",
            **ctx,
        )
    if isinstance(exc, bce.ConnectTimeoutError | bce.ReadTimeoutError | TimeoutError):
        return NetworkError(
            f"{where}: AWS did not answer in time ({type(exc).__name__})",
            hint="check the network or VPN, or raise connect_timeout/read_timeout",
            code="Timeout",
            **ctx,
        )
    if isinstance(exc, bce.EndpointConnectionError | bce.ConnectionError | bce.HTTPClientError):
        return NetworkError(
            f"{where}: cannot reach AWS ({one_line(exc, 200)})",
            hint="check the network, VPN, proxy settings and endpoint overrides",
            code="ConnectionError",
            **ctx,
        )
    if isinstance(exc, bce.BotoCoreError):
        return AwsError(f"{where}: {one_line(exc, 240)}", code=type(exc).__name__, **ctx)
    if isinstance(exc, OSError):
        return NetworkError(f"{where}: network error ({one_line(exc, 200)})", code="OSError", **ctx)
    return AwsError(
        f"{where}: unexpected {type(exc).__name__}: {one_line(exc, 200)}",
        code=type(exc).__name__,
        **ctx,
    )


@contextmanager
def aws_errors(
    profile: str | None = None,
    region: str | None = None,
    service: str | None = None,
    operation: str | None = None,
) -> Iterator[None]:
    """Run a block of AWS calls; any non-ssmtui exception leaves it translated.

    Cancellation, ``KeyboardInterrupt`` and ``SystemExit`` pass through untouched.
    """
    try:
        yield
    except SsmtuiError:
        raise
    except Exception as exc:
        raise translate(
            exc, profile=profile, region=region, service=service, operation=operation
        ) from exc
