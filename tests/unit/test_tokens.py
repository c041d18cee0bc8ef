import base64
import json
import time

import jwt
import pytest

from shared.errors import Reason, ServiceError
from shared.settings import load_settings
from shared.tokens import (
    KeyRing,
    issue_access_token,
    new_refresh_token,
    new_session_id,
    next_refresh_token,
    refresh_token_session,
    verify_access_token,
)

SECRET = "s" * 40
SETTINGS = load_settings({"STAGE": "local", "WX_APPID": "wxapp", "JWT_SECRET": SECRET})
KEYS = KeyRing.from_settings(SETTINGS)


def issue(**overrides):
    return issue_access_token(
        SETTINGS,
        KEYS,
        user_id=7,
        openid="o-7",
        nickname="n",
        sid="sid-7",
        now=overrides.get("now", time.time()),
    )


def claims(**changes):
    now = int(time.time())
    base = {
        "iss": "wx-login",
        "aud": "wxapp",
        "sub": "7",
        "openid": "o-7",
        "sid": "sid-7",
        "iat": now,
        "exp": now + 600,
        "jti": "j",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def forge(payload, key=SECRET.encode(), alg="HS256", headers=None):
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": KEYS.signing_kid, **(headers or {})})


def reason_of(token, **kwargs):
    with pytest.raises(ServiceError) as caught:
        verify_access_token(SETTINGS, KEYS, token, **kwargs)
    return caught.value.reason


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_issued_token_verifies_with_all_contract_claims():
    token = issue()
    verified = verify_access_token(SETTINGS, KEYS, token)
    assert (verified.user_id, verified.openid, verified.sid) == (7, "o-7", "sid-7")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["kid"] == KEYS.signing_kid
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"iss", "aud", "sub", "openid", "nickname", "sid", "iat", "exp", "jti"}
    assert payload["sub"] == "7" and payload["exp"] - payload["iat"] == SETTINGS.access_token_ttl


def test_alg_none_is_invalid():
    unsigned = f"{b64({'alg': 'none', 'kid': KEYS.signing_kid})}.{b64(claims())}."
    assert reason_of(unsigned) is Reason.TOKEN_INVALID
    for alg in ("None", "NONE"):
        assert (
            reason_of(f"{b64({'alg': alg, 'kid': KEYS.signing_kid})}.{b64(claims())}.")
            is Reason.TOKEN_INVALID
        )


@pytest.mark.parametrize(
    "token_factory",
    [
        lambda: forge(claims(), key=b"w" * 40),
        lambda: forge(claims(), key=b"s" * 64, alg="HS512"),
        lambda: issue()[:-3] + ("aaa" if not issue().endswith("aaa") else "bbb"),
        lambda: ".".join([issue().split(".")[0], b64(claims(sub="8")), issue().split(".")[2]]),
        lambda: forge(claims(iss="someone-else")),
        lambda: forge(claims(aud="other-app")),
        lambda: forge(claims(exp=None)),
        lambda: forge(claims(iat=None)),
        lambda: forge(claims(sid=None)),
        lambda: forge(claims(sub=None)),
        lambda: forge(claims(sub="not-a-number")),
        lambda: forge(claims(), headers={"kid": "unknown"}),
        lambda: jwt.encode(claims(), SECRET.encode(), algorithm="HS256"),
        lambda: "not.a.jwt",
        lambda: "",
        lambda: "x" * 5000,
    ],
    ids=[
        "wrong-key",
        "hs512",
        "tampered-signature",
        "tampered-payload",
        "wrong-iss",
        "wrong-aud",
        "no-exp",
        "no-iat",
        "no-sid",
        "no-sub",
        "non-numeric-sub",
        "unknown-kid",
        "missing-kid",
        "malformed",
        "empty",
        "huge",
    ],
)
def test_forged_or_malformed_tokens_are_invalid(token_factory):
    assert reason_of(token_factory()) is Reason.TOKEN_INVALID


def test_expired_token_is_expired_after_the_leeway_but_accepted_within_it():
    assert reason_of(issue(now=time.time() - SETTINGS.access_token_ttl - 31)) is Reason.TOKEN_EXPIRED
    verify_access_token(SETTINGS, KEYS, issue(now=time.time() - SETTINGS.access_token_ttl - 20))


def test_expired_token_may_still_be_read_for_logout():
    token = issue(now=time.time() - SETTINGS.access_token_ttl - 3600)
    assert verify_access_token(SETTINGS, KEYS, token, allow_expired=True).sid == "sid-7"


def test_previous_secrets_still_verify_after_rotation():
    old_token = issue()
    rotated = load_settings(
        {"STAGE": "local", "WX_APPID": "wxapp", "JWT_SECRET": "n" * 40, "JWT_PREVIOUS_SECRETS": SECRET}
    )
    rotated_keys = KeyRing.from_settings(rotated)
    assert verify_access_token(rotated, rotated_keys, old_token).user_id == 7
    dropped = load_settings({"STAGE": "local", "WX_APPID": "wxapp", "JWT_SECRET": "n" * 40})
    with pytest.raises(ServiceError) as caught:
        verify_access_token(dropped, KeyRing.from_settings(dropped), old_token)
    assert caught.value.reason is Reason.TOKEN_INVALID


def test_refresh_tokens_are_256_bit_and_name_their_session():
    sid = new_session_id()
    token = new_refresh_token(sid)
    assert refresh_token_session(token) == sid
    assert len(token.split(".")[1]) == 43  # 32 random bytes, base64url
    assert new_refresh_token(sid) != token


def test_refresh_chain_is_deterministic_per_key_and_keeps_the_session():
    token = new_refresh_token(new_session_id())
    successor = next_refresh_token(b"k" * 32, token)
    assert successor == next_refresh_token(b"k" * 32, token)
    assert successor != next_refresh_token(b"j" * 32, token)
    assert refresh_token_session(successor) == refresh_token_session(token)


@pytest.mark.parametrize(
    "bad", ["", "nodot", "short.x", "a" * 22 + "." + "b" * 42, "a" * 22 + ".+" + "b" * 42]
)
def test_malformed_refresh_tokens_name_no_session(bad):
    assert refresh_token_session(bad) is None
