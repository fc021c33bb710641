"""Scrub well-known secret shapes from text before it is written to disk.

What is scrubbed (the value is replaced by ``[redacted]``, the name before it is kept):

* AWS access key ids: ``AKIA…`` / ``ASIA…`` (and the rarer ``ABIA…`` / ``ACCA…``), 20 characters;
* assignments of ``aws_secret_access_key``, ``aws_session_token`` and ``aws_security_token``
  (``=`` or ``:``, any case: ``~/.aws/credentials`` lines, ``export AWS_SECRET_ACCESS_KEY=…``);
* the value after ``SecretAccessKey``, ``SessionToken`` and ``TokenValue`` (``aws sts
  assume-role`` / ``get-session-token`` JSON, StartSession output), and after the
  ``X-Amz-Security-Token`` header and a SigV4 ``Signature`` (request logs): 16+ key-like
  characters;
* ``Bearer <token>`` (HTTP ``Authorization`` headers);
* ``password=…`` / ``passwd=…`` assignments;
* secret-looking URL query parameters: ``X-Amz-Security-Token``, ``X-Amz-Signature``,
  ``X-Amz-Credential``, ``token``, ``access_token``, ``id_token``, ``refresh_token``, ``sig``,
  ``signature``, ``password``, ``secret``, ``api_key`` / ``apikey``.

This is a safety net for well-known shapes, not a guarantee: a secret in an unknown format (a
private key block, a database password in a connection string without ``password=``) is not
recognised. :class:`StreamRedactor` does the same on a stream whose chunks may split a secret.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "StreamRedactor", "scrub"]

#: What a secret value is replaced with.
REDACTED = "[redacted]"

_ACCESS_KEY_ID = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])")
# (name)(separator)(value): the value is replaced, the rest kept.
_ASSIGNMENTS = (
    re.compile(
        r"(?i)\b(aws_secret_access_key|aws_session_token|aws_security_token)"
        r"([\"']?[ \t]*[=:][ \t]*[\"']?)([^\s\"',;]+)"
    ),
    re.compile(
        r"(?i)(SecretAccessKey|SessionToken|TokenValue|X-Amz-Security-Token|Signature)"
        r"([\"']?[ \t]*[=:][ \t]*[\"']?)([A-Za-z0-9/+=_\-.]{16,})"
    ),
    re.compile(r"(?i)\b(Bearer)([ \t]+)([A-Za-z0-9\-._~+/]{8,}=*)"),
    re.compile(r"(?i)\b(password|passwd)([ \t]*=[ \t]*[\"']?)([^\s\"'&]+)"),
    re.compile(
        r"(?i)([?&](?:X-Amz-Security-Token|X-Amz-Signature|X-Amz-Credential|token|access_token"
        r"|id_token|refresh_token|sig|signature|password|secret|api_?key))(=)([^&\s\"'<>#]+)"
    ),
)
# A line ending in a secret's name (and separator) whose value has not arrived yet.
_NAME_AT_END = re.compile(
    r"(?i)(aws_secret_access_key|aws_session_token|aws_security_token|SecretAccessKey"
    r"|SessionToken|TokenValue|Bearer|password|passwd)[\"']?[ \t]*[=:]?[ \t]*[\"']?\Z"
)


def scrub(text: str) -> str:
    """``text`` with every recognised secret value replaced by :data:`REDACTED`."""
    if not text:
        return text
    out = _ACCESS_KEY_ID.sub(REDACTED, text)
    for pattern in _ASSIGNMENTS:
        out = pattern.sub(lambda m: m.group(1) + m.group(2) + REDACTED, out)
    return out


class StreamRedactor:
    """:func:`scrub` over a stream: text is released at whitespace boundaries, so a secret split
    across chunks is still seen whole.

    A trailing word (no whitespace after it yet) and a trailing secret name waiting for its value
    are held back until more text arrives, :meth:`flush` is called, or more than ``max_hold``
    characters are pending (then everything pending is scrubbed and released).
    """

    def __init__(self, max_hold: int = 4096) -> None:
        self.max_hold = max_hold
        self._pending = ""

    @property
    def pending(self) -> str:
        """Text held back so far (not scrubbed yet)."""
        return self._pending

    def feed(self, text: str) -> str:
        """Add ``text``; returns the scrubbed text that is safe to release now."""
        buf = self._pending + text
        cut = len(buf)
        while cut > 0 and not buf[cut - 1].isspace():
            cut -= 1
        if cut:
            line_start = buf.rfind("\n", 0, cut) + 1
            named = _NAME_AT_END.search(buf, line_start, cut)
            if named is not None:
                cut = named.start()
        if len(buf) - cut > self.max_hold:
            cut = len(buf)
        self._pending = buf[cut:]
        return scrub(buf[:cut])

    def flush(self) -> str:
        """Release (scrubbed) whatever is pending."""
        out, self._pending = self._pending, ""
        return scrub(out)
