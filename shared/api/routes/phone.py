"""POST /auth/phone."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared import clock
from shared.api.deps import CurrentPrincipal, SettingsDep, StorageDep
from shared.api.envelope import success
from shared.api.schemas import BEARER, STORAGE, WECHAT, Envelope, error_responses
from shared.api.session_key_schemas import PhoneData, PhoneRequest
from shared.api.wechat_deps import AccessTokensDep
from shared.errors import Reason
from shared.phone import phone_from_code, phone_from_encrypted, save_phone

router = APIRouter(tags=["session_key"])


@router.post(
    "/auth/phone",
    response_model=Envelope[PhoneData],
    responses=error_responses(*BEARER, Reason.PHONE_CODE_INVALID, Reason.DECRYPT_FAILED, *WECHAT, *STORAGE),
)
def bind_phone_number(
    body: PhoneRequest,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    store: StorageDep,
    tokens: AccessTokensDep,
) -> JSONResponse:
    """Bind the caller's phone number from a getPhoneNumber `code`, or legacy `encryptedData` + `iv`."""
    if body.code is not None:
        phone = phone_from_code(tokens, body.code)
    else:
        assert body.encryptedData is not None and body.iv is not None  # checked by PhoneRequest
        phone = phone_from_encrypted(settings, principal.user, body.encryptedData, body.iv)
    save_phone(settings, store, principal.user, phone, clock.now())
    return success(phone.answer())
