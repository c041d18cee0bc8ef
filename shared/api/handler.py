"""Wraps an app for AWS Lambda (API Gateway v1/v2) and Tencent SCF (API Gateway trigger)."""

from __future__ import annotations

from fastapi import FastAPI
from mangum import Mangum

from shared.api.tencent import TencentAPIGateway
from shared.coldstart import resume_gc


def lambda_handler(app: FastAPI) -> Mangum:
    """A `handler(event, context)`. Lifespan is off: Mangum would run it on every invocation.

    Building it ends a function's cold start: the garbage collector paused by functions/__init__.py
    resumes here.
    """
    handler = Mangum(app, lifespan="off", custom_handlers=[TencentAPIGateway])
    resume_gc()
    return handler
