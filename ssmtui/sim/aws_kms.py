"""Simulated AWS KMS (JSON 1.1, ``X-Amz-Target: TrentService.<Op>``): GenerateDataKey, Decrypt.

Ciphertext blobs are sealed with AES-256-GCM under an in-memory master key; the key ARN and the
canonical JSON of the encryption context are the associated data, so Decrypt with a different
context fails with ``InvalidCiphertextException`` just like real KMS.

:class:`SimKms` is also usable directly from Python: the simulated agent generates the session
data key with it (as the real agent does with its instance role) without going through HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ssmtui.sim.aws_wire import AwsError

if TYPE_CHECKING:
    from ssmtui.sim.state import RequestContext

__all__ = ["KMS_OPERATIONS", "SimKms"]

_MAGIC = b"SIMKMS\x01"
_NS = uuid.UUID("6b6d732d-7369-6d2d-7373-6d7475690000")
_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:(?P<region>[^:]+):(?P<account>\d{12}):(?P<res>.+)$")
_KEY_SPECS = {"AES_256": 32, "AES_128": 16}


class SimKms:
    """Symmetric KMS keys for every id or alias, except a configurable forbidden set."""

    def __init__(self, forbidden: Iterable[str] = ()) -> None:
        self._master = AESGCM(AESGCM.generate_key(bit_length=256))
        #: Key ids, key ARNs, aliases (``alias/x``) or alias ARNs that are AccessDenied.
        self.forbidden: set[str] = set(forbidden)
        #: Key ARN -> every name it was used under (aliases), so a forbidden alias also
        #: denies Decrypt of blobs made under it.
        self._names: dict[str, set[str]] = {}

    def resolve_key(self, account_id: str, region: str, key_id: str) -> tuple[str, set[str]]:
        """Map a KeyId (key id, key ARN, alias name or alias ARN) to ``(key_arn, names)``.

        ``names`` holds every spelling of the key that a forbidden entry can match. Aliases map
        to a stable key id derived from the account, region and alias name.
        """
        if not key_id:
            raise AwsError("ValidationException", "KeyId must not be empty")
        names = {key_id}
        match = _ARN_RE.match(key_id)
        if match:
            account_id, region, resource = match["account"], match["region"], match["res"]
        else:
            resource = key_id if key_id.startswith("alias/") else f"key/{key_id}"
        if resource.startswith("alias/"):
            names.update({resource, f"arn:aws:kms:{region}:{account_id}:{resource}"})
            key_uuid = str(uuid.uuid5(_NS, f"{account_id}:{region}:{resource}"))
        elif resource.startswith("key/"):
            key_uuid = resource[4:]
        else:
            raise AwsError("NotFoundException", f"Invalid keyId '{key_id}'")
        arn = f"arn:aws:kms:{region}:{account_id}:key/{key_uuid}"
        names.update({key_uuid, arn})
        known = self._names.setdefault(arn, set())
        known.update(names)
        return arn, set(known)

    def _check(self, names: set[str], principal: str | None, action: str, arn: str) -> None:
        if principal is not None and names & self.forbidden:
            raise AwsError(
                "AccessDeniedException",
                f"User: {principal} is not authorized to perform: kms:{action} on resource: "
                f"{arn} because no identity-based policy allows the kms:{action} action",
            )

    @staticmethod
    def _aad(key_arn: str, context: Mapping[str, str]) -> bytes:
        canonical = json.dumps(dict(context), sort_keys=True, separators=(",", ":"))
        return key_arn.encode() + b"\x00" + canonical.encode()

    def generate_data_key(
        self,
        account_id: str,
        region: str,
        key_id: str,
        context: Mapping[str, str] | None = None,
        number_of_bytes: int = 32,
        *,
        principal: str | None = None,
    ) -> tuple[bytes, bytes, str]:
        """Return ``(plaintext, ciphertext_blob, key_arn)`` for a fresh data key.

        ``principal`` (a caller ARN) enables the forbidden-key check; None skips it (service use).
        """
        arn, names = self.resolve_key(account_id, region, key_id)
        self._check(names, principal, "GenerateDataKey", arn)
        plaintext = os.urandom(number_of_bytes)
        return plaintext, self.seal(arn, plaintext, context or {}), arn

    def seal(self, key_arn: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        """Encrypt ``plaintext`` under ``key_arn`` bound to ``context`` (a ciphertext blob)."""
        nonce = os.urandom(12)
        sealed = self._master.encrypt(nonce, plaintext, self._aad(key_arn, context))
        arn = key_arn.encode()
        return _MAGIC + struct.pack(">H", len(arn)) + arn + nonce + sealed

    def decrypt(
        self,
        account_id: str,
        region: str,
        blob: bytes,
        context: Mapping[str, str] | None = None,
        key_id: str | None = None,
        *,
        principal: str | None = None,
    ) -> tuple[bytes, str]:
        """Return ``(plaintext, key_arn)``; errors as real KMS raises them."""
        invalid = AwsError("InvalidCiphertextException", "")
        if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + 2:
            raise invalid
        (arn_len,) = struct.unpack(">H", blob[len(_MAGIC) : len(_MAGIC) + 2])
        start = len(_MAGIC) + 2
        arn = blob[start : start + arn_len].decode(errors="replace")
        rest = blob[start + arn_len :]
        match = _ARN_RE.match(arn)
        if match is None or len(rest) < 12 + 16:
            raise invalid
        _, names = self.resolve_key(match["account"], match["region"], arn)
        if key_id is not None:
            wanted, _ = self.resolve_key(account_id, region, key_id)
            if wanted != arn:
                raise AwsError(
                    "IncorrectKeyException",
                    "The key ID in the request does not identify a CMK that can perform this "
                    "operation.",
                )
        if principal is not None and match["account"] != account_id:
            # Cross-account use: the simulated keys carry no key policy granting it.
            raise AwsError(
                "AccessDeniedException",
                f"User: {principal} is not authorized to perform: kms:Decrypt on resource: {arn}",
            )
        self._check(names, principal, "Decrypt", arn)
        try:
            plaintext = self._master.decrypt(rest[:12], rest[12:], self._aad(arn, context or {}))
        except InvalidTag:
            raise invalid from None
        return plaintext, arn


# --------------------------------------------------------------------------- JSON operations


def _blob(params: Mapping[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(str(params.get(name, "")), validate=True)
    except (binascii.Error, ValueError):
        raise AwsError("SerializationException", f"{name} is not valid base64") from None


def _context(params: Mapping[str, Any]) -> dict[str, str]:
    raw = params.get("EncryptionContext") or {}
    if not isinstance(raw, dict):
        raise AwsError("SerializationException", "EncryptionContext must be a map")
    return {str(k): str(v) for k, v in raw.items()}


def generate_data_key(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """KMS GenerateDataKey."""
    spec, count = params.get("KeySpec"), params.get("NumberOfBytes")
    if spec is not None and count is not None:
        raise AwsError("ValidationException", "Please specify either number of bytes or key spec.")
    if spec is not None:
        if spec not in _KEY_SPECS:
            raise AwsError(
                "ValidationException",
                f"1 validation error detected: Value '{spec}' at 'keySpec' failed to satisfy "
                "constraint: Member must satisfy enum value set: [AES_256, AES_128]",
            )
        count = _KEY_SPECS[spec]
    count = 32 if count is None else count
    if not isinstance(count, int) or not 1 <= count <= 1024:
        raise AwsError(
            "ValidationException",
            f"1 validation error detected: Value '{count}' at 'numberOfBytes' failed to satisfy "
            "constraint: Member must have value between 1 and 1024",
        )
    caller = ctx.caller
    plaintext, blob, arn = ctx.state.kms.generate_data_key(
        caller.account_id,
        caller.region,
        str(params.get("KeyId", "")),
        _context(params),
        count,
        principal=caller.arn,
    )
    return {
        "CiphertextBlob": base64.b64encode(blob).decode(),
        "Plaintext": base64.b64encode(plaintext).decode(),
        "KeyId": arn,
    }


def decrypt(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """KMS Decrypt (symmetric)."""
    caller = ctx.caller
    key_id = params.get("KeyId")
    plaintext, arn = ctx.state.kms.decrypt(
        caller.account_id,
        caller.region,
        _blob(params, "CiphertextBlob"),
        _context(params),
        str(key_id) if key_id else None,
        principal=caller.arn,
    )
    return {
        "KeyId": arn,
        "Plaintext": base64.b64encode(plaintext).decode(),
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }


#: Operation name -> handler.
KMS_OPERATIONS: dict[str, Callable[[RequestContext, dict[str, Any]], dict[str, Any]]] = {
    "GenerateDataKey": generate_data_key,
    "Decrypt": decrypt,
}
