"""GET /.well-known/jwks.json: the public keys that verify our access tokens (served at the root)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from shared.api.envelope import success
from shared.api.schemas import JwksEnvelope, error_responses
from shared.keys import jwt_keys
from shared.settings import Settings, get_settings

router = APIRouter(tags=["keys"])

# Not shared.api.deps: that pulls in sessions and storage, and this function touches no storage.
SettingsDep = Annotated[Settings, Depends(get_settings)]

# Verifiers cache the set; they should fetch it again when they meet an unknown `kid` (a rotation).
CACHE_CONTROL = "public, max-age=300"


@router.get("/.well-known/jwks.json", response_model=JwksEnvelope, responses=error_responses())
def jwks(settings: SettingsDep) -> JSONResponse:
    """The JWK Set of the RS256/ES256 keys that verify our tokens (no `keys` with HS256 alone).

    The body is the usual envelope with `keys` also at the top level, so it is a valid RFC 7517
    JWK Set for standard clients (unknown members are ignored) and `data.keys` for ours."""
    keys = list(jwt_keys(settings).public_jwks)
    response = success({"keys": keys}, extra={"keys": keys})
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
