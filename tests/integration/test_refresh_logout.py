"""Refresh rotation, the grace window, reuse detection and logout."""

import time

import pytest

from shared import clock
from shared.keys import jwt_keys
from shared.models import SessionModel
from shared.tokens import issue_access_token
from tests.conftest import bearer

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
PROFILE = "/api/v1/user/profile"


def reason(response):
    return response.status_code, response.json()["reason"]


def refresh(client, token):
    return client.post(REFRESH, json={"refresh_token": token})


def test_refresh_rotates_and_answers_a_full_pair(client, login):
    first = login()
    response = refresh(client, first["refresh_token"])
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"}
    assert data["refresh_token"] != first["refresh_token"]
    assert data["refresh_token"].split(".")[0] == first["refresh_token"].split(".")[0]
    assert (data["expires_in"], data["refresh_expires_in"]) == (604800, 2592000)
    assert client.get(PROFILE, headers=bearer(data["access_token"])).status_code == 200
    assert refresh(client, data["refresh_token"]).status_code == 200


def test_refresh_tokens_are_stored_only_as_hashes(client, login):
    first = login()
    rotated = refresh(client, first["refresh_token"]).json()["data"]["refresh_token"]
    item = SessionModel.get(first["refresh_token"].split(".")[0])
    stored = str(item.attribute_values)
    assert first["refresh_token"].split(".")[1] not in stored and rotated.split(".")[1] not in stored


def test_previous_token_within_grace_gets_the_same_current_token_without_rotating(
    client, login, frozen_clock
):
    first = login()
    winner = refresh(client, first["refresh_token"]).json()["data"]
    frozen_clock.advance(9)
    racer = refresh(client, first["refresh_token"])
    assert racer.status_code == 200
    racer_data = racer.json()["data"]
    assert racer_data["refresh_token"] == winner["refresh_token"]
    assert client.get(PROFILE, headers=bearer(racer_data["access_token"])).status_code == 200
    # The shared current token still rotates normally.
    assert refresh(client, winner["refresh_token"]).status_code == 200


@pytest.mark.parametrize(("after", "expected"), [(9.9, 200), (10.2, 401)])
def test_the_grace_window_is_ten_seconds(client, login, frozen_clock, monkeypatch, after, expected):
    # No real time passes either: 0.1 s of margin is less than two requests take on a busy machine.
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start + frozen_clock.offset)
    first = login()
    refresh(client, first["refresh_token"])
    frozen_clock.advance(after)
    assert refresh(client, first["refresh_token"]).status_code == expected


def test_previous_token_after_grace_is_reuse_and_revokes_the_whole_session(client, login, frozen_clock):
    first = login()
    current = refresh(client, first["refresh_token"]).json()["data"]
    frozen_clock.advance(11)
    assert reason(refresh(client, first["refresh_token"])) == (401, "REFRESH_TOKEN_REUSED")
    assert reason(refresh(client, current["refresh_token"])) == (401, "SESSION_REVOKED")
    assert reason(client.get(PROFILE, headers=bearer(current["access_token"]))) == (401, "SESSION_REVOKED")
    assert reason(client.get(PROFILE, headers=bearer(first["access_token"]))) == (401, "SESSION_REVOKED")


def test_an_older_ancestor_token_is_reuse(client, login):
    first = login()
    second = refresh(client, first["refresh_token"]).json()["data"]
    refresh(client, second["refresh_token"])
    assert reason(refresh(client, first["refresh_token"])) == (401, "REFRESH_TOKEN_REUSED")


def test_reuse_of_one_session_leaves_other_sessions_alone(client, login, frozen_clock):
    phone, tablet = login(), login()
    refresh(client, phone["refresh_token"])
    frozen_clock.advance(11)
    assert reason(refresh(client, phone["refresh_token"])) == (401, "REFRESH_TOKEN_REUSED")
    assert client.get(PROFILE, headers=bearer(tablet["access_token"])).status_code == 200


def test_unknown_malformed_and_expired_refresh_tokens(client, login, frozen_clock):
    first = login()
    sid = first["refresh_token"].split(".")[0]
    for bad in ("garbage", f"{sid}.{'A' * 43}", "A" * 22 + "." + "B" * 43):
        assert reason(refresh(client, bad)) == (401, "REFRESH_TOKEN_INVALID"), bad
    # A forged token naming a real session is not taken for reuse (no revocation by guessing a sid).
    assert client.get(PROFILE, headers=bearer(first["access_token"])).status_code == 200
    frozen_clock.advance(2592000 + 1)
    assert reason(refresh(client, first["refresh_token"])) == (401, "REFRESH_TOKEN_INVALID")


def test_refresh_with_bearer_access_token_answers_a_new_access_token(client, login):
    first = login()
    response = client.post(REFRESH, headers=bearer(first["access_token"]))
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {"access_token", "token_type", "expires_in"}
    assert client.get(PROFILE, headers=bearer(data["access_token"])).status_code == 200


def test_refresh_with_neither_body_nor_header_is_token_missing(client):
    assert reason(client.post(REFRESH)) == (401, "TOKEN_MISSING")
    assert reason(client.post(REFRESH, headers={"Authorization": "Basic abc"})) == (401, "TOKEN_MISSING")


def test_refresh_body_is_validated(client):
    assert reason(client.post(REFRESH, json={"refresh_token": 5})) == (400, "INVALID_REQUEST")
    assert reason(client.post(REFRESH, json={"refresh_token": "x", "extra": 1})) == (400, "INVALID_REQUEST")


def test_logout_revokes_access_and_refresh_tokens_at_once(client, login):
    first = login()
    response = client.post(LOGOUT, headers=bearer(first["access_token"]))
    assert response.status_code == 200
    assert response.json()["message"] == "退出成功" and response.json()["data"] == {"message": "退出成功"}
    assert reason(client.get(PROFILE, headers=bearer(first["access_token"]))) == (401, "SESSION_REVOKED")
    assert reason(refresh(client, first["refresh_token"])) == (401, "SESSION_REVOKED")
    assert reason(client.post(REFRESH, headers=bearer(first["access_token"]))) == (401, "SESSION_REVOKED")
    # Logging out an already revoked session with a token we signed is still fine.
    again = client.post(LOGOUT, headers=bearer(first["access_token"]))
    assert again.status_code == 200
    assert again.json()["message"] == "退出成功" and again.json()["data"] == {"message": "退出成功"}


def test_logout_only_ends_that_session(client, login):
    phone, tablet = login(), login()
    client.post(LOGOUT, headers=bearer(phone["access_token"]))
    assert client.get(PROFILE, headers=bearer(tablet["access_token"])).status_code == 200


def test_logout_all_revokes_every_session_of_the_user_only(client, login):
    phone, tablet, other = login("alice"), login("alice"), login("bob")
    assert client.post(LOGOUT, headers=bearer(phone["access_token"]), json={"all": True}).status_code == 200
    for session in (phone, tablet):
        assert reason(client.get(PROFILE, headers=bearer(session["access_token"]))) == (
            401,
            "SESSION_REVOKED",
        )
        assert reason(refresh(client, session["refresh_token"]))[1] == "SESSION_REVOKED"
    assert client.get(PROFILE, headers=bearer(other["access_token"])).status_code == 200
    # A later login works again.
    assert client.get(PROFILE, headers=bearer(login("alice")["access_token"])).status_code == 200


def test_an_expired_but_genuine_token_may_still_log_out(client, login, settings):
    first = login()
    claims = client.get(PROFILE, headers=bearer(first["access_token"])).json()["data"]
    sid = first["refresh_token"].split(".")[0]
    expired = issue_access_token(
        settings,
        jwt_keys(settings),
        user_id=claims["id"],
        openid=claims["openid"],
        nickname="",
        sid=sid,
        now=time.time() - settings.access_token_ttl - 120,
    )
    assert reason(client.get(PROFILE, headers=bearer(expired))) == (401, "TOKEN_EXPIRED")
    assert client.post(LOGOUT, headers=bearer(expired)).status_code == 200
    assert reason(client.get(PROFILE, headers=bearer(first["access_token"]))) == (401, "SESSION_REVOKED")


def test_logout_needs_a_token_we_signed(client, login):
    first = login()
    assert reason(client.post(LOGOUT)) == (401, "TOKEN_MISSING")
    assert reason(client.post(LOGOUT, headers=bearer(first["access_token"][:-2] + "xx"))) == (
        401,
        "TOKEN_INVALID",
    )
    assert reason(client.post(LOGOUT, headers=bearer(first["access_token"]), json={"all": "yes"})) == (
        400,
        "INVALID_REQUEST",
    )
    assert client.get(PROFILE, headers=bearer(first["access_token"])).status_code == 200


def test_logout_all_needs_a_live_session(client, login, settings):
    stale = login("alice")
    client.post(LOGOUT, headers=bearer(stale["access_token"]))  # that session is over
    fresh = login("alice")
    response = client.post(LOGOUT, headers=bearer(stale["access_token"]), json={"all": True})
    assert response.status_code == 200  # as any repeated logout; but it ends no other session
    assert client.get(PROFILE, headers=bearer(fresh["access_token"])).status_code == 200
