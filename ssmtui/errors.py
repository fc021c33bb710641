"""The error tree every layer raises.

Each error carries a one-line, user-facing :attr:`~SsmtuiError.message` (``str(err)`` is exactly
that line), an optional :attr:`~SsmtuiError.hint` saying what to do about it, and the underlying
:attr:`~SsmtuiError.cause`. The CLI prints ``ssmtui: <message>`` and ``hint: <hint>``; the UI shows
the same two lines. Nothing here imports anything heavy.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AccessDenied",
    "AwsError",
    "ConfigError",
    "CredentialsError",
    "NetworkError",
    "ProtocolFailure",
    "SessionError",
    "SsmtuiError",
    "TargetError",
    "TargetNotConnected",
    "Throttled",
    "UsageError",
    "one_line",
]


def one_line(text: object, limit: int = 400) -> str:
    """``text`` collapsed to one line (whitespace runs -> one space), cut at ``limit`` chars."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class SsmtuiError(Exception):
    """Base of every error ssmtui reports to a person.

    ``exit_code`` is what the CLI exits with (1 = runtime failure, 2 = usage).
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        self.message = one_line(message)
        self.hint = one_line(hint) if hint else None
        self.cause = cause
        super().__init__(self.message)
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def lines(self) -> list[str]:
        """The message and, if any, ``hint: …``: what a person should see."""
        return [self.message] + ([f"hint: {self.hint}"] if self.hint else [])


class UsageError(SsmtuiError):
    """Bad command-line usage (unknown verb, bad flag value, bad filter syntax)."""

    exit_code = 2


class ConfigError(SsmtuiError):
    """A bad ssmtui config file / setting, or an AWS profile/region that cannot be used."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        cause: BaseException | None = None,
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        if path:
            message = f"{path}:{line}: {message}" if line else f"{path}: {message}"
        super().__init__(message, hint=hint, cause=cause)


class AwsError(SsmtuiError):
    """An AWS API call failed. Knows where: profile, region, operation, and the request id."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        cause: BaseException | None = None,
        code: str | None = None,
        request_id: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        operation: str | None = None,
        service: str | None = None,
    ) -> None:
        self.code = code
        self.request_id = request_id
        self.profile = profile
        self.region = region
        self.operation = operation
        self.service = service
        super().__init__(message, hint=hint, cause=cause)

    @property
    def scope(self) -> str | None:
        """``profile/region`` when both are known."""
        if self.profile and self.region:
            return f"{self.profile}/{self.region}"
        return self.profile or self.region


class CredentialsError(AwsError):
    """Credentials are missing, invalid or expired (incl. an expired SSO token)."""


class AccessDenied(AwsError):
    """The caller is not allowed to perform the operation (IAM / SCP / KMS key policy)."""


class Throttled(AwsError):
    """AWS throttled the calls and the retries ran out."""


class NetworkError(AwsError):
    """The endpoint could not be reached or did not answer (DNS, TLS, proxy, timeout)."""


class TargetError(SsmtuiError):
    """A target matched no instance, or several; ``candidates`` lists them (display strings)."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        cause: BaseException | None = None,
        target: str | None = None,
        candidates: Sequence[str] = (),
    ) -> None:
        self.target = target
        self.candidates = tuple(candidates)
        super().__init__(message, hint=hint, cause=cause)


class TargetNotConnected(AwsError):
    """The instance exists but its agent is not connected (SSM ``TargetNotConnected``)."""


class SessionError(SsmtuiError):
    """A session could not be started, resumed or kept (beyond the AWS API call itself)."""


class ProtocolFailure(SessionError):
    """The data channel broke the Session Manager protocol (bad frame, handshake, digest)."""
