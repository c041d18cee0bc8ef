"""Mangum handler for Tencent Cloud API Gateway trigger events (SCF "event functions").

Stock Mangum cannot infer these events: they carry neither ``resource`` (REST v1) nor ``version``
(HTTP API v2), ``sourceIp`` sits directly under ``requestContext``, and every query parameter is in
``queryString`` (``queryStringParameters`` only holds the ones declared on the API). The gateway's
*integrated response* ("集成响应") must be a JSON object with exactly the keys ``isBase64Encoded``,
``statusCode``, ``headers`` and ``body``; anything else is answered 502 by the gateway.

An event looks like this (the full example is ``tests/events/tencent_apigw.json``)::

    {"requestContext": {"serviceId": "service-xxx", "path": "/api/v1/auth/wx-login",
                        "httpMethod": "POST", "requestId": "...", "identity": {},
                        "sourceIp": "1.2.3.4", "stage": "release"},
     "headers": {"host": "...", "content-type": "application/json", ...},
     "body": "{\\"code\\": \\"...\\"}", "isBase64Encoded": false,
     "pathParameters": {}, "queryStringParameters": {}, "headerParameters": {},
     "stageVariables": {}, "path": "/api/v1/auth/wx-login", "queryString": {"a": "1"},
     "httpMethod": "POST"}

Choices made here:

* **Path.** ``event["path"]`` is the request path *after* the gateway's environment prefix: a call
  to ``https://service-xxx.gz.apigw.tencentcs.com/release/api/v1/auth/wx-login`` arrives with
  ``path == "/api/v1/auth/wx-login"`` and ``requestContext.stage == "release"``. We publish every API
  on the gateway under its full route path (``/api/v1/...``, see ``infra/tencent/serverless.yml``),
  so the path is used as is. Two prefixes are still removed, so that a different gateway set-up does
  not turn every call into a 404: Mangum's ``api_gateway_base_path`` (a custom-domain path mapping)
  and a leading ``/<stage>`` segment equal to ``requestContext.stage`` (some set-ups pass the path as
  the client wrote it). Neither can ever be the start of an ``/api/...`` route.
* **Query.** ``queryString`` wins over ``queryStringParameters``. Values may be strings, lists (a
  repeated key), ``None`` or other JSON scalars (a key with no value); all are re-encoded with
  ``urlencode(doseq=True)`` so Starlette sees every value of a repeated key.
* **Headers.** Names are lower-cased (the gateway passes them as the client sent them). A value that
  arrives as a list is joined with ``", "`` (RFC 9110 field combination).
* **Body.** ``isBase64Encoded`` may be missing, a bool or the strings ``"true"``/``"false"``;
  a base64 body is decoded before it reaches the app.
* **Response.** Text types (Mangum's ``text_mime_types``: ``application/json``, ``text/*``, ...)
  are returned as text, everything else (images) base64 with ``isBase64Encoded: true``. Repeated
  response headers are joined with ``", "``, except ``set-cookie``, which cannot be joined: each
  extra cookie gets a differently-cased copy of the header name, the trick Tencent's own WSGI shim
  uses, since the integrated response has no multi-value header field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from mangum.handlers.utils import (
    get_server_and_port,
    handle_base64_response_body,
    handle_exclude_headers,
    maybe_encode_body,
    strip_api_gateway_path,
)
from mangum.types import LambdaConfig, LambdaContext, LambdaEvent, Response, Scope

__all__ = ["TencentAPIGateway"]

# Keys that only AWS events carry: if any is present, the event is not Tencent's.
_AWS_TOP_LEVEL_KEYS = frozenset({"resource", "version", "routeKey", "rawPath", "multiValueHeaders"})
_AWS_CONTEXT_KEYS = frozenset({"elb", "apiId", "http", "accountId", "resourceId"})


def _is_true(value: Any) -> bool:
    """``isBase64Encoded`` as sent by the gateway: bool, "true"/"false" or missing."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # a JSON true for a key without a value
        return "" if value else "false"
    return value if isinstance(value, str) else str(value)


def _query_pairs(params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in params.items():
        if isinstance(value, list | tuple):
            for item in value:
                yield str(key), _as_text(item)
        else:
            yield str(key), _as_text(value)


def _encode_query_string(event: LambdaEvent) -> bytes:
    params = event.get("queryString") or event.get("queryStringParameters") or {}
    if not isinstance(params, Mapping) or not params:
        return b""
    return urlencode(list(_query_pairs(params))).encode()


def _request_headers(event: LambdaEvent) -> dict[str, str]:
    raw = event.get("headers") or {}
    headers: dict[str, str] = {}
    if not isinstance(raw, Mapping):
        return headers
    for key, value in raw.items():
        name = str(key).lower()
        text = ", ".join(_as_text(v) for v in value) if isinstance(value, list | tuple) else _as_text(value)
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


def _strip_stage(path: str, stage: Any) -> str:
    if isinstance(stage, str) and stage:
        prefix = f"/{stage}"
        if path == prefix:
            return "/"
        if path.startswith(prefix + "/"):
            return path[len(prefix) :]
    return path


def _case_variants(name: str) -> Iterator[str]:
    """``set-cookie``, ``Set-cookie``, ``sEt-cookie``, ...: distinct keys for one header."""
    letters = [i for i, ch in enumerate(name) if ch.isalpha()]
    for mask in range(1 << len(letters)):
        chars = list(name)
        for bit, index in enumerate(letters):
            if mask >> bit & 1:
                chars[index] = chars[index].upper()
        yield "".join(chars)


def _response_headers(raw: list[list[bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for key, value in raw:
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        if name == "set-cookie":
            cookies.append(text)
        elif name in headers:
            headers[name] = f"{headers[name]}, {text}"
        else:
            headers[name] = text
    for cookie, cased in zip(cookies, _case_variants("set-cookie"), strict=False):
        headers[cased] = cookie
    return headers


class TencentAPIGateway:
    """Mangum ``LambdaHandler`` for Tencent API Gateway trigger events with integrated response."""

    @classmethod
    def infer(cls, event: LambdaEvent, context: LambdaContext, config: LambdaConfig) -> bool:
        if not isinstance(event, dict):
            return False
        request_context = event.get("requestContext")
        if not isinstance(request_context, dict):
            return False
        if not _AWS_TOP_LEVEL_KEYS.isdisjoint(event) or not _AWS_CONTEXT_KEYS.isdisjoint(request_context):
            return False
        return (
            isinstance(request_context.get("serviceId"), str)
            and isinstance(event.get("httpMethod"), str)
            and isinstance(event.get("path"), str)
        )

    def __init__(self, event: LambdaEvent, context: LambdaContext, config: LambdaConfig) -> None:
        self.event = event
        self.context = context
        self.config = config

    @property
    def body(self) -> bytes:
        body = self.event.get("body")
        if isinstance(body, dict | list):  # a hand-written test event with a JSON object as body
            body = json.dumps(body, ensure_ascii=False)
        return maybe_encode_body(body or b"", is_base64=_is_true(self.event.get("isBase64Encoded")))

    @property
    def scope(self) -> Scope:
        request_context: dict[str, Any] = self.event["requestContext"]
        headers = _request_headers(self.event)
        path = strip_api_gateway_path(
            self.event["path"], api_gateway_base_path=self.config["api_gateway_base_path"]
        )
        path = _strip_stage(path, request_context.get("stage"))
        source_ip = request_context.get("sourceIp")
        if not isinstance(source_ip, str):
            identity = request_context.get("identity")
            source_ip = identity.get("sourceIp") if isinstance(identity, dict) else None
        return {
            "type": "http",
            "http_version": "1.1",
            "method": self.event["httpMethod"].upper(),
            "headers": [[k.encode(), v.encode()] for k, v in headers.items()],
            "path": path,
            "raw_path": None,
            "root_path": "",
            "scheme": headers.get("x-forwarded-proto", "https"),
            "query_string": _encode_query_string(self.event),
            "server": get_server_and_port(headers),
            "client": (source_ip or "", 0),
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "aws.event": self.event,
            "aws.context": self.context,
        }

    def __call__(self, response: Response) -> dict[str, Any]:
        headers = _response_headers(response["headers"])
        body, is_base64 = handle_base64_response_body(
            response["body"], headers, self.config["text_mime_types"]
        )
        return {
            "isBase64Encoded": is_base64,
            "statusCode": response["status"],
            "headers": handle_exclude_headers(headers, self.config),
            "body": body,
        }
