"""Wraps an app for AWS Lambda (API Gateway v1/v2) and Tencent SCF (API Gateway trigger)."""

from __future__ import annotations

from fastapi import FastAPI
from mangum import Mangum

from shared.api.tencent import TencentAPIGateway


def lambda_handler(app: FastAPI) -> Mangum:
    """A `handler(event, context)`. Lifespan is off: Mangum would run it on every invocation."""
    return Mangum(app, lifespan="off", custom_handlers=[TencentAPIGateway])
