"""Malformed Host, ports, header and percent-encodings: 400 INVALID_REQUEST in the envelope on every
adapter (API Gateway REST v1, HTTP API v2, Tencent, and the ASGI app `make dev` serves), never a
crash or a 5xx. The dev server's own socket (uvicorn) is covered in tests/e2e/test_dev_server.py."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest

from tests.lambda_events import answer, apigw_v1, apigw_v2, lambda_context, tencent

PROFILE = "/api/v1/user/profile"
LOGIN = "/api/v1/auth/wx-login"
EVENTS = {"v1": apigw_v1, "v2": apigw_v2, "tencent": tencent}

# (headers, the part the answer names)
BAD_HEADERS = [
    ({"Host": "a:b:c"}, "Host"),
    ({"Host": "x:"}, "Host"),
    ({"Host": "x:99999"}, "Host"),
    ({"Host": "[::1]:443"}, "Host"),
    ({"Host": "exa mple.com"}, "Host"),
    ({"Host": "例子.com"}, "Host"),
    ({"X-Forwarded-Port": "abc"}, "X-Forwarded-Port"),
    ({"X-Forwarded-Port": ""}, "X-Forwarded-Port"),
    ({"X-Forwarded-Port": "-1"}, "X-Forwarded-Port"),
    ({"X-Forwarded-Port": "443, 80"}, "X-Forwarded-Port"),
    ({"X-Forwarded-Port": "70000"}, "X-Forwarded-Port"),
    ({"X-Forwarded-Proto": "gopher"}, "X-Forwarded-Proto"),
    ({"X-Forwarded-Proto": "https, http"}, "X-Forwarded-Proto"),
    ({"X-Custom": "a\x00b"}, "header"),
    ({"Bad Name": "x"}, "header"),
]
# Header values that cannot be UTF-8: a JSON event can carry a lone surrogate.
SURROGATE_HEADERS = [
    ({"Authorization": "Bearer \udcff"}, "header"),
    ({"X-\udcff": "x"}, "header"),
    ({"Host": "\ud800.example"}, "header"),
]
BAD_PATHS = [
    f"{PROFILE}%zz",
    f"{PROFILE}%",
    f"{PROFILE}%f",
    f"{PROFILE}%ff",  # percent-decodes to a byte that is not UTF-8
    f"{PROFILE}%c3%28",
    f"{PROFILE}%00",
    f"{PROFILE}\udcff",
]
GOOD_HEADERS = [
    {"Host": "api.example.com"},
    {"Host": "api.example.com:443"},
    {"Host": "127.0.0.1:8000"},
    {"X-Forwarded-Port": "8443", "X-Forwarded-Proto": "HTTP"},
    {"User-Agent": "Mozilla/5.0 MicroMessenger/8.0 微信"},
]


def call(function: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = function.handler(event, lambda_context())
    status, body = answer(response)
    return status, body, response["headers"]


def assert_malformed(status: int, body: dict[str, Any], part: str) -> None:
    assert (status, body["code"], body["reason"]) == (400, 400, "INVALID_REQUEST"), body
    assert set(body) == {"code", "message", "error", "reason", "timestamp"}
    assert body["message"] == f"请求格式错误: {part} 无效"


@pytest.mark.parametrize("kind", EVENTS)
@pytest.mark.parametrize(("headers", "part"), BAD_HEADERS + SURROGATE_HEADERS)
def test_malformed_headers_are_400_through_every_gateway_event(functions, kind, headers, part):
    build: Callable[..., dict[str, Any]] = EVENTS[kind]
    for function, method, path in (
        (functions["profile"], "GET", PROFILE),
        (functions["login"], "POST", LOGIN),
    ):
        event = build(method, path, {"code": "alice.x"} if method == "POST" else None, headers=headers)
        status, body, response_headers = call(function, event)
        assert_malformed(status, body, part)
        assert response_headers["x-request-id"] == "req-0001"


@pytest.mark.parametrize("kind", EVENTS)
@pytest.mark.parametrize("path", BAD_PATHS)
def test_malformed_paths_are_400_through_every_gateway_event(functions, kind, path):
    status, body, _ = call(functions["profile"], EVENTS[kind]("GET", path))
    assert_malformed(status, body, "path")


def test_malformed_query_strings_are_400_through_http_api_events(functions):
    for query in ("a=%zz", "a=%ff", "%e4%b8=1", "a=%"):
        event = apigw_v2("GET", PROFILE)
        event["rawQueryString"] = query
        status, body, _ = call(functions["profile"], event)
        assert_malformed(status, body, "query string")


@pytest.mark.parametrize("kind", EVENTS)
def test_query_values_that_cannot_be_utf8_are_400(functions, kind):
    event = EVENTS[kind]("GET", PROFILE)
    if kind == "v2":
        event["rawQueryString"] = "a=\udcff"
    elif kind == "v1":
        event["queryStringParameters"] = {"a": "\udcff"}
        event["multiValueQueryStringParameters"] = {"a": ["\udcff"]}
    else:
        event["queryString"] = {"a": "\udcff"}
    status, body, _ = call(functions["profile"], event)
    assert_malformed(status, body, "request")


@pytest.mark.parametrize("kind", EVENTS)
def test_an_event_mangum_cannot_convert_is_400_not_a_crash(functions, kind):
    """Whatever shared/api/edge.py did not foresee: here a body flagged base64 that is not base64."""
    event = EVENTS[kind]("POST", LOGIN, {"code": "alice.b64"})
    event.update(body="@@not base64@@", isBase64Encoded=True)
    status, body, _ = call(functions["login"], event)
    assert_malformed(status, body, "request")


@pytest.mark.parametrize("kind", ["v1", "v2"])
def test_a_header_value_that_is_not_text_is_400_not_a_crash(functions, kind):
    event = EVENTS[kind]("GET", PROFILE)
    event["headers"]["x-number"] = 5
    status, body, _ = call(functions["profile"], event)
    assert_malformed(status, body, "request")


@pytest.mark.parametrize("kind", EVENTS)
@pytest.mark.parametrize("headers", GOOD_HEADERS)
def test_well_formed_hosts_ports_and_text_pass(functions, kind, headers):
    status, body, _ = call(functions["profile"], EVENTS[kind]("GET", PROFILE, headers=headers))
    assert (status, body["reason"]) == (401, "TOKEN_MISSING")
    login = EVENTS[kind]("POST", LOGIN, {"code": "héllo"}, headers=headers)
    assert call(functions["login"], login)[1]["reason"] == "INVALID_REQUEST"  # the code, not the headers


@pytest.mark.parametrize("kind", EVENTS)
def test_a_malformed_request_writes_nothing_and_asks_wechat_nothing(functions, simulator, kind):
    event = EVENTS[kind]("POST", LOGIN, {"code": "carol.1"}, headers={"Host": "a:b:c"})
    assert_malformed(*call(functions["login"], event)[:2], "Host")
    assert simulator.calls["/sns/jscode2session"] == 0
    # The same request well formed logs in: nothing of the first one was half-done.
    good = EVENTS[kind]("POST", LOGIN, {"code": "carol.1"})
    status, body, _ = call(functions["login"], good)
    assert status == 200 and body["data"]["is_new_user"] is True


def test_a_base64_upload_still_passes(functions):
    """The stand-in is for malformed events only: a well-formed base64 body reaches the app."""
    event = apigw_v2("POST", LOGIN, {"code": "dave.1"})
    event.update(body=base64.b64encode(event["body"].encode()).decode(), isBase64Encoded=True)
    assert call(functions["login"], event)[0] == 200


# The ASGI app as `make dev` serves it: the scope as uvicorn builds it, raw bytes and all.


def asgi_get(
    app: Any, raw_path: bytes, query: bytes = b"", headers: Any = (), host: bytes = b"127.0.0.1:8000"
) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),  # what uvicorn does
        "raw_path": raw_path,
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", host), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"]), json.loads(sent[1]["body"])


@pytest.mark.parametrize(("headers", "part"), BAD_HEADERS)
def test_malformed_headers_are_400_on_the_dev_app(app, headers, part):
    [(name, value)] = headers.items()
    if name == "Host":
        status, body = asgi_get(app, PROFILE.encode(), host=value.encode())
    else:
        status, body = asgi_get(app, PROFILE.encode(), headers=[(name.lower().encode(), value.encode())])
    assert_malformed(status, body, part)


def test_two_hosts_are_400_on_the_dev_app(app):
    status, body = asgi_get(app, PROFILE.encode(), headers=[(b"host", b"other.example")])
    assert_malformed(status, body, "Host")


def test_header_bytes_beyond_ascii_are_not_malformed(app):
    """RFC 9110's obs-text: a latin-1 byte in a header value is the route's business (here 401)."""
    status, body = asgi_get(app, PROFILE.encode(), headers=[(b"authorization", b"Bearer caf\xe9")])
    assert (status, body["reason"]) == (401, "TOKEN_INVALID")


@pytest.mark.parametrize(
    ("raw_path", "query", "part"),
    [
        (f"{PROFILE}%zz".encode(), b"", "path"),
        (f"{PROFILE}%ff".encode(), b"", "path"),
        (f"{PROFILE}%00".encode(), b"", "path"),
        (PROFILE.encode(), b"a=%zz", "query string"),
        (PROFILE.encode(), b"a=%c3%28", "query string"),
        (PROFILE.encode(), b"a=\xff", "query string"),
    ],
)
def test_malformed_encodings_are_400_on_the_dev_app(app, raw_path, query, part):
    assert_malformed(*asgi_get(app, raw_path, query), part)


def test_well_formed_encodings_pass_on_the_dev_app(app):
    status, body = asgi_get(app, PROFILE.encode(), b"q=%E4%B8%AD&x=a+b")
    assert (status, body["reason"]) == (401, "TOKEN_MISSING")
    status, body = asgi_get(app, b"/api/v1/%E4%B8%AD")
    assert (status, body["reason"]) == (404, "NOT_FOUND")
