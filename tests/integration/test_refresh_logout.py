"""Refresh rotation, the grace window, reuse detection, renewal by the latest access token only, and
logout."""

import dataclasses
import time

import jwt
import pytest

from shared.keys import jwt_keys
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


def test_refresh_tokens_are_stored_only_as_hashes(client, login, storage):
    first = login()
    rotated = refresh(client, first["refresh_token"]).json()["data"]["refresh_token"]
    stored = str(dataclasses.asdict(storage.get_session(first["refresh_token"].split(".")[0])))
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
    # ... and an access token with the session's current id: the winner's, not one of its own.
    assert claims(racer_data["access_token"])["jti"] == claims(winner["access_token"])["jti"]
    assert client.get(PROFILE, headers=bearer(racer_data["access_token"])).status_code == 200
    # The shared current token still rotates normally.
    assert refresh(client, winner["refresh_token"]).status_code == 200


@pytest.mark.parametrize(("after", "expected"), [(10, 200), (10.01, 401)])
def test_the_grace_window_is_ten_seconds(client, login, stopped_clock, after, expected):
    first = login()
    refresh(client, first["refresh_token"])
    stopped_clock.advance(after)
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
    assert claims(data["access_token"])["jti"] != claims(first["access_token"])["jti"]
    # The new token is now the session's latest: it renews in turn.
    assert renew(client, data["access_token"]).status_code == 200


def claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def renew(client, access_token):
    return client.post(REFRESH, headers=bearer(access_token))


def test_a_stolen_access_token_renewing_itself_is_found_out_while_its_owner_uses_the_session(
    client, login, frozen_clock
):
    """Issue 14, item 3: the thief renews the stolen token every day, the owner rotates its refresh
    token every day (which slides the session); before, after 72 days the thief's token still worked."""
    owner = login()
    stolen, refresh_token = owner["access_token"], owner["refresh_token"]
    outcome = None
    for day in range(1, 73):
        frozen_clock.advance(86400)
        thief = renew(client, stolen)
        if thief.status_code != 200:
            outcome = (day, thief.status_code, thief.json()["reason"])
            break
        stolen = thief.json()["data"]["access_token"]
        owned = refresh(client, refresh_token)
        assert owned.status_code == 200, (day, owned.text)
        refresh_token = owned.json()["data"]["refresh_token"]
    assert outcome == (2, 401, "REFRESH_TOKEN_REUSED")
    # The whole session is over: the thief's latest token, and the owner's tokens (they log in again).
    assert reason(client.get(PROFILE, headers=bearer(stolen))) == (401, "SESSION_REVOKED")
    assert reason(renew(client, stolen)) == (401, "SESSION_REVOKED")
    assert reason(refresh(client, refresh_token)) == (401, "SESSION_REVOKED")


def test_a_stolen_access_token_is_found_out_when_its_owner_renews_by_bearer_too(client, login, frozen_clock):
    owner = login()
    stolen = mine = owner["access_token"]
    frozen_clock.advance(3600)
    stolen = renew(client, stolen).json()["data"]["access_token"]  # the thief renews first
    frozen_clock.advance(3600)
    assert reason(renew(client, mine)) == (401, "REFRESH_TOKEN_REUSED")  # the owner's is no longer latest
    assert reason(client.get(PROFILE, headers=bearer(stolen))) == (401, "SESSION_REVOKED")


def test_the_access_token_replaced_within_ten_seconds_gets_the_current_one(client, login, frozen_clock):
    first = login()["access_token"]
    renewed = renew(client, first).json()["data"]["access_token"]
    frozen_clock.advance(9)
    racer = renew(client, first)  # a retry, or a second tab, with the token just replaced
    assert racer.status_code == 200
    again = racer.json()["data"]["access_token"]
    assert claims(again)["jti"] == claims(renewed)["jti"]
    assert client.get(PROFILE, headers=bearer(again)).status_code == 200
    # Nothing moved: the current token still renews normally.
    assert renew(client, renewed).status_code == 200


@pytest.mark.parametrize(("after", "expected"), [(10, 200), (10.01, 401)])
def test_the_access_token_grace_window_is_ten_seconds(client, login, stopped_clock, after, expected):
    first = login()["access_token"]
    renew(client, first)
    stopped_clock.advance(after)
    assert renew(client, first).status_code == expected


def test_an_older_access_token_after_the_grace_window_revokes_the_session(client, login, frozen_clock):
    session = login()
    first = session["access_token"]
    second = renew(client, first).json()["data"]["access_token"]
    third = renew(client, second).json()["data"]["access_token"]
    assert reason(renew(client, first)) == (401, "REFRESH_TOKEN_REUSED")  # two renewals old: no grace
    for token in (first, second, third):
        assert reason(client.get(PROFILE, headers=bearer(token))) == (401, "SESSION_REVOKED")
    assert reason(refresh(client, session["refresh_token"])) == (401, "SESSION_REVOKED")


def test_a_refresh_token_rotation_replaces_the_latest_access_token(client, login, frozen_clock):
    session = login()
    rotated = refresh(client, session["refresh_token"]).json()["data"]
    frozen_clock.advance(5)
    # The login's access token was replaced 5 s ago: inside the grace window, the rotation's is answered.
    racer = renew(client, session["access_token"]).json()["data"]
    assert claims(racer["access_token"])["jti"] == claims(rotated["access_token"])["jti"]
    frozen_clock.advance(10)
    assert reason(renew(client, session["access_token"])) == (401, "REFRESH_TOKEN_REUSED")


def test_no_access_token_reaches_past_its_sessions_expiry(client, login, frozen_clock, storage, settings):
    session = login()
    sid = session["refresh_token"].split(".")[0]
    expires_at = storage.get_session(sid).expires_at
    token = session["access_token"]
    assert claims(token)["exp"] <= expires_at
    # Renew every 6 days (before each token expires), never rotating the refresh token: the session
    # does not slide, and the renewals' expiry comes up against the session's.
    for _ in range(4):
        frozen_clock.advance(6 * 86400)
        data = renew(client, token).json()["data"]
        token = data["access_token"]
        assert claims(token)["exp"] <= expires_at
    frozen_clock.advance(5 * 86400 + 3600)  # 29 days and an hour: 23 hours of the session left
    data = renew(client, token).json()["data"]
    exp, iat = claims(data["access_token"])["exp"], claims(data["access_token"])["iat"]
    assert exp == expires_at and data["expires_in"] == exp - iat < settings.access_token_ttl
    frozen_clock.advance(23 * 3600 + 1)
    assert reason(client.get(PROFILE, headers=bearer(data["access_token"])))[1] in {
        "TOKEN_EXPIRED",
        "SESSION_REVOKED",
    }
    assert reason(renew(client, data["access_token"]))[1] in {"TOKEN_EXPIRED", "SESSION_REVOKED"}


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


def test_two_racing_logout_alls_cannot_bring_back_a_session_created_between_them(client, login, storage):
    """Issue 14, item 7: logout-all A stamps its cutoff, a session is created, logout-all B stamps a
    later one; if A's write lands after B's, the cutoff must not move back and revive the session."""
    from shared import clock
    from shared.users import revoke_all_sessions

    older = clock.now()  # logout-all A, not yet written
    time.sleep(0.002)
    between = login("alice")
    time.sleep(0.002)
    newer = clock.now()  # logout-all B
    openid = between["user"]["openid"]
    revoke_all_sessions(storage, openid, newer)
    revoke_all_sessions(storage, openid, older)  # A's write lands last
    assert storage.get_user(openid).sessions_revoked_at == clock.micros(newer)
    assert reason(client.get(PROFILE, headers=bearer(between["access_token"]))) == (401, "SESSION_REVOKED")
    assert reason(refresh(client, between["refresh_token"]))[1] == "SESSION_REVOKED"
    # A session created after both is live.
    assert client.get(PROFILE, headers=bearer(login("alice")["access_token"])).status_code == 200


def race(count, call):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    start = Barrier(count)

    def run(index):
        start.wait()
        return call(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_twenty_concurrent_refreshes_of_one_token_all_end_on_the_same_token(client, login):
    first = login()
    answers = race(20, lambda _: refresh(client, first["refresh_token"]))
    assert [answer.status_code for answer in answers] == [200] * 20, [a.text for a in answers]
    data = [answer.json()["data"] for answer in answers]
    assert len({d["refresh_token"] for d in data}) == 1
    assert len({claims(d["access_token"])["jti"] for d in data}) == 1  # one rotation, one access token
    assert refresh(client, data[0]["refresh_token"]).status_code == 200


def test_concurrent_bearer_refreshes_of_the_latest_token_all_get_the_same_new_one(client, login):
    first = login()["access_token"]
    answers = race(10, lambda _: renew(client, first))
    assert [answer.status_code for answer in answers] == [200] * 10, [a.text for a in answers]
    tokens = [answer.json()["data"]["access_token"] for answer in answers]
    assert len({claims(token)["jti"] for token in tokens}) == 1
    assert renew(client, tokens[0]).status_code == 200


def test_logout_racing_refreshes_leaves_every_token_of_the_session_revoked(client, login):
    session = login()

    def call(index):
        if index == 0:
            return client.post(LOGOUT, headers=bearer(session["access_token"]))
        if index % 2:
            return refresh(client, session["refresh_token"])
        return renew(client, session["access_token"])

    answers = race(12, call)
    assert answers[0].status_code == 200
    assert {answer.status_code for answer in answers[1:]} <= {200, 401}, [a.text for a in answers]
    handed_out = [a.json()["data"] for a in answers[1:] if a.status_code == 200] + [session]
    for data in handed_out:
        assert reason(client.get(PROFILE, headers=bearer(data["access_token"]))) == (401, "SESSION_REVOKED")
        if "refresh_token" in data:
            assert refresh(client, data["refresh_token"]).status_code == 401
