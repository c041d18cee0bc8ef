"""The caller's IP address, as the platform saw the TCP connection: what per-IP limits are keyed by.

It is the ASGI scope's `client`, which each adapter fills from what the platform itself writes, never
from a header a client can set:

- AWS API Gateway REST API (payload 1.0): `requestContext.identity.sourceIp` (Mangum).
- AWS API Gateway HTTP API (payload 2.0): `requestContext.http.sourceIp` (Mangum).
- Tencent API Gateway trigger: `requestContext.sourceIp` (shared/api/tencent.py).
- Tencent SCF Function URL: the `x-scf-remote-addr` header, which SCF itself sets (the contract's
  event format); the Function URL adapter must take that one header, and no other, into `client`.
- `make dev`: the socket's peer address; uvicorn runs without proxy headers (local/devserver.py), so
  `X-Forwarded-For` cannot choose it.

`X-Forwarded-For`, `X-Real-IP` and the like are never read: a client can send any value in them and a
gateway only appends to them. Behind a proxy of your own the address is the proxy's: per-IP limits
would then lump every user together (set LOGIN_FAILURE_LIMIT_PER_IP=0 there).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request


def client_ip(request: Request) -> str | None:
    """The source IP of the request, or None when the transport did not say."""
    return request.client.host if request.client is not None and request.client.host else None


ClientIp = Annotated[str | None, Depends(client_ip)]
