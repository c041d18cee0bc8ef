"""Make moto's in-memory AWS apply each request atomically, as DynamoDB does.

DynamoDB applies every request to an item atomically: a conditional write sees no other write between
evaluating its condition and applying its change. moto's in-memory backend takes no lock, so requests
from several threads can interleave inside one another and two conditional writes can both succeed.
The dev server (uvicorn runs sync routes on a thread pool) and the concurrency tests need DynamoDB's
guarantee, so one lock around moto's request processing restores it; it costs little, since moto is
pure Python under the GIL anyway.
"""

from __future__ import annotations

import threading
from typing import Any


def make_moto_atomic() -> None:
    """Serialise moto's processing of requests (idempotent)."""
    from moto.core.models import botocore_stubber

    original = botocore_stubber.process_request
    if getattr(original, "atomic", False):
        return
    lock = threading.RLock()

    def process_request(request: Any) -> Any:
        with lock:
            return original(request)

    process_request.atomic = True  # type: ignore[attr-defined]
    botocore_stubber.process_request = process_request  # type: ignore[method-assign]
