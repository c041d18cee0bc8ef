"""What the stored session_key is for: decrypting the user's open data and asking WeChat if it is valid.

The session_key is the one WeChat issued at the user's latest `wx.login` (stored encrypted at rest by
the login). A later `wx.login` replaces it on WeChat's side and in our store, so data encrypted under
an older key no longer decrypts: the client should `wx.login` again before fetching encryptedData.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.crypto import DecryptionError, decrypt_at_rest
from shared.errors import Reason, ServiceError
from shared.keys import session_key_cipher_key
from shared.settings import Settings
from shared.storage.base import User
from shared.wechat import errcode_of, raise_for_credentials, raise_for_rate_limit, wechat_unavailable
from shared.wechat_token import AccessTokenManager
from shared.wxcrypto import OpenDataError, decrypt_open_data, session_signature

logger = logging.getLogger(__name__)

CHECK_SESSION_PATH = "/wxa/checksession"
INVALID_SIGNATURE = 87009


def decrypt_failed(detail: str) -> ServiceError:
    """DECRYPT_FAILED, telling the client what to do; `detail` names the failed step, never data."""
    return ServiceError(Reason.DECRYPT_FAILED, f"数据解密失败 ({detail}), 请先重新 wx.login 再获取加密数据")


def stored_session_key(settings: Settings, user: User) -> str | None:
    """The user's current session_key in clear, or None when none is stored or it no longer decrypts."""
    if not user.session_key_enc:
        return None
    try:
        return decrypt_at_rest(session_key_cipher_key(settings), user.session_key_enc, user.openid)
    except DecryptionError:
        # SESSION_KEY_ENCRYPTION_KEY was changed since this login: the key is lost, a new login restores it.
        logger.warning("stored session_key does not decrypt with the configured key")
        return None


def decrypt_user_data(settings: Settings, user: User, encrypted_data: str, iv: str) -> dict[str, Any]:
    """Decrypt open data the mini-program got for this user, checking it was made for our appid."""
    session_key = stored_session_key(settings, user)
    if session_key is None:
        raise decrypt_failed("no session_key")
    try:
        return decrypt_open_data(session_key, encrypted_data, iv, settings.wx_appid)
    except OpenDataError as exc:
        logger.info("open data rejected: %s", exc)
        raise decrypt_failed(str(exc)) from None


def check_session_key(settings: Settings, tokens: AccessTokenManager, user: User) -> bool:
    """Ask WeChat whether the stored session_key is still the user's valid one."""
    session_key = stored_session_key(settings, user)
    if session_key is None:
        return False
    params = {"openid": user.openid, "signature": session_signature(session_key), "sig_method": "hmac_sha256"}
    errcode = errcode_of(tokens.call("GET", CHECK_SESSION_PATH, params=params))
    if errcode == 0:
        return True
    if errcode == INVALID_SIGNATURE:
        return False
    raise_for_rate_limit(errcode)
    raise_for_credentials(errcode)
    raise wechat_unavailable(f"错误码: {errcode}")
