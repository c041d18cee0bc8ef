"""One deadline per request, shared by everything the request waits for: WeChat, storage and another
instance's work (a login claim, an access_token refresh).

Each outbound call bounding only itself let a login with several WeChat calls run past the function's
timeout, killed after its codes were spent. The HTTP layer sets the request's deadline once, when the
request arrives (`request_deadline`); code deep in the domain reads it with `current()`. It lives in a
context variable, which FastAPI's threadpool (anyio) copies into the thread of a sync endpoint.
Outside a request (a CLI, a test calling the domain directly) each `current()` is a fresh default.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# The default and largest budget of a deployed function's request: its answer is out before the
# contract's 10 s. (`make dev` and the tests, with no function timeout, may allow their requests more.)
DEFAULT_BUDGET_S = 9.0
MAX_BUDGET_S = 9.0
# No request lives longer than this: the functions' timeout (serverless.yml, infra/tencent/; checked by
# tests/unit/test_deadline.py to leave room, past the budget, for a storage call in flight at the deadline).
# What a request holds for others to wait on (a login claim, a token refresh lease) is held this long,
# so it lapses by itself only when its holder was killed.
REQUEST_LIFETIME_S = 13


@dataclass(frozen=True)
class Deadline:
    """An instant on the monotonic clock by which the request must be answered."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline `seconds` from now."""
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left (0 once expired)."""
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at


_current: ContextVar[Deadline | None] = ContextVar("wx_login_request_deadline", default=None)


def current() -> Deadline:
    """The current request's deadline; outside a request, a fresh one of DEFAULT_BUDGET_S."""
    deadline = _current.get()
    return deadline if deadline is not None else Deadline.after(DEFAULT_BUDGET_S)


@contextmanager
def request_deadline(deadline: Deadline) -> Iterator[Deadline]:
    """Make `deadline` the current one for the block (the HTTP layer, once per request)."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
