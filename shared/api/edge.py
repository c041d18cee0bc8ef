"""Malformed requests at the edge: a Host, a port, a header or an encoding that no client of ours sends.

Such a request is answered 400 INVALID_REQUEST in the envelope, never a crash, on every adapter:

* API Gateway (REST v1, HTTP API v2) and Tencent events: `event_problem` looks at the event before
  Mangum turns it into an ASGI scope (Mangum's own parsing raises on `Host: a:b:c`, `Host: x:`,
  `X-Forwarded-Port: abc` or a header that is not UTF-8); a malformed event is replaced by
  `stand_in(event)`, the same request without anything the client wrote, which Mangum can always
  convert, and the problem rides in the scope under `MALFORMED_KEY` (shared/api/handler.py).
* Every scope, whichever server built it (uvicorn for `make dev`, Mangum, a test client):
  `scope_problem` checks the headers, the raw path and the query string.

GuardMiddleware (shared/api/middleware.py) answers either kind of problem. The message names the part
that is wrong, never its value (a client's bytes are not echoed).

The rules are narrower than RFC 9110 where nothing of ours needs the rest: a Host is a DNS name or an
IPv4 address with an optional port (the functions are reached through a gateway's name, and `make dev`
listens on 127.0.0.1 only), header names are tokens and values hold no control character, and a path
or query string decodes (percent-escapes of two hex digits) to UTF-8. In a gateway's event, where
everything is JSON text, a string that cannot be UTF-8 (a lone surrogate) is malformed too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from typing import Any
from urllib.parse import unquote_to_bytes

from mangum.types import LambdaEvent
from starlette.types import Scope

__all__ = ["MALFORMED_KEY", "Malformed", "event_problem", "scope_problem", "stand_in"]

MALFORMED_KEY = "wx_login.malformed"


class Malformed(str, Enum):
    """What part of a request is malformed; the value is what the 400 answer names."""

    HOST = "Host"
    PORT = "X-Forwarded-Port"
    PROTO = "X-Forwarded-Proto"
    HEADER = "header"
    PATH = "path"
    QUERY = "query string"
    REQUEST = "request"

    @property
    def message(self) -> str:
        """The answer's message: the part, never the value."""
        return f"请求格式错误: {self.value} 无效"


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters but HTAB; `bytes.translate` deletes them faster than a regex finds them.
_CONTROL = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
_HOST = re.compile(rb"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})(?::([0-9]{1,5}))?")
_PORT = re.compile(rb"[0-9]{1,5}")
_PROTO = re.compile(rb"(?i:https?)")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _has_control(data: bytes) -> bool:
    return len(data.translate(None, _CONTROL)) != len(data)


def _port_ok(digits: bytes | None) -> bool:
    return digits is None or int(digits) <= 65535


def _header_problem(name: bytes, value: bytes) -> Malformed | None:
    # Bytes 0x80-0xFF are allowed (RFC 9110's obs-text): only control characters are malformed.
    if not _TOKEN.fullmatch(name) or _has_control(value):
        return Malformed.HEADER
    lowered = name.lower()
    if lowered == b"host":
        host = _HOST.fullmatch(value.strip())
        if value.strip() and (host is None or not _port_ok(host.group(1))):
            return Malformed.HOST
    elif lowered == b"x-forwarded-port":
        if not _PORT.fullmatch(value.strip()) or not _port_ok(value.strip()):
            return Malformed.PORT
    elif lowered == b"x-forwarded-proto" and not _PROTO.fullmatch(value.strip()):
        return Malformed.PROTO
    return None


def _headers_problem(headers: Iterable[tuple[bytes, bytes]]) -> Malformed | None:
    hosts = 0
    for name, value in headers:
        problem = _header_problem(name, value)
        if problem is not None:
            return problem
        hosts += name.lower() == b"host"
    return Malformed.HOST if hosts > 1 else None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _escapes_problem(raw: bytes, part: Malformed, *, plus_is_space: bool = False) -> Malformed | None:
    """`part` unless `raw` is percent-encoded properly and decodes to UTF-8."""
    if b"%" not in raw:
        return None if _is_utf8(raw) else part
    if _BAD_ESCAPE.search(raw):
        return part
    decoded = unquote_to_bytes(raw.replace(b"+", b" ") if plus_is_space else raw)
    if not _is_utf8(decoded) or (part is Malformed.PATH and _has_control(decoded)):
        return part
    return None


def scope_problem(scope: Scope) -> Malformed | None:
    """What is malformed in an ASGI HTTP request, or None: headers, raw path, query string.

    A scope built from a gateway's event carries `MALFORMED_KEY`: its headers and path were checked
    in the event already (shared/api/handler.py), and its verdict stands.
    """
    if MALFORMED_KEY in scope:
        marked = scope[MALFORMED_KEY]
        if isinstance(marked, Malformed):
            return marked
    else:
        problem = _headers_problem(scope.get("headers") or ())
        raw_path = scope.get("raw_path")
        if problem is None and isinstance(raw_path, bytes):
            problem = _escapes_problem(raw_path, Malformed.PATH)
        if problem is not None:
            return problem
    query = scope.get("query_string")
    return _escapes_problem(query, Malformed.QUERY, plus_is_space=True) if isinstance(query, bytes) else None


# Where API Gateway (v1, v2) and Tencent put what the client wrote, and what each holds when empty.
_HEADER_KEYS = ("headers", "multiValueHeaders")
_EMPTY: dict[str, Any] = {
    "headers": {},
    "multiValueHeaders": {},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "queryString": {},
    "rawQueryString": "",
    "cookies": [],
    "body": None,
    "isBase64Encoded": False,
}


def _utf8(text: str) -> bytes | None:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON can carry one, UTF-8 cannot
        return None


def _event_headers(event: LambdaEvent) -> Iterator[tuple[str, Any]]:
    for key in _HEADER_KEYS:
        headers = event.get(key)
        if isinstance(headers, Mapping):
            for name, value in headers.items():
                for item in value if isinstance(value, list) else [value]:
                    yield str(name), item


def _event_paths(event: LambdaEvent) -> Iterator[Any]:
    yield event.get("path")
    yield event.get("rawPath")
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    if isinstance(http, Mapping):
        yield http.get("path")


def event_problem(event: LambdaEvent) -> Malformed | None:
    """What is malformed in a gateway event's headers or path, or None, before Mangum parses them.

    Mangum percent-decodes the path itself (replacing what does not decode), so the path is checked
    here, as the gateway passed it. Values of other types are left to Mangum; if it cannot convert
    them, shared/api/handler.py answers Malformed.REQUEST.
    """
    for name, value in _event_headers(event):
        if not isinstance(value, str):
            continue
        encoded_name, encoded_value = _utf8(name), _utf8(value)
        if encoded_name is None or encoded_value is None:
            return Malformed.HEADER
        problem = _header_problem(encoded_name, encoded_value)
        if problem is not None:
            return problem
    for path in _event_paths(event):
        if isinstance(path, str):
            encoded = _utf8(path)
            if encoded is None or _escapes_problem(encoded, Malformed.PATH):
                return Malformed.PATH
    return None


def stand_in(event: LambdaEvent) -> LambdaEvent:
    """`event` without anything the client wrote but its method and a printable path: an event that
    Mangum always converts, so that the 400 answer has the shape this gateway expects."""
    # Only keys the event has: an added one could change which handler Mangum infers for it.
    safe: dict[str, Any] = {**event, **{key: empty for key, empty in _EMPTY.items() if key in event}}
    for key in ("path", "rawPath"):
        if key in event:
            safe[key] = _safe_path(event[key])
    context = event.get("requestContext")
    if isinstance(context, Mapping) and isinstance(context.get("http"), Mapping):
        http = {**context["http"], "path": _safe_path(context["http"].get("path"))}
        safe["requestContext"] = {**context, "http": http}
    return safe


def _safe_path(path: Any) -> str:
    return path if isinstance(path, str) and _utf8(path) is not None else "/"
