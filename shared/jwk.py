"""Asymmetric JWT keys (RS256, ES256): PEM loading with safety checks, RFC 7638 thumbprints as
`kid`, and the public JWKs that `GET /.well-known/jwks.json` publishes.

Only public halves ever leave this module as JWKs; a private key is only loaded to sign.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

MIN_RSA_BITS = 2048

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


def normalize_pem(text: str) -> bytes:
    """A PEM from an environment variable: `\\n` escapes (one-line variables) become newlines."""
    text = text.strip()
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    return text.encode()


def split_pems(text: str) -> list[bytes]:
    """Every PEM block of a variable holding several (separated by newlines, spaces or commas).

    Raises ValueError when anything else than separators sits between the blocks."""
    data = normalize_pem(text)
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(data)]
    if _PEM_BLOCK.sub(b"", data).strip(b" \t\r\n,"):
        raise ValueError("text outside PEM blocks")
    return blocks


def algorithm_of(key: PublicKey | PrivateKey) -> str:
    """The one JWS algorithm a key may be used with; ValueError for keys we refuse (weak or other)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys need at least {MIN_RSA_BITS} bits")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("ES256 keys must be on curve P-256")
        return "ES256"
    raise ValueError("only RSA and P-256 keys are supported")


def load_private_key(pem: bytes, algorithm: str, *, checked: bool = False) -> PrivateKey:
    """An unencrypted PEM private key that is safe for `algorithm`; ValueError otherwise.

    `checked=True` skips the RSA consistency check (~60 ms of a cold start) for a PEM that the
    settings loader already loaded with it in this process."""
    try:
        key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=checked)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not an unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("only RSA and P-256 keys are supported")
    if algorithm_of(key) != algorithm:
        raise ValueError(f"the key does not fit {algorithm}")
    return key


def load_public_key(pem: bytes) -> PublicKey:
    """A PEM public key (SPKI or PKCS#1) of a supported kind and size; ValueError otherwise."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not a PEM public key") from exc
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("only RSA and P-256 keys are supported")
    algorithm_of(key)
    return key


def generate_private_key_pem(algorithm: str) -> bytes:
    """A fresh private key for `algorithm` as PKCS#8 PEM (the local stage's per-process key)."""
    key: PrivateKey
    if algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    elif algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"not an asymmetric algorithm: {algorithm}")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: PrivateKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key's public half."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int, length: int = 0) -> str:
    return _b64(value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big"))


def _required_members(key: PublicKey) -> dict[str, str]:
    # RFC 7638 section 3.2: exactly the members that define the key, nothing else.
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"e": _uint(numbers.e), "kty": "RSA", "n": _uint(numbers.n)}
    point = key.public_numbers()
    size = (key.curve.key_size + 7) // 8
    return {"crv": "P-256", "kty": "EC", "x": _uint(point.x, size), "y": _uint(point.y, size)}


def thumbprint(key: PublicKey) -> str:
    """The RFC 7638 SHA-256 JWK thumbprint, base64url: our `kid` for an asymmetric key."""
    canonical = json.dumps(_required_members(key), sort_keys=True, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode()).digest())


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The public JWK of a key, as published: `kty`, `kid`, `use`, `alg` and the key's numbers."""
    members = _required_members(key)
    return {
        "kty": members.pop("kty"),
        "kid": thumbprint(key),
        "use": "sig",
        "alg": algorithm_of(key),
        **members,
    }
