"""Every route of the API and its methods, whichever function serves it.

Each function's app knows its own routes only, and on AWS a request that matches no route of the HTTP
API reaches the function of the `$default` route (serverless.yml). For `DELETE /api/v1/user/profile`
that function must still answer 405 with `Allow: GET, PATCH`, not 404: the error handlers
(shared/api/errors.py) look the path up here. tests/integration/test_routes.py checks that this table
is exactly the union of the functions' routes and of serverless.yml's.
"""

from __future__ import annotations

import re
from functools import lru_cache

from starlette.routing import compile_path

ROUTES: dict[str, frozenset[str]] = {
    "/api/v1/auth/wx-login": frozenset({"POST"}),
    "/api/v1/auth/refresh": frozenset({"POST"}),
    "/api/v1/auth/logout": frozenset({"POST"}),
    "/api/v1/auth/phone": frozenset({"POST"}),
    "/api/v1/auth/session-check": frozenset({"GET"}),
    "/api/v1/user/profile": frozenset({"GET", "PATCH"}),
    "/api/v1/user/avatar": frozenset({"POST"}),
    "/api/v1/wechat/decrypt": frozenset({"POST"}),
    "/.well-known/jwks.json": frozenset({"GET"}),
}


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[re.Pattern[str], frozenset[str]], ...]:
    return tuple((compile_path(template)[0], methods) for template, methods in ROUTES.items())


def methods_of(path: str) -> frozenset[str]:
    """The methods of the API's route at `path` (empty when there is no such route)."""
    found: set[str] = set()
    for pattern, methods in _patterns():
        if pattern.fullmatch(path):
            found |= methods
    return frozenset(found)
