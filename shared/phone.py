"""Binding a user's phone number: from a getPhoneNumber `code` (via WeChat) or legacy encryptedData
(via the stored session_key); stored encrypted at rest, shown masked."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.crypto import DecryptionError, decrypt_at_rest, derive_key, encrypt_at_rest
from shared.errors import Reason, ServiceError
from shared.session_key import decrypt_failed, decrypt_user_data
from shared.settings import Settings
from shared.storage.base import Storage, User
from shared.users import bind_phone
from shared.wechat import raise_for_credentials, raise_for_rate_limit, wechat_unavailable
from shared.wechat_token import AccessTokenManager

logger = logging.getLogger(__name__)

PHONE_NUMBER_PATH = "/wxa/business/getuserphonenumber"
# WeChat's answers to a phone code that is wrong, expired, already used or missing.
PHONE_CODE_REJECTED = {40029: "invalid code", 40163: "code been used", 41008: "missing code"}


@dataclass(frozen=True)
class PhoneNumber:
    """A phone number as WeChat gives it. Never logged (repr hides the number)."""

    phone_number: str = field(repr=False)
    pure_phone_number: str = field(repr=False)
    country_code: str

    @property
    def masked(self) -> str:
        """`138****8000`: the first 3 and last 4 digits of an 11-digit number, fewer for short ones."""
        return mask_phone(self.pure_phone_number)

    def answer(self) -> dict[str, str]:
        """The phone endpoint's answer: the full number (to its owner only) and the masked form."""
        return {**asdict(self), "masked": self.masked}


def mask_phone(number: str) -> str:
    """Mask a phone number, keeping what users recognise their own number by."""
    if len(number) >= 11:
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    if len(number) > 4:
        return "*" * (len(number) - 4) + number[-4:]
    return "*" * len(number)


def _parse(info: Any) -> PhoneNumber | None:
    if not isinstance(info, dict):
        return None
    values = [info.get(name) for name in ("phoneNumber", "purePhoneNumber", "countryCode")]
    if not all(
        isinstance(value, str | int) and not isinstance(value, bool) and str(value) for value in values
    ):
        return None
    phone, pure, country = (str(value) for value in values)
    return PhoneNumber(phone, pure, country)


def phone_from_code(tokens: AccessTokenManager, code: str) -> PhoneNumber:
    """Exchange a getPhoneNumber button's code at WeChat for the number; PHONE_CODE_INVALID if rejected."""
    answer = tokens.send("POST", PHONE_NUMBER_PATH, json={"code": code})
    body, errcode = answer.body, answer.errcode
    if errcode in PHONE_CODE_REJECTED and answer.retried_after_reaching:
        # An earlier attempt may have spent the code before its answer was lost on the way back.
        raise wechat_unavailable(f"错误码: {errcode} after a retry")
    if errcode in PHONE_CODE_REJECTED:
        raise ServiceError(
            Reason.PHONE_CODE_INVALID,
            f"手机号授权失败: {PHONE_CODE_REJECTED[errcode]} (错误码: {errcode})",
        )
    raise_for_rate_limit(errcode)
    raise_for_credentials(errcode)
    if errcode != 0:
        raise wechat_unavailable(f"错误码: {errcode}")
    phone = _parse(body.get("phone_info"))
    if phone is None:
        raise wechat_unavailable("incomplete phone_info")
    return phone


def phone_from_encrypted(settings: Settings, user: User, encrypted_data: str, iv: str) -> PhoneNumber:
    """Decrypt a legacy getPhoneNumber answer with the user's stored session_key (watermark checked)."""
    phone = _parse(decrypt_user_data(settings, user, encrypted_data, iv))
    if phone is None:
        raise decrypt_failed("not phone number data")
    return phone


def _phone_key(settings: Settings) -> bytes:
    return derive_key(settings.session_key_encryption_key, "phone-number")


def save_phone(settings: Settings, store: Storage, user: User, phone: PhoneNumber, now: float) -> User:
    """Store the number on the user, encrypted at rest (bound to its openid), with its masked form."""
    sealed = encrypt_at_rest(_phone_key(settings), json.dumps(asdict(phone)), f"phone#{user.openid}")
    return bind_phone(store, user, phone_enc=sealed, phone_masked=phone.masked, now=now)


def stored_phone(settings: Settings, user: User) -> PhoneNumber | None:
    """The user's bound number in clear, or None (none bound, or the encryption key changed)."""
    if not user.phone_enc:
        return None
    try:
        fields = json.loads(decrypt_at_rest(_phone_key(settings), user.phone_enc, f"phone#{user.openid}"))
    except DecryptionError:
        return None
    return PhoneNumber(**fields)
