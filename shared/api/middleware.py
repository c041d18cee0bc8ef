"""ASGI middleware: request ids, the body-size limit, refusing to serve when misconfigured,
and the last-resort INTERNAL_ERROR answer."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api.envelope import error_body
from shared.errors import Reason, ServerMisconfigured
from shared.settings import get_settings

logger = logging.getLogger(__name__)

JSON_BODY_LIMIT = 16 * 1024


async def _send_envelope(send: Send, reason: Reason, message: str, request_id: str) -> None:
    body = json.dumps(error_body(reason, message), ensure_ascii=False, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": reason.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _request_id(scope: Scope) -> str:
    context = scope.get("aws.context")
    request_id = getattr(context, "aws_request_id", None)
    return request_id if isinstance(request_id, str) and request_id else uuid.uuid4().hex


class GuardMiddleware:
    """Outermost layer: tags the request with an id and answers in the envelope whatever happens below."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = JSON_BODY_LIMIT) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        settings = get_settings()
        if settings.problems:
            error = ServerMisconfigured(list(settings.problems))
            await _send_envelope(send, error.reason, error.message, request_id)
            return
        if self._declared_length(scope) > self.max_body_bytes:
            await _send_envelope(send, Reason.PAYLOAD_TOO_LARGE, self._too_large_message(), request_id)
            return

        started = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # An HTTPException passes through FastAPI's body parsing to the error handlers.
                    raise HTTPException(413, self._too_large_message())
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

    def _too_large_message(self) -> str:
        return f"请求体过大 (上限 {self.max_body_bytes // 1024} KiB)"

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
