"""Wraps an app for AWS Lambda (API Gateway v1/v2) and Tencent SCF (API Gateway trigger)."""

from __future__ import annotations

from fastapi import FastAPI
from mangum import Mangum

from shared.api.tencent import TencentAPIGateway
from shared.coldstart import resume_gc


def lambda_handler(app: FastAPI, *, storage: bool = True) -> Mangum:
    """A `handler(event, context)`. Lifespan is off: Mangum would run it on every invocation.

    Building it ends a function's cold start. With `storage` (every function but the JWKS one), the
    process's storage adapter is built here from the settings (no I/O: it connects on first use), so
    that its database driver loads during the cold start, not in the first request's time budget, and
    is frozen with the rest: the garbage collector paused by functions/__init__.py resumes here.
    """
    handler = Mangum(app, lifespan="off", custom_handlers=[TencentAPIGateway])
    if storage:
        from shared.api.deps import process_storage

        process_storage()
    resume_gc()
    return handler
