"""What the benchmark sends each function, and the DynamoDB items those requests find.

Every endpoint gets its own user and session, so one endpoint's writes (logout revokes its session,
logout-all every session of its user) never change what another endpoint reads. Runs in the parent
process only: it imports `shared` to sign tokens, and writes the items through the DynamoDB adapter
(into the benchmark's in-memory fake), exactly as the service writes them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fakes import SESSION_KEY

# The settings every process of a run uses: a deployed-like stage with every setting present.
BENCH_ENV = {
    "STAGE": "bench",
    "WX_APPID": "wx-bench-appid",
    "WX_SECRET": "wx-bench-secret-0123456789",
    "WX_API_BASE": "https://api.weixin.qq.com",
    "JWT_SECRET": "bench-jwt-secret-that-is-long-enough-0123456789",
    "SESSION_KEY_ENCRYPTION_KEY": base64.b64encode(b"bench-encryption-key-32-bytes!!!").decode(),
    "AVATAR_BUCKET": "wx-login-avatars-bench",
    "AVATAR_BASE_URL": "https://avatars.example.com",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"


@dataclass(frozen=True)
class Endpoint:
    """One request shape. A `{n}` in the body is replaced by a number unique to each call."""

    name: str
    event: dict[str, Any]
    unique: bool = False


@dataclass
class Plan:
    """The endpoints of every function and the items the in-memory DynamoDB starts with."""

    endpoints: dict[str, list[Endpoint]] = field(default_factory=dict)
    key_names: dict[str, str] = field(default_factory=dict)
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Functions the benchmark has no request for: their first event is a best guess (see generic()).
    guessed: set[str] = field(default_factory=set)


def discover_functions() -> list[str]:
    """Every `functions/*.py` that exposes a handler, as module names."""
    return [
        f"functions.{path.stem}"
        for path in sorted((ROOT / "functions").glob("*.py"))
        if path.stem != "__init__" and "handler" in path.read_text(encoding="utf-8")
    ]


def event(
    method: str, path: str, body: Any = None, token: str | None = None, *, prefix: str = API
) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) event, as Lambda delivers it."""
    from tests.lambda_events import apigw_v2

    headers = {"authorization": f"Bearer {token}"} if token else None
    return apigw_v2(method, prefix + path, body, headers)


class Builder:
    """Creates accounts (user + live session + tokens) in the plan's initial DynamoDB items."""

    def __init__(self) -> None:
        os.environ.update(BENCH_ENV)
        from bench.fakes import FakeDynamoDB
        from shared.settings import load_settings
        from shared.storage.dynamodb import DynamoDBStorage

        self.settings = load_settings(BENCH_ENV)
        if self.settings.problems:
            raise RuntimeError(f"bench settings rejected: {self.settings.problems}")
        self.plan = Plan()
        # The adapter writes into the fake (this process never talks to DynamoDB otherwise); the
        # fake's tables become the plan's initial items.
        self.store = DynamoDBStorage(self.settings)
        self.plan.key_names = self.store.key_names()
        self._fake = FakeDynamoDB(self.plan.key_names, {})
        self.store.client.meta.events.register_first("before-send.dynamodb", self._fake.before_send)

    def items(self) -> dict[str, list[dict[str, Any]]]:
        """What the adapter wrote so far, by table."""
        return {table: list(rows.values()) for table, rows in self._fake.tables.items()}

    def user(self, name: str) -> tuple[str, int]:
        """A stored user (openid `bench-NAME`, as the fake WeChat names it); answers (openid, id)."""
        from shared import clock
        from shared.crypto import encrypt_at_rest
        from shared.keys import session_key_cipher_key
        from shared.storage.base import LoginUpsert

        openid = f"bench-{name}"
        now = clock.now()
        key = session_key_cipher_key(self.settings)
        change = LoginUpsert(
            openid=openid,
            session_key_enc=encrypt_at_rest(key, SESSION_KEY, openid),
            unionid=None,
            nickname=name,
            avatar="https://example.com/a.png",
            stamp=clock.iso_ms(now),
            now=now,
            rate=None,
        )
        user, _ = self.store.upsert_user_on_login(change)
        return openid, user.id

    def account(self, name: str) -> tuple[str, str]:
        """A stored user with a live session: answers (access token, refresh token)."""
        from shared import clock
        from shared.auth import access_token_answer
        from shared.sessions import start_session
        from shared.storage.base import User

        openid, user_id = self.user(name)
        now = clock.now()
        issued = start_session(
            self.store, user_id=user_id, openid=openid, refresh_ttl=self.settings.refresh_token_ttl, now=now
        )
        user = User(id=user_id, openid=openid, nickname=name)
        access = access_token_answer(self.settings, user, issued.session, now)
        return access.access_token, issued.refresh_token


def _login(b: Builder) -> list[Endpoint]:
    b.user("ret")
    return [
        Endpoint("login, returning user", event("POST", "/auth/wx-login", {"code": "ret.{n}"}), unique=True),
        Endpoint(
            "login, new user",
            event("POST", "/auth/wx-login", {"code": "new{n}.x", "nickName": "新用户"}),
            unique=True,
        ),
    ]


def _refresh(b: Builder) -> list[Endpoint]:
    _, refresh = b.account("refresh-rt")
    access, _ = b.account("refresh-at")
    return [
        Endpoint("refresh, refresh token", event("POST", "/auth/refresh", {"refresh_token": refresh})),
        Endpoint("refresh, access token", event("POST", "/auth/refresh", token=access)),
    ]


def _logout(b: Builder) -> list[Endpoint]:
    one, _ = b.account("logout")
    everywhere, _ = b.account("logout-all")
    return [
        Endpoint("logout", event("POST", "/auth/logout", token=one)),
        Endpoint("logout, all", event("POST", "/auth/logout", {"all": True}, token=everywhere)),
    ]


def _profile(b: Builder) -> list[Endpoint]:
    reader, _ = b.account("profile-get")
    writer, _ = b.account("profile-patch")
    return [
        Endpoint("profile GET", event("GET", "/user/profile", token=reader)),
        Endpoint("profile PATCH", event("PATCH", "/user/profile", {"bio": "写点什么"}, token=writer)),
    ]


def _session_check(b: Builder) -> list[Endpoint]:
    access, _ = b.account("session-check")
    return [Endpoint("session-check", event("GET", "/auth/session-check", token=access))]


def _phone(b: Builder) -> list[Endpoint]:
    access, _ = b.account("phone")
    return [Endpoint("phone, code", event("POST", "/auth/phone", {"code": "phone-code"}, token=access))]


def _encrypted(appid: str, payload: dict[str, Any]) -> dict[str, str]:
    """`encryptedData`/`iv` as WeChat makes them: AES-128-CBC, PKCS#7, with the user's session_key."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    data = json.dumps({**payload, "watermark": {"appid": appid, "timestamp": 1700000000}}).encode()
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(SESSION_KEY)), modes.CBC(iv)).encryptor()
    sealed = encryptor.update(padded) + encryptor.finalize()
    return {"encryptedData": base64.b64encode(sealed).decode(), "iv": base64.b64encode(iv).decode()}


def _decrypt(b: Builder) -> list[Endpoint]:
    access, _ = b.account("decrypt")
    body = _encrypted(b.settings.wx_appid, {"stepInfoList": [{"timestamp": 1700000000, "step": 1234}]})
    return [Endpoint("wechat decrypt", event("POST", "/wechat/decrypt", body, token=access))]


def _avatar(b: Builder) -> list[Endpoint]:
    access, _ = b.account("avatar")
    boundary = "benchboundary"
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    avatar = event("POST", "/user/avatar", token=access)
    avatar["headers"].update(
        {"content-type": f"multipart/form-data; boundary={boundary}", "content-length": str(len(body))}
    )
    avatar.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)
    return [Endpoint("avatar upload", avatar)]


def _jwks(_: Builder) -> list[Endpoint]:
    return [Endpoint("JWKS", event("GET", "/.well-known/jwks.json", prefix=""))]


KNOWN: dict[str, Callable[[Builder], list[Endpoint]]] = {
    "functions.login": _login,
    "functions.refresh": _refresh,
    "functions.logout": _logout,
    "functions.profile": _profile,
    "functions.session_check": _session_check,
    "functions.phone": _phone,
    "functions.decrypt": _decrypt,
    "functions.avatar": _avatar,
    "functions.jwks": _jwks,
}


def _generic(b: Builder, module_name: str) -> list[Endpoint]:
    """A function the benchmark does not know: an authenticated call to each of its routes."""
    import importlib

    access, _ = b.account(module_name.rsplit(".", 1)[1])
    app = importlib.import_module(module_name).app
    endpoints = []
    for path, operations in app.openapi().get("paths", {}).items():
        for method in sorted(operations):
            verb = method.upper()
            body: dict[str, Any] | None = {} if verb in ("POST", "PUT", "PATCH") else None
            endpoints.append(Endpoint(f"{verb} {path}", event(verb, path, body, token=access, prefix="")))
    return endpoints


def build_plan(functions: list[str]) -> Plan:
    """Requests and initial items for `functions`."""
    builder = Builder()
    for name in functions:
        make = KNOWN.get(name)
        if make is None:
            builder.plan.guessed.add(name)
            builder.plan.endpoints[name] = _generic(builder, name)
        else:
            builder.plan.endpoints[name] = make(builder)
    builder.plan.items = builder.items()
    return builder.plan
