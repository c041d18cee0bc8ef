"""Asymmetric test keys, generated once per test process (RSA generation costs ~0.1 s a key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.settings import Settings, load_settings

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

BASE_ENV = {
    "STAGE": "local",
    "WX_APPID": "wxapp",
    "JWT_SECRET": "s" * 40,
    "SESSION_KEY_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
}


@cache
def rsa_key(name: str = "current", bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_key(name: str = "current", curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1() if curve == "P-256" else ec.SECP384R1())


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def asymmetric_env(
    algorithm: str, *previous: PrivateKey, base: dict[str, str] | None = None
) -> dict[str, str]:
    """An environment that signs with the current key of `algorithm`; `previous` keys still verify."""
    key: PrivateKey = rsa_key() if algorithm == "RS256" else ec_key()
    env = {**(base or BASE_ENV), "JWT_ALGORITHM": algorithm, "JWT_PRIVATE_KEY": private_pem(key)}
    if previous:
        env["JWT_PREVIOUS_PUBLIC_KEYS"] = "\n".join(public_pem(k) for k in previous)
    return env


@cache
def asymmetric_settings(algorithm: str, with_previous: bool = True) -> Settings:
    """Settings signing with RS256/ES256; the other kind's key (and a second RSA key) still verify."""
    previous: tuple[PrivateKey, ...] = (rsa_key("previous"), ec_key("previous")) if with_previous else ()
    return load_settings(asymmetric_env(algorithm, *previous))


def b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Forger:
    """Signs exactly what an attacker (or a buggy issuer) would send, with our keys unless told."""

    def __init__(self, settings: Settings, base_claims: dict[str, Any] | None = None) -> None:
        from shared.keys import jwt_keys

        self.settings = settings
        self.keys = jwt_keys(settings)
        self.algorithm = self.keys.signing_algorithm
        self.kid = self.keys.signing_kid
        self.base_claims = base_claims

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Valid claims (those of `base_claims`, or user 7's) with `changes`; None removes a claim."""
        now = int(time.time())
        base = self.base_claims or {"sub": "7", "openid": "o-7", "nickname": "n", "sid": "sid-7"}
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            **base,
            "iat": now,
            "exp": now + 600,
            "jti": "j",
            **changes,
        }
        return {k: v for k, v in claims.items() if v is not None}

    def sign_raw(self, header: Any, payload: Any, key: Any = None, algorithm: str | None = None) -> str:
        """A JWS over exactly these header and payload texts (or JSON-encoded objects)."""
        algorithm = algorithm or self.algorithm
        head = header if isinstance(header, str) else json.dumps(header)
        body = payload if isinstance(payload, str) else json.dumps(payload)
        signing_input = f"{b64(head.encode())}.{b64(body.encode())}".encode()
        impl = jwt.get_algorithm_by_name(algorithm)
        signature = impl.sign(signing_input, impl.prepare_key(self.keys.signing_key if key is None else key))
        return f"{signing_input.decode()}.{b64(signature)}"

    def sign(self, claims: dict[str, Any] | None = None, **header: Any) -> str:
        """Our usual header (plus `header`) over `claims`, signed with our signing key."""
        full_header = {"alg": self.algorithm, "kid": self.kid, "typ": "JWT", **header}
        return self.sign_raw(full_header, self.claims() if claims is None else claims)


def hmac_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token MAC'd with any bytes (e.g. our public key: the algorithm-confusion attack)."""
    signing_input = f"{b64(header)}.{b64(payload)}".encode()
    return f"{signing_input.decode()}.{b64(hmac.new(secret, signing_input, hashlib.sha256).digest())}"
