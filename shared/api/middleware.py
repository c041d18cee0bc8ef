"""ASGI middleware: request ids, the request's deadline, the access log, refusing to serve when
misconfigured, malformed requests (shared/api/edge.py), the body-size limit, and the last-resort
INTERNAL_ERROR answer."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api.access_log import log_access
from shared.api.edge import scope_problem
from shared.api.envelope import error_body
from shared.deadline import Deadline, request_deadline
from shared.errors import Reason, ServerMisconfigured
from shared.logs import request_context
from shared.settings import Settings, get_settings

logger = logging.getLogger(__name__)

JSON_BODY_LIMIT = 16 * 1024


def _too_large_message(limit: int) -> str:
    return f"请求体过大 (上限 {limit // 1024} KiB)"


async def _send_envelope(send: Send, reason: Reason, message: str, request_id: str) -> None:
    body = json.dumps(error_body(reason, message), ensure_ascii=False, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": reason.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _settings(scope: Scope) -> Settings:
    """The settings; an override of `get_settings` on the app (tests) is honoured, as by the routes."""
    app = scope.get("app")
    overrides = getattr(app, "dependency_overrides", None) or {}
    settings: Settings = overrides.get(get_settings, get_settings)()
    return settings


def _request_id(scope: Scope) -> str:
    context = scope.get("aws.context")
    request_id = getattr(context, "aws_request_id", None)
    return request_id if isinstance(request_id, str) and request_id else uuid.uuid4().hex


class GuardMiddleware:
    """Outermost layer: tags the request with an id and answers in the envelope whatever happens below."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = JSON_BODY_LIMIT,
        path_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Routes that take more than JSON (an upload): their own limit, by exact path.
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        arrived = time.perf_counter()
        # The one deadline of everything the request calls or waits for, counted from its arrival.
        deadline_start = time.monotonic()
        status = 500

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        # Every log line of the request carries its id; the access line comes last, whatever happened.
        with request_context(request_id):
            try:
                settings = _settings(scope)
                with request_deadline(Deadline(deadline_start + settings.request_budget_s)):
                    await self._guard(scope, receive, status_send, request_id, settings)
            finally:
                log_access(scope, status, arrived)

    async def _guard(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, settings: Settings
    ) -> None:
        if settings.problems:
            error = ServerMisconfigured(list(settings.problems))
            await _send_envelope(send, error.reason, error.message, request_id)
            return
        malformed = scope_problem(scope)
        if malformed is not None:
            await _send_envelope(send, Reason.INVALID_REQUEST, malformed.message, request_id)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.max_body_bytes)
        if self._declared_length(scope) > limit:
            await _send_envelope(send, Reason.PAYLOAD_TOO_LARGE, _too_large_message(limit), request_id)
            return

        started = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes through FastAPI's body parsing to the error handlers.
                    raise HTTPException(413, _too_large_message(limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            if not started:
                await _send_envelope(
                    send, Reason.INTERNAL_ERROR, f"服务器内部错误 (请求 ID: {request_id})", request_id
                )

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        headers: Any = scope.get("headers", [])
        for name, value in headers:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0
