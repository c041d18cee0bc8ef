"""Property tests (hypothesis) on tokens, the envelope, timestamps and request validation."""

from __future__ import annotations

import json
import re
import string
from datetime import datetime, timezone
from functools import cache
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared import clock
from shared.api.envelope import error_body, success
from shared.api.schemas import LoginRequest, ProfilePatch, RefreshRequest
from shared.errors import Reason, ServiceError
from shared.settings import load_settings
from shared.tokens import AccessClaims, issue_access_token, verify_access_token
from tests.key_material import BASE_ENV, Forger, asymmetric_settings, b64

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FAST = settings(max_examples=150, deadline=None)

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.none() | st.booleans() | st.integers() | finite_floats | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@cache
def forger(algorithm: str) -> Forger:
    return Forger(load_settings(BASE_ENV) if algorithm == "HS256" else asymmetric_settings(algorithm))


algorithms = st.sampled_from(["HS256", "RS256", "ES256"])


def outcome(f: Forger, token: str) -> AccessClaims | Reason:
    """The verdict on a token; any exception but ServiceError fails the property."""
    try:
        return verify_access_token(f.settings, f.keys, token)
    except ServiceError as exc:
        return exc.reason


@FAST
@given(
    algorithm=algorithms, token=st.text(max_size=300) | st.text(string.ascii_letters + "-_.=", max_size=300)
)
def test_any_text_is_token_invalid_and_nothing_else_is_raised(algorithm, token):
    assert outcome(forger(algorithm), token) is Reason.TOKEN_INVALID


@FAST
@given(
    algorithm=algorithms,
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jku", "crit", "x"]), json_values),
    payload=json_values,
    signature=st.binary(max_size=300),
)
def test_any_json_segments_with_any_signature_are_token_invalid(algorithm, header, payload, signature):
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"
    assert outcome(forger(algorithm), token) is Reason.TOKEN_INVALID


claim_values = (
    json_values | st.integers(min_value=-(2**70), max_value=2**70) | st.text(string.digits, max_size=25)
)


@FAST
@given(
    algorithm=algorithms,
    changes=st.dictionaries(
        st.sampled_from(["iss", "aud", "sub", "openid", "sid", "iat", "exp", "nbf", "jti", "x"]), claim_values
    ),
    extra_header=st.dictionaries(st.sampled_from(["kid", "typ", "cty"]), json_values, max_size=1),
)
def test_any_claims_signed_with_our_key_verify_only_when_each_claim_is_right(
    algorithm, changes, extra_header
):
    """Even with a genuine signature, a token verifies only with all claims well-formed; otherwise
    it is TOKEN_INVALID or (only past exp) TOKEN_EXPIRED, and nothing else is ever raised."""
    f = forger(algorithm)
    claims = f.claims(**changes)
    result = outcome(f, f.sign(claims, **extra_header))
    if isinstance(result, AccessClaims):
        assert extra_header in ({}, {"kid": f.kid}, {"typ": "JWT"})
        assert claims["iss"] == f.settings.jwt_issuer
        assert claims["aud"] in (f.settings.jwt_audience, [f.settings.jwt_audience])
        assert str(result.user_id) == claims["sub"] and claims["sub"].isascii()
        assert (result.sid, result.openid, result.expires_at) == (
            claims["sid"],
            claims["openid"],
            claims["exp"],
        )
        assert claims["iat"] <= clock.now() + 30 and claims["exp"] > clock.now() - 30
    else:
        assert result in (Reason.TOKEN_INVALID, Reason.TOKEN_EXPIRED)
        if result is Reason.TOKEN_EXPIRED:
            assert isinstance(claims["exp"], int) and claims["exp"] <= clock.now() - 30


@FAST
@given(
    algorithm=algorithms,
    user_id=st.integers(min_value=1, max_value=10**18),
    openid=st.text(min_size=1, max_size=128),
    nickname=st.text(max_size=50),
    sid=st.text(min_size=1, max_size=64),
)
def test_every_token_we_issue_verifies_to_what_it_was_issued_for(algorithm, user_id, openid, nickname, sid):
    f = forger(algorithm)
    token = issue_access_token(
        f.settings, f.keys, user_id=user_id, openid=openid, nickname=nickname, sid=sid, now=clock.now()
    )
    verified = verify_access_token(f.settings, f.keys, token)
    assert (verified.user_id, verified.openid, verified.sid) == (user_id, openid, sid)


@FAST
@given(reason=st.sampled_from(list(Reason)), message=st.text(max_size=200))
def test_every_error_envelope_is_consistent(reason, message):
    body = error_body(reason, message)
    assert body["code"] == reason.status and body["reason"] == reason.value
    assert body["error"] == HTTPStatus(reason.status).phrase and body["message"] == message
    assert TIMESTAMP.fullmatch(body["timestamp"])
    assert json.loads(json.dumps(body, ensure_ascii=False)) == body


@FAST
@given(data=json_values, message=st.text(max_size=40))
def test_every_success_envelope_carries_its_data_unchanged(data, message):
    response = success(data, message)
    body = json.loads(bytes(response.body))
    assert response.status_code == 200 and set(body) == {"code", "message", "data", "timestamp"}
    assert (body["code"], body["message"], body["data"]) == (200, message, data)
    assert TIMESTAMP.fullmatch(body["timestamp"])


@FAST
@given(
    seconds=st.floats(min_value=0, max_value=253402300799, allow_nan=False),
    later=st.floats(min_value=0, max_value=10**6),
)
def test_iso_ms_is_utc_millisecond_z_close_to_the_instant_and_ordered(seconds, later):
    text = clock.iso_ms(seconds)
    assert TIMESTAMP.fullmatch(text)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
    assert abs(parsed - seconds) < 0.001 + 1e-6 * max(1.0, seconds / 1e9)
    if seconds + later <= 253402300799:
        assert clock.iso_ms(seconds + later) >= text  # fixed width: text order is time order


codes = st.from_regex(r"[\x21-\x7e]{1,128}", fullmatch=True)
names = st.text(max_size=50).map(str.strip).filter(lambda s: not CONTROL.search(s))
urls = st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.text(string.ascii_lowercase, min_size=1, max_size=20),
    st.text(string.ascii_letters + string.digits + "-_./", max_size=100),
)


@FAST
@given(code=codes, nick=st.none() | names, avatar=st.none() | urls)
def test_valid_login_requests_round_trip(code, nick, avatar):
    request = LoginRequest(code=code, nickName=nick, avatarUrl=avatar)
    dumped = request.model_dump(exclude_none=True)
    assert LoginRequest.model_validate(dumped) == request
    assert LoginRequest.model_validate_json(json.dumps(dumped)) == request


@FAST
@given(
    body=json_values | st.dictionaries(st.sampled_from(["code", "nickName", "avatarUrl", "x"]), json_values)
)
def test_any_json_is_a_valid_login_request_or_a_validation_error(body):
    try:
        request = LoginRequest.model_validate(body)
    except ValidationError:
        return
    assert re.fullmatch(r"[\x21-\x7e]{1,128}", request.code)
    assert request.nickName is None or (len(request.nickName) <= 50 and not CONTROL.search(request.nickName))
    assert request.avatarUrl is None or (
        request.avatarUrl.startswith("https://") and len(request.avatarUrl) <= 255
    )


@FAST
@given(body=st.dictionaries(st.sampled_from(["nickname", "avatar", "bio", "x"]), json_values))
def test_any_json_is_a_valid_profile_patch_or_a_validation_error(body):
    try:
        patch = ProfilePatch.model_validate(body)
    except ValidationError:
        return
    fields = patch.model_dump(exclude_none=True)
    assert fields and set(fields) <= {"nickname", "avatar", "bio"}
    assert ProfilePatch.model_validate(fields) == patch
    assert patch.nickname is None or 1 <= len(patch.nickname) <= 50
    assert patch.bio is None or len(patch.bio) <= 200


@FAST
@given(token=st.text(min_size=1, max_size=256))
def test_refresh_requests_round_trip(token):
    assert RefreshRequest.model_validate_json(json.dumps({"refresh_token": token})).refresh_token == token


@pytest.mark.parametrize("value", [True, 1, 1.0, ["x"], {"a": 1}, None])
def test_strict_models_never_coerce(value: Any):
    with pytest.raises(ValidationError):
        LoginRequest.model_validate({"code": value})
