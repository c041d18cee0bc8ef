"""Hypothesis through the HTTP app: whatever a client sends, the answer is in the envelope, with the
status its `code` says, never a 5xx, and never echoes a code or token back."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import bearer

PROFILE = "/api/v1/user/profile"
LOGIN = "/api/v1/auth/wx-login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ERROR_KEYS = {"code", "message", "error", "reason", "timestamp"}
SUCCESS_KEYS = {"code", "message", "data", "timestamp"}
# The client fixture is one app for all examples: state accumulates, as it would on a server.
HTTP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)
# Header values: what HTTP allows (visible ASCII, space, tab, obs-text); httpx sends them as latin-1.
header_text = st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]) | st.just("\t"), max_size=400)


def envelope(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert body["code"] == response.status_code
    assert set(body) == (SUCCESS_KEYS if response.status_code == 200 else ERROR_KEYS), body
    assert response.status_code < 500, body
    assert "session_key" not in response.text
    return body


def simulator_control(code: Any) -> bool:
    # The simulator fakes WeChat outages for these codes on purpose (503/429 are right for them).
    return isinstance(code, str) and code.startswith(("fail.", "flaky."))


@HTTP
@given(value=header_text)
def test_any_authorization_header_is_401_in_the_envelope(client, value):
    for method, path in (("GET", PROFILE), ("POST", LOGOUT), ("POST", REFRESH)):
        response = client.request(method, path, headers=[(b"authorization", value.encode("latin-1"))])
        body = envelope(response)
        assert (response.status_code, body["reason"]) in {(401, "TOKEN_MISSING"), (401, "TOKEN_INVALID")}


@HTTP
@given(
    segments=st.lists(
        st.text(string.ascii_letters + string.digits + "-_", max_size=120), min_size=1, max_size=5
    )
)
def test_any_jwt_shaped_bearer_token_is_token_invalid(client, segments):
    token = ".".join(segments)
    assume(token.strip())
    response = client.get(PROFILE, headers=bearer(token))
    assert (response.status_code, envelope(response)["reason"]) == (401, "TOKEN_INVALID")


@HTTP
@given(
    body=json_values
    | st.fixed_dictionaries(
        {"code": st.text(max_size=140) | json_values},
        optional={
            "nickName": json_values | st.text(max_size=60),
            "avatarUrl": json_values | st.text(max_size=300),
        },
    )
)
def test_any_json_login_body_is_200_400_or_401_in_the_envelope(client, body):
    assume(not (isinstance(body, dict) and simulator_control(body.get("code"))))
    response = client.post(LOGIN, json=body)
    answer = envelope(response)
    assert response.status_code in (200, 400, 401), answer
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, str) and len(code) >= 12 and code.strip() and response.status_code != 200:
        # A login code is never echoed in an error. (On success the simulator's openid is made of it.)
        assert code not in response.text
    if response.status_code == 400:
        assert answer["reason"] == "INVALID_REQUEST"


@HTTP
@given(raw=st.binary(max_size=300))
def test_any_bytes_as_login_body_are_answered_in_the_envelope(client, raw):
    try:
        text = raw.decode()
        parsed = json.loads(text)
        assume(not (isinstance(parsed, dict) and simulator_control(parsed.get("code"))))
    except ValueError:
        pass
    response = client.post(LOGIN, content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 401), envelope(response)
    envelope(response)


@HTTP
@given(body=json_values | st.dictionaries(st.sampled_from(["refresh_token", "x"]), json_values | st.text()))
def test_any_json_refresh_body_is_answered_in_the_envelope_without_5xx(client, body):
    response = client.post(REFRESH, json=body)
    answer = envelope(response)
    assert response.status_code in (200, 400, 401), answer


@HTTP
@given(
    body=json_values
    | st.dictionaries(
        st.sampled_from(["nickname", "avatar", "bio", "x"]), json_values | st.text(max_size=250)
    )
)
def test_any_json_profile_patch_is_200_or_400_in_the_envelope(client, login, body):
    token = login("fuzzer")["access_token"]
    response = client.patch(PROFILE, headers=bearer(token), json=body)
    answer = envelope(response)
    assert response.status_code in (200, 400), answer
    if response.status_code == 200:
        assert answer["data"]["openid"] == "sim-fuzzer"


def test_malformed_simulator_control_codes_are_invalid_codes_not_crashes(client):
    # Found while fuzzing `make dev`: "flaky.x" used to crash the simulator into an INTERNAL_ERROR.
    for code in ("flaky.x", "flaky.abc.bob", "flaky..bob", "flaky.1."):
        response = client.post(LOGIN, json={"code": code})
        assert (response.status_code, envelope(response)["reason"]) == (401, "WECHAT_CODE_INVALID"), code
