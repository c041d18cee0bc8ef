"""The one place the service reads the wall clock, so tests can move time."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now() -> float:
    """Seconds since the epoch."""
    return time.time()


def iso_ms(seconds: float) -> str:
    """UTC ISO 8601 with milliseconds and `Z`, as every timestamp in the API."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def micros(seconds: float) -> int:
    """Integer microseconds, for ordering events that may fall in the same millisecond."""
    return int(seconds * 1_000_000)
