"""POST /auth/logout."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared.api.deps import BearerToken, SettingsDep, StorageDep
from shared.api.envelope import success
from shared.api.schemas import STORAGE, Envelope, LogoutRequest, MessageData, error_responses
from shared.auth import logout
from shared.errors import Reason

router = APIRouter(tags=["auth"])

LOGGED_OUT = "退出成功"


@router.post(
    "/auth/logout",
    response_model=Envelope[MessageData],
    responses=error_responses(Reason.TOKEN_MISSING, Reason.TOKEN_INVALID, *STORAGE),
)
def logout_session(
    settings: SettingsDep, store: StorageDep, token: BearerToken, body: LogoutRequest | None = None
) -> JSONResponse:
    """Revoke this session at once, or every session of the user with `{"all": true}`."""
    logout(settings, store, token, everywhere=body is not None and body.all)
    return success({"message": LOGGED_OUT}, message=LOGGED_OUT)
