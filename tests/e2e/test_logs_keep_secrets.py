"""A full run against a dev server logging at DEBUG, over real sockets (httpx, httpcore and botocore all
at work): every line is JSON, every request has its access line, and none of the secrets handed out
during the run appears anywhere in the server's output."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from local.stack import Stack, running_stack
from local.wechat_sim import openid_for
from tests.conftest import TEST_ENV

PHONE = "13912345678"


@pytest.fixture(scope="module")
def debug_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_path: Path = tmp_path_factory.mktemp("debug-devserver") / "server.log"
    with running_stack({**TEST_ENV, "LOG_LEVEL": "DEBUG"}, log_path) as stack:
        yield stack


class Run:
    """Talks to the server and remembers every secret it handed out or was handed."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=f"{stack.url}/api/v1", timeout=20)
        self.secrets: set[str] = {
            TEST_ENV["WX_SECRET"],
            TEST_ENV["JWT_SECRET"],
            TEST_ENV["SESSION_KEY_ENCRYPTION_KEY"],
            PHONE,
        }
        self.requests = 0

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.requests += 1
        response = self.http.request(method, path, headers=headers, **kwargs)
        for name in ("access_token", "refresh_token"):
            value = (response.json().get("data") or {}).get(name) if response.content else None
            if isinstance(value, str):
                self.secrets.add(value)
        return response

    def login(self, code: str, **fields: Any) -> httpx.Response:
        self.secrets.add(code)
        return self.call("POST", "/auth/wx-login", json={"code": code, **fields})


def test_a_full_run_at_debug_logs_json_lines_and_no_secret(debug_stack):
    run = Run(debug_stack)
    name = f"lg{secrets.token_hex(4)}"
    openid = openid_for(name)

    first = run.login(f"{name}.{secrets.token_hex(6)}", nickName="日志")
    assert first.status_code == 200, first.text
    tokens = first.json()["data"]
    again = run.login(f"{name}.{secrets.token_hex(6)}", phoneCode=f"phone.{PHONE}.{secrets.token_hex(3)}")
    assert again.status_code == 200 and again.json()["data"]["phone_masked"] == "139****5678", again.text
    other = again.json()["data"]

    assert run.call("GET", "/user/profile", tokens["access_token"]).status_code == 200
    assert run.call("PATCH", "/user/profile", tokens["access_token"], json={"bio": "b"}).status_code == 200
    assert run.call("GET", "/auth/session-check", other["access_token"]).json()["data"] == {"valid": True}
    encrypted, iv = debug_stack.simulator.encrypt_for(openid, {"stepInfoList": [{"step": 4321}]})
    run.secrets |= {encrypted, iv}
    decrypted = run.call(
        "POST", "/wechat/decrypt", other["access_token"], json={"encryptedData": encrypted, "iv": iv}
    )
    assert decrypted.status_code == 200 and decrypted.json()["data"]["stepInfoList"] == [{"step": 4321}]
    phone_code = f"phone.{PHONE}.{secrets.token_hex(3)}"
    run.secrets.add(phone_code)
    assert (
        run.call("POST", "/auth/phone", other["access_token"], json={"code": phone_code}).status_code == 200
    )

    rotated = run.call("POST", "/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    assert run.call("POST", "/auth/refresh", rotated.json()["data"]["access_token"]).status_code == 200
    assert run.call("POST", "/auth/logout", rotated.json()["data"]["access_token"]).status_code == 200
    assert run.call("POST", "/auth/logout", other["access_token"], json={"all": True}).status_code == 200

    for errcode in ("40029", "40163", "41008", "40226", "45011", "-1", "40001", "40013", "40125"):
        assert run.login(f"fail.{errcode}").status_code in {401, 429, 500, 503}
    for code in ("fail.html", "fail.http500", f"flaky.1.{name}x.{secrets.token_hex(3)}"):
        assert run.login(code).status_code in {200, 503}

    forged = jwt.encode({"sub": "1", "sid": "s", "openid": openid}, "x" * 32, algorithm="HS256")
    for token in (forged, "not.a.jwt", tokens["access_token"]):  # the last one's session is logged out
        assert run.call("GET", "/user/profile", token).status_code == 401
    run.secrets.add(forged)
    assert (
        run.call("POST", "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    )
    marker = secrets.token_hex(8)
    assert run.call("GET", f"/nowhere?js_code={marker}&secret={marker}").status_code == 404
    run.secrets.add(marker)

    run.secrets |= set(debug_stack.simulator.session_keys.values())
    run.secrets |= {openid, debug_stack.simulator.access_token or ""} - {""}
    time.sleep(0.3)  # the last access line is written after its response
    output = debug_stack.logs()

    leaked = sorted(secret for secret in run.secrets if secret in output)
    assert leaked == [], f"secrets in the server's log: {leaked}"

    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    plain = [line for line in output.splitlines() if line and not line.startswith("{")]
    assert all(line.startswith("serving http://127.0.0.1:") for line in plain), plain
    access = [e for e in entries if e["logger"] == "shared.api.access_log"]
    assert len(access) >= run.requests
    assert {"method", "route", "status", "duration_ms", "request_id"} <= set(access[-1])
    profile_lines = [e for e in access if e["route"] == "/api/v1/user/profile" and e["status"] == 200]
    assert profile_lines and all(e["openid_hash"] for e in profile_lines)
    # DEBUG reached our own loggers, never the libraries that log URLs, headers or bodies.
    assert any(e["level"] == "DEBUG" for e in entries)
    wire = [e for e in entries if e["logger"].split(".")[0] in {"httpx", "httpcore", "botocore", "pynamodb"}]
    assert all(e["level"] in {"WARNING", "ERROR", "CRITICAL"} for e in wire), wire[:3]
