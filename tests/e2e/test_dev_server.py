"""`make dev` as a newcomer runs it: `python -m local.devserver` with no WeChat settings (the built-in
simulator), over real sockets. Its WeChat calls keep WX_TIMEOUT_S and the retry budget, the client's IP
is the socket's (X-Forwarded-For cannot dodge the per-IP login limit), bytes that are not HTTP are
answered 400 in the envelope, and its log lines carry no terminal colours."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from local.stack import DevServer, running_dev_server

WX_TIMEOUT_S = 0.3
FAILURES_PER_IP = 2
ERROR_KEYS = {"code", "message", "error", "reason", "timestamp"}


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    settings = {"WX_TIMEOUT_S": str(WX_TIMEOUT_S), "LOGIN_FAILURE_LIMIT_PER_IP": str(FAILURES_PER_IP)}
    log_path = tmp_path_factory.mktemp("devserver-builtin") / "server.log"
    with running_dev_server(settings, None, log_path) as server:
        yield server


def login(dev: DevServer, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{dev.url}/api/v1/auth/wx-login", json={"code": code}, headers=headers, timeout=20)


def raw(dev: DevServer, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send `request` as bytes; the status and JSON body of the answer (the server closes after it)."""
    address = urlsplit(dev.url)
    assert address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


def test_the_built_in_simulator_keeps_wx_timeout_s_and_the_retry_budget(dev):
    started = time.monotonic()
    response = login(dev, "fail.timeout")
    elapsed = time.monotonic() - started
    body = response.json()
    assert (response.status_code, body["reason"]) == (503, "WECHAT_UNAVAILABLE")
    assert "timeout" in body["message"]
    # Three attempts of WX_TIMEOUT_S each and the two backoffs (0.1 s, 0.3 s), not the 30 s the
    # simulated WeChat would take.
    assert 3 * WX_TIMEOUT_S + 0.4 <= elapsed < 3 * WX_TIMEOUT_S + 2.5
    assert login(dev, "alice.after-timeout").status_code == 200


def test_x_forwarded_for_does_not_choose_the_client_ip(dev):
    for n in range(FAILURES_PER_IP):
        spoofed = {"X-Forwarded-For": f"198.51.100.{n}", "X-Real-IP": f"198.51.100.{n}"}
        assert login(dev, "fail.40029", spoofed).json()["reason"] == "WECHAT_CODE_INVALID"
    refused = login(dev, "bob.after-failures", {"X-Forwarded-For": "203.0.113.99"})
    assert (refused.status_code, refused.json()["reason"]) == (429, "RATE_LIMITED")
    # The address counted and limited is the socket's, whatever the headers said.
    assert "login attempts from 127.0.0.1 refused" in dev.logs()
    assert "login attempts from 198.51.100" not in dev.logs()


def request(target: bytes, *headers: bytes) -> bytes:
    """A GET of `target` with `headers` (Host: x unless given), closing the connection after it."""
    lines = [b"GET " + target + b" HTTP/1.1", *headers]
    if not any(line.lower().startswith(b"host:") for line in headers):
        lines.append(b"Host: x")
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


PROFILE = b"/api/v1/user/profile"


@pytest.mark.parametrize(
    ("request_bytes", "part"),
    [
        (request(PROFILE + b"\xff"), "request"),  # not HTTP: uvicorn's parser refuses it
        (request(PROFILE, b"Bad Header"), "request"),
        (request(PROFILE, b"Host: a:b:c"), "Host"),
        (request(PROFILE, b"Host: x:"), "Host"),
        (request(PROFILE, b"X-Forwarded-Port: abc"), "X-Forwarded-Port"),
        (request(PROFILE + b"%ff"), "path"),
        (request(PROFILE + b"?a=%zz"), "query string"),
    ],
)
def test_malformed_requests_are_400_in_the_envelope_on_the_socket(dev, request_bytes, part):
    status, body = raw(dev, request_bytes)
    assert (status, body["code"], body["reason"]) == (400, 400, "INVALID_REQUEST")
    assert set(body) == ERROR_KEYS and body["message"] == f"请求格式错误: {part} 无效"


def test_a_trailing_slash_is_404_not_a_redirect(dev):
    response = httpx.get(f"{dev.url}/api/v1/user/profile/", follow_redirects=False)
    assert (response.status_code, response.json()["reason"]) == (404, "NOT_FOUND")


def test_log_lines_are_json_without_terminal_colours(dev):
    login(dev, "carol.logs")
    logs = dev.logs()
    assert "Uvicorn running on" in logs  # uvicorn's own line is there...
    assert "color_message" not in logs and "\x1b" not in logs and "\\u001b" not in logs  # ...without colours
    lines = [line for line in logs.splitlines() if line.startswith("{")]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
