"""Encryption at rest (AES-256-GCM) and the keyed hashes the service stores instead of secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_VERSION = "v1"


class DecryptionError(Exception):
    """Stored ciphertext did not decrypt with the configured key."""


def encrypt_at_rest(key: bytes, plaintext: str, context: str) -> str:
    """Encrypt `plaintext` with AES-256-GCM; `context` (e.g. the openid) is bound as associated data."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{_VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt_at_rest(key: bytes, token: str, context: str) -> str:
    """Reverse of `encrypt_at_rest`; raises DecryptionError on a wrong key, context or tampering."""
    version, _, payload = token.partition(":")
    if version != _VERSION:
        raise DecryptionError("unknown ciphertext version")
    try:
        raw = base64.b64decode(payload, validate=True)
        plaintext = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError("ciphertext does not decrypt") from exc
    return plaintext.decode()


def sha256_hex(value: str) -> str:
    """Hex SHA-256 of a high-entropy value (refresh tokens, login codes) for storage and lookup."""
    return hashlib.sha256(value.encode()).hexdigest()


def derive_key(master: bytes, purpose: str) -> bytes:
    """A sub-key for one purpose, so one configured key never serves two uses directly."""
    return hmac.new(master, purpose.encode(), hashlib.sha256).digest()
