"""The response envelope every endpoint answers with, at every status."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse

from shared import clock
from shared.errors import Reason


def _jsonable(data: Any) -> Any:
    # A domain record (a frozen dataclass): its fields, leaving out the optional ones it does not carry.
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return {name: value for name, value in dataclasses.asdict(data).items() if value is not None}
    return data


def success(data: Any, message: str = "success", *, extra: Mapping[str, Any] | None = None) -> JSONResponse:
    """HTTP 200 with `data` in the envelope; `extra` top-level members come first (a JWK Set's `keys`).

    `data` is JSON-able, or a domain record (its None fields are left out)."""
    data = _jsonable(data)
    body = {"code": 200, "message": message, "data": data, "timestamp": clock.iso_ms(clock.now())}
    return JSONResponse({**(extra or {}), **body})


def error_body(reason: Reason, message: str) -> dict[str, Any]:
    """The envelope of an error answer; its HTTP status is `code`."""
    return {
        "code": reason.status,
        "message": message,
        "error": HTTPStatus(reason.status).phrase,
        "reason": reason.value,
        "timestamp": clock.iso_ms(clock.now()),
    }


def error_response(reason: Reason, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An error answer in the envelope."""
    return JSONResponse(error_body(reason, message), status_code=reason.status, headers=headers)
