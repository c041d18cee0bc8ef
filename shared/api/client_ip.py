"""The caller's IP address, as the gateway saw the TCP connection: what per-IP limits are keyed by.

Mangum puts API Gateway's `requestContext.http.sourceIp` (HTTP API) or
`requestContext.identity.sourceIp` (REST API) in the ASGI scope's `client`; our Tencent handler puts
Tencent's `requestContext.sourceIp` there. `X-Forwarded-For` is never read: a client can send any value
in it and the gateway only appends to it; sourceIp is the connection's peer, or the entry that AWS's
own edge appended, never what the client wrote. Behind a proxy of your own it is the proxy's address:
per-IP limits would then lump every user together (set LOGIN_FAILURE_LIMIT_PER_IP=0 there).
Locally, uvicorn sets `client` to the peer address.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request


def client_ip(request: Request) -> str | None:
    """The source IP of the request, or None when the transport did not say."""
    return request.client.host if request.client is not None and request.client.host else None


ClientIp = Annotated[str | None, Depends(client_ip)]
