"""Real API Gateway / Tencent event payloads (tests/events/*.json) re-aimed at any route."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

EVENTS = Path(__file__).parent / "events"


def _template(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return copy.deepcopy(event)


def _body_and_headers(body: Any, headers: dict[str, str] | None) -> tuple[str | None, dict[str, str], bool]:
    """The event's body text, headers, and isBase64Encoded: bytes (an upload) travel base64 as on AWS."""
    merged = {"content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}}
    if body is None:
        merged.pop("content-type")
        return None, merged, False
    if isinstance(body, bytes):
        merged["content-length"] = str(len(body))
        return base64.b64encode(body).decode(), merged, True
    text = body if isinstance(body, str) else json.dumps(body)
    merged["content-length"] = str(len(text.encode()))
    return text, merged, False


def apigw_v2(
    method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event."""
    event = _template("apigw_v2_http.json")
    text, merged, encoded = _body_and_headers(body, headers)
    event["headers"] = _over_template(event["headers"], merged)
    event.update(rawPath=path, routeKey=f"{method} {path}", body=text, isBase64Encoded=encoded)
    event["requestContext"].update(routeKey=f"{method} {path}")
    event["requestContext"]["http"].update(method=method, path=path)
    return event


def _over_template(template: dict[str, Any], merged: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in template.items() if k.lower() not in ("content-length", "content-type")}
    return {**base, **merged}


def apigw_v1(
    method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """An API Gateway REST API (payload 1.0) event."""
    event = _template("apigw_v1.json")
    text, merged, encoded = _body_and_headers(body, headers)
    event["headers"] = _over_template(event["headers"], merged)
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event.update(resource=path, path=path, httpMethod=method, body=text, isBase64Encoded=encoded)
    event["requestContext"].update(resourcePath=path, httpMethod=method, path=path)
    return event


def tencent(
    method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Tencent Cloud API Gateway trigger event (SCF)."""
    event = _template("tencent_apigw.json")
    text, merged, encoded = _body_and_headers(body, headers)
    event["headers"] = _over_template(event["headers"], merged)
    event.update(path=path, httpMethod=method, body=text or "", isBase64Encoded=encoded)
    event["requestContext"].update(path=path, httpMethod=method)
    return event


def lambda_context(request_id: str = "req-0001") -> Any:
    """Enough of a Lambda context for Mangum and our request ids."""
    return SimpleNamespace(aws_request_id=request_id, function_name="test", memory_limit_in_mb=256)


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Status and decoded JSON body of a handler's answer."""
    return response["statusCode"], json.loads(response["body"])
