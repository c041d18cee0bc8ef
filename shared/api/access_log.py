"""One access-log line per request: method, route, status, duration, request id and hashed openid.

Never the query string, a header or a body. A request that matched no route is logged with its path
(cut to 128 characters, before the word the cut would split; the log formatter scrubs anything shaped
like a secret from it).
"""

from __future__ import annotations

import logging
import time

from starlette.types import Scope

from shared.logs import clip

logger = logging.getLogger(__name__)

MAX_PATH_CHARS = 128


def route_of(scope: Scope) -> str | None:
    """The path template of the route that served the request (`/api/v1/user/profile`), if any."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    if "{" not in template:
        # A route without parameters matched the path exactly (the route's own template lacks the
        # prefix of the router that included it).
        return str(scope.get("path", template))
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    full = getattr(context, "path_format", None)
    return full if isinstance(full, str) else template


def log_access(scope: Scope, status: int, started: float) -> None:
    """Log the request that `scope` describes; `started` is its `time.perf_counter()` at arrival."""
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    method = str(scope.get("method", ""))
    route = route_of(scope)
    fields: dict[str, object] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
    }
    if route is None:
        fields["path"] = clip(str(scope.get("path", "")), MAX_PATH_CHARS)
    logger.info("%s %s %d %.1fms", method, route or fields["path"], status, duration_ms, extra=fields)
