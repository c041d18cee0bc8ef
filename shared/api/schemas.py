"""Request validation at the edge, and response shapes for the OpenAPI page."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from shared.errors import Reason

_CODE = re.compile(r"[\x21-\x7e]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(max_length: int, *, min_length: int = 0) -> AfterValidator:
    def check(value: str) -> str:
        value = value.strip()
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        if not min_length <= len(value) <= max_length:
            raise ValueError(f"must be {min_length} to {max_length} characters after trimming")
        return value

    return AfterValidator(check)


def _https_url(value: str) -> str:
    if len(value) > 255:
        raise ValueError("must be at most 255 characters")
    parts = urlsplit(value)
    # startswith, not only the parsed scheme: urlsplit lowercases "HTTPS:" and the contract says https://.
    if not value.startswith("https://") or not parts.hostname or _CONTROL.search(value) or " " in value:
        raise ValueError("must be an https:// URL")
    return value


def _code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise ValueError("must be 1 to 128 printable ASCII characters without spaces")
    return value


def _documented(**schema: Any) -> WithJsonSchema:
    # The OpenAPI schema says what the validators check, for generated clients and for fuzzers.
    return WithJsonSchema({"type": "string", **schema})


_TEXT = "[^\\x00-\\x1f\\x7f]"  # no control characters
HttpsUrl = Annotated[
    str, AfterValidator(_https_url), _documented(maxLength=255, pattern="^https://[^\\s\\x00-\\x1f\\x7f]+$")
]
Code = Annotated[str, AfterValidator(_code), _documented(maxLength=128, pattern="^[!-~]{1,128}$")]
Nickname = Annotated[str, _text(50, min_length=1), _documented(maxLength=50, pattern=f"^{_TEXT}+$")]
LoginNickname = Annotated[str, _text(50), _documented(maxLength=50, pattern=f"^{_TEXT}*$")]
Bio = Annotated[str, _text(200), _documented(maxLength=200, pattern=f"^{_TEXT}*$")]


class StrictModel(BaseModel):
    """Request bodies: unknown fields are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class LoginRequest(StrictModel):
    code: Code = Field(description="The one-time code from wx.login()")
    nickName: LoginNickname | None = Field(default=None, description="Optional, at most 50 characters")
    avatarUrl: HttpsUrl | None = Field(default=None, description="Optional https:// URL, at most 255")
    phoneCode: Code | None = Field(
        default=None, description="Optional code from <button open-type=getPhoneNumber>: also binds the phone"
    )


class RefreshRequest(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class LogoutRequest(StrictModel):
    all: bool = False


class ProfilePatch(StrictModel):
    nickname: Nickname | None = None
    avatar: HttpsUrl | None = None
    bio: Bio | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls_and_something_to_change(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # Only our own field names are named: any other key is client input (and refused anyway).
            nulls = [name for name, value in data.items() if value is None and name in cls.model_fields]
            if nulls:
                raise ValueError(f"{', '.join(nulls)} must not be null")
            if not data:
                raise ValueError("nothing to change: give nickname, avatar or bio")
        return data


# Response shapes, documented on the OpenAPI page.

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    code: int = 200
    message: str = "success"
    data: T
    timestamp: str


class ErrorEnvelope(BaseModel):
    """Every error answer: HTTP status == `code`; clients branch on `reason`, never on `message`."""

    code: int
    message: str
    error: str = Field(description="The HTTP reason phrase (informational)")
    reason: Reason
    timestamp: str


class UserSummary(BaseModel):
    id: int
    openid: str
    nickname: str
    avatar: str
    created_at: str


class Profile(UserSummary):
    bio: str
    recipe_count: int
    follower_count: int
    following_count: int
    favorite_count: int
    updated_at: str
    phone_masked: str


class AccessTokenData(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


class TokenPairData(AccessTokenData):
    refresh_token: str
    refresh_expires_in: int


class LoginData(TokenPairData):
    is_new_user: bool
    user: UserSummary
    phone_masked: str | None = Field(default=None, description="With phoneCode, once the phone is bound")
    phone_error: str | None = Field(
        default=None, description="With phoneCode, when binding failed (PHONE_CODE_INVALID, ...)"
    )


class MessageData(BaseModel):
    message: str


class PublicJwk(BaseModel):
    kty: str = Field(description="`RSA` or `EC`")
    kid: str = Field(description="RFC 7638 SHA-256 thumbprint of the key, as in the tokens' `kid`")
    use: str = "sig"
    alg: str = Field(description="`RS256` or `ES256`: the only algorithm this key verifies")
    n: str | None = Field(default=None, description="RSA modulus")
    e: str | None = Field(default=None, description="RSA exponent")
    crv: str | None = Field(default=None, description="`P-256`")
    x: str | None = None
    y: str | None = None


class JwkSet(BaseModel):
    keys: list[PublicJwk]


class JwksEnvelope(Envelope[JwkSet]):
    """The envelope, plus the JWK Set's `keys` at the top level for standard JWKS clients."""

    keys: list[PublicJwk]


# What any operation may answer: a malformed request (headers, encodings, body), a body over the
# limit (GuardMiddleware), and a server that is misconfigured or fails unforeseen.
_ANY = (Reason.INVALID_REQUEST, Reason.PAYLOAD_TOO_LARGE, Reason.SERVER_MISCONFIGURED, Reason.INTERNAL_ERROR)
BEARER = (Reason.TOKEN_MISSING, Reason.TOKEN_EXPIRED, Reason.TOKEN_INVALID, Reason.SESSION_REVOKED)
"""A bearer-authenticated route's token answers."""
STORAGE = (Reason.STORAGE_UNAVAILABLE,)
"""A route that reads or writes the database."""
WECHAT = (Reason.WECHAT_RATE_LIMITED, Reason.WECHAT_UNAVAILABLE)
"""A route that calls WeChat's server API."""


def error_responses(*reasons: Reason) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of an operation that can answer `reasons` (and what any operation can):
    per status, the envelope and the reasons it carries there, as they are sent."""
    by_status: dict[int, list[Reason]] = {}
    for reason in (*_ANY, *reasons):
        if reason not in by_status.setdefault(reason.status, []):
            by_status[reason.status].append(reason)
    return {
        status: {
            "model": ErrorEnvelope,
            "description": f"{HTTPStatus(status).phrase}: " + ", ".join(f"`{r.value}`" for r in found),
        }
        for status, found in sorted(by_status.items())
    }
