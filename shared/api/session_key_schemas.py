"""Request and response shapes of the routes that use the user's session_key (phone, decrypt, check)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, model_validator

from shared.api.schemas import Code, StrictModel

_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# Open data (WeRun's 30 days, share info, a phone number) is a few KiB; the body limit is 16 KiB.
MAX_ENCRYPTED_DATA = 12_000


def _base64(max_length: int, *, exact: int | None = None) -> AfterValidator:
    def check(value: str) -> str:
        if exact is not None and len(value) != exact:
            raise ValueError(f"must be {exact} base64 characters")
        if len(value) > max_length or not _BASE64.fullmatch(value) or len(value) % 4:
            raise ValueError(f"must be base64, at most {max_length} characters")
        return value

    return AfterValidator(check)


EncryptedData = Annotated[str, _base64(MAX_ENCRYPTED_DATA)]
# 16 bytes in base64.
Iv = Annotated[str, _base64(24, exact=24)]


class DecryptRequest(StrictModel):
    encryptedData: EncryptedData = Field(description="From the mini-program API (wx.getWeRunData, ...)")
    iv: Iv = Field(description="The iv that came with encryptedData")


class PhoneRequest(StrictModel):
    """Either `code` (getPhoneNumber button, base library 2.21.2+) or `encryptedData` + `iv` (older)."""

    code: Code | None = Field(default=None, description="e.detail.code of the getPhoneNumber button")
    encryptedData: EncryptedData | None = Field(default=None, description="e.detail.encryptedData (legacy)")
    iv: Iv | None = Field(default=None, description="e.detail.iv (legacy)")

    @model_validator(mode="after")
    def _one_flow(self) -> PhoneRequest:
        legacy = (self.encryptedData, self.iv)
        if self.code is not None:
            if any(part is not None for part in legacy):
                raise ValueError("give either code or encryptedData and iv, not both")
        elif any(part is None for part in legacy):
            raise ValueError("give code, or both encryptedData and iv")
        return self


class PhoneData(BaseModel):
    phone_number: str = Field(description="With the country code for numbers outside mainland China")
    pure_phone_number: str
    country_code: str
    masked: str = Field(description="e.g. 138****8000, as the profile shows it")


class SessionCheckData(BaseModel):
    valid: bool
