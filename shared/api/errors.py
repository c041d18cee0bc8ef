"""One place that maps every failure to the contract's reasons."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match

from shared.api.envelope import error_response
from shared.api.route_table import methods_of
from shared.errors import Reason, ServiceError

_STATUS_REASONS = {404: Reason.NOT_FOUND, 405: Reason.METHOD_NOT_ALLOWED, 413: Reason.PAYLOAD_TOO_LARGE}
_STATUS_MESSAGES = {
    Reason.NOT_FOUND: "接口不存在",
    Reason.METHOD_NOT_ALLOWED: "请求方法不被允许",
}


_FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,40}")


def _field(part: object) -> str:
    # A field name is client input too (an unknown field is echoed back): only plain names are.
    text = str(part)
    return text if _FIELD_NAME.fullmatch(text) else "<field>"


def describe_validation_errors(exc: RequestValidationError) -> str:
    """A readable summary of what was wrong, naming fields but never echoing their values."""
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(_field(part) for part in error.get("loc", ()) if part != "body")
        if error.get("type") == "json_invalid":
            parts.append("请求体不是合法的 JSON")
        else:
            parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "请求参数错误: " + "; ".join(parts)


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.reason, exc.message, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(Reason.INVALID_REQUEST, describe_validation_errors(exc))


def allowed_methods(request: Request) -> frozenset[str]:
    """Every method of the route at the request's path: this app's routes and the API's (route_table).

    Starlette's 405 names the methods of the first route that matched the path only (FastAPI makes a
    route per method), and a function's app lacks the routes of the other functions.
    """
    found = set(methods_of(request.scope.get("path", "")))
    for route in iter_route_contexts(request.app.router.routes):
        methods = route.methods
        if methods and route.matches(request.scope)[0] is not Match.NONE:
            found |= methods
    return frozenset(found)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status, headers = exc.status_code, None
    if status in (404, 405):
        allowed = allowed_methods(request)
        if request.method not in allowed and allowed:
            status, headers = 405, {"Allow": ", ".join(sorted(allowed))}
    reason = _STATUS_REASONS.get(status, Reason.INVALID_REQUEST)
    message = exc.detail if reason is Reason.PAYLOAD_TOO_LARGE else _STATUS_MESSAGES.get(reason, "请求无效")
    return error_response(reason, message, headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every expected failure in the envelope; unexpected ones are caught by the middleware."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
