"""POST /wechat/decrypt."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared.api.deps import CurrentPrincipal, SettingsDep
from shared.api.envelope import success
from shared.api.schemas import BEARER, STORAGE, Envelope, error_responses
from shared.api.session_key_schemas import DecryptRequest
from shared.errors import Reason
from shared.session_key import decrypt_user_data

router = APIRouter(tags=["session_key"])


@router.post(
    "/wechat/decrypt",
    response_model=Envelope[dict[str, object]],
    responses=error_responses(*BEARER, Reason.DECRYPT_FAILED, *STORAGE),
)
def decrypt(body: DecryptRequest, principal: CurrentPrincipal, settings: SettingsDep) -> JSONResponse:
    """Decrypt the caller's open data (WeRun, share info, ...) with their session_key; watermark checked."""
    return success(decrypt_user_data(settings, principal.user, body.encryptedData, body.iv))
