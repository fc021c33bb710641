"""Session encryption for KMS-enabled sessions (PROTOCOL.md §6), without any KMS call.

The 64-byte KMS data key is split per direction: the agent encrypts with ``key[0:32]`` and
decrypts with ``key[32:64]``; the client does the opposite. AES-256-GCM, 12-byte nonce, 16-byte
tag, no associated data; an encrypted payload is ``nonce ‖ ciphertext ‖ tag`` (plaintext + 28).
Nonces come from an injected source so the core stays deterministic under test: the client uses
random nonces, the agent a 96-bit counter from a random start (three little-endian u32 words).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

__all__ = [
    "DATA_KEY_BYTES",
    "OVERHEAD",
    "CounterNonces",
    "DecryptError",
    "RandomNonces",
    "SessionCipher",
]

DATA_KEY_BYTES = 64
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES
_WORDS = struct.Struct("<III")


class DecryptError(ValueError):
    """An encrypted payload failed authentication (wrong key, or not encrypted at all)."""


class RandomNonces:
    """A fresh random nonce per message (what the reference client does)."""

    def __init__(self, random_bytes: Callable[[int], bytes]) -> None:
        self._random = random_bytes

    def __call__(self) -> bytes:
        return self._random(NONCE_BYTES)


class CounterNonces:
    """The agent nonce: a 96-bit counter (three little-endian u32 words) incremented with carry."""

    def __init__(self, start: bytes) -> None:
        if len(start) != NONCE_BYTES:
            raise ValueError("nonce start must be 12 bytes")
        self._words = list(_WORDS.unpack(start))

    def __call__(self) -> bytes:
        nonce = _WORDS.pack(*self._words)
        for i in range(3):
            self._words[i] = (self._words[i] + 1) & 0xFFFFFFFF
            if self._words[i]:
                break
        return nonce


class SessionCipher:
    """Encrypts what this side sends and decrypts what the peer sends, given the data key."""

    def __init__(self, data_key: bytes, *, client: bool, nonces: Callable[[], bytes]) -> None:
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError(f"KMS data key must be {DATA_KEY_BYTES} bytes, got {len(data_key)}")
        # Imported here: cryptography costs ~6 MB, and most sessions are not KMS-encrypted.
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        agent_key, client_key = data_key[:32], data_key[32:]
        self._invalid_tag: type[Exception] = InvalidTag
        self._encrypt = AESGCM(client_key if client else agent_key)
        self._decrypt = AESGCM(agent_key if client else client_key)
        self._nonces = nonces

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = self._nonces()
        return nonce + self._encrypt.encrypt(nonce, plaintext, None)

    def decrypt(self, blob: bytes) -> bytes:
        if len(blob) < OVERHEAD:
            raise DecryptError(f"encrypted payload of {len(blob)} bytes is too short")
        try:
            return self._decrypt.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None)
        except self._invalid_tag:
            raise DecryptError("encrypted payload failed authentication") from None
