"""KMS GenerateDataKey for KMS-encrypted sessions (the data channel asks, this answers)."""

from __future__ import annotations

from typing import Any

__all__ = ["generate_session_key"]


async def generate_session_key(
    kms: Any, key_id: str, encryption_context: dict[str, str]
) -> tuple[bytes, bytes]:
    """(plaintext, ciphertext blob) of a 64-byte data key bound to the session's context.

    The agent decrypts the blob with the same context, so SessionId and TargetId must be the
    session's own (PROTOCOL.md §6.1)."""
    try:
        resp = await kms.generate_data_key(
            KeyId=key_id, NumberOfBytes=64, EncryptionContext=encryption_context
        )
    except Exception as exc:
        try:
            from ssmtui.aws.errors import translate
        except ImportError:
            raise
        raise translate(exc, operation="GenerateDataKey") from exc
    return bytes(resp["Plaintext"]), bytes(resp["CiphertextBlob"])
