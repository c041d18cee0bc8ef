"""Wraps an app for AWS Lambda (API Gateway v1/v2) and Tencent SCF (API Gateway trigger)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from mangum import Mangum
from mangum.protocols import HTTPCycle
from mangum.types import LambdaContext, LambdaEvent

from shared.api.edge import MALFORMED_KEY, Malformed, event_problem, stand_in
from shared.api.tencent import TencentAPIGateway
from shared.coldstart import resume_gc


class EdgeMangum(Mangum):
    """Mangum that answers a malformed request 400 in the envelope instead of raising.

    Mangum builds the ASGI scope from the event's headers and raises on some that a client can send
    (`Host: a:b:c`, `X-Forwarded-Port: abc`, a lone surrogate): such an event, or one whose scope or
    body cannot be built at all, is served as `stand_in(event)` with the problem in the scope, and
    GuardMiddleware answers it (shared/api/edge.py). Lifespan is off: Mangum would run it on every
    invocation.
    """

    def __init__(self, app: FastAPI) -> None:
        super().__init__(app, lifespan="off", custom_handlers=[TencentAPIGateway])

    def __call__(self, event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        # Mangum sets a loop up once, when built; whatever ran since (an asyncio.run() in the same
        # thread) may have left none current, and Mangum's HTTPCycle asks for the current one.
        try:
            asyncio.get_event_loop()
        except RuntimeError:
            asyncio.set_event_loop(asyncio.new_event_loop())
        problem = event_problem(event)
        if problem is None:
            handler = self.infer(event, context)
            try:
                scope, body = handler.scope, handler.body
            except (ValueError, TypeError, AttributeError):  # UnicodeError and binascii.Error included
                problem = Malformed.REQUEST
        if problem is not None:
            handler = self.infer(stand_in(event), context)
            scope, body = handler.scope, handler.body
        scope[MALFORMED_KEY] = problem  # None too: the event was checked, the scope need not be again
        return handler(HTTPCycle(scope, body)(self.app))


def lambda_handler(app: FastAPI, *, storage: bool = True) -> Mangum:
    """A `handler(event, context)` for every gateway event we serve.

    Building it ends a function's cold start. With `storage` (every function but the JWKS one), the
    process's storage adapter is built here from the settings (no I/O: it connects on first use), so
    that its database driver loads during the cold start, not in the first request's time budget, and
    is frozen with the rest: the garbage collector paused by functions/__init__.py resumes here.
    """
    handler = EdgeMangum(app)
    if storage:
        from shared.api.deps import process_storage

        process_storage()
    resume_gc()
    return handler
