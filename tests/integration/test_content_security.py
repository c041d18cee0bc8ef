"""Nickname and bio through WeChat's msg_sec_check (v2): on PATCH /user/profile and at login."""

import logging

import httpx
import pytest

from local.wechat_sim import BUSY_WORD, REVIEW_WORD, RISKY_WORD
from shared.content_security import check_text
from shared.errors import Reason, ServiceError
from shared.wechat import new_http_client
from shared.wechat_token import AccessTokenManager
from tests.conftest import bearer

PROFILE = "/api/v1/user/profile"


def profile_of(client, token):
    return client.get(PROFILE, headers=bearer(token)).json()["data"]


def test_text_that_passes_is_checked_with_the_users_openid_and_saved(client, login, simulator):
    token = login("alice")["access_token"]
    response = client.patch(PROFILE, headers=bearer(token), json={"nickname": "Alice", "bio": "做饭"})
    assert response.status_code == 200, response.text
    assert (response.json()["data"]["nickname"], response.json()["data"]["bio"]) == ("Alice", "做饭")
    assert simulator.checked_texts == [("sim-alice", 1, "Alice"), ("sim-alice", 1, "做饭")]


def test_unchanged_or_no_text_is_not_sent_again(client, login, simulator):
    token = login("alice")["access_token"]
    client.patch(PROFILE, headers=bearer(token), json={"nickname": "Alice"})
    simulator.checked_texts.clear()
    response = client.patch(
        PROFILE, headers=bearer(token), json={"nickname": "Alice", "avatar": "https://img.example.com/a.png"}
    )
    assert response.status_code == 200
    assert client.patch(PROFILE, headers=bearer(token), json={"bio": ""}).status_code == 200
    assert simulator.checked_texts == []


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"nickname": f"我是{RISKY_WORD}"}, "昵称"),
        ({"bio": f"简介里有{RISKY_WORD}", "nickname": "Fine"}, "简介"),
        ({"nickname": f"{RISKY_WORD}", "bio": "fine", "avatar": "https://img.example.com/a.png"}, "昵称"),
    ],
    ids=["nickname", "bio", "with-other-fields"],
)
def test_risky_text_on_patch_is_content_rejected_and_nothing_is_saved(client, login, patch, field, caplog):
    token = login("alice", nickName="Alice")["access_token"]
    before = profile_of(client, token)
    with caplog.at_level(logging.INFO):
        response = client.patch(PROFILE, headers=bearer(token), json=patch)
    assert (response.status_code, response.json()["reason"]) == (400, "CONTENT_REJECTED")
    assert field in response.json()["message"] and RISKY_WORD not in response.json()["message"]
    assert profile_of(client, token) == before
    assert "content rejected" in caplog.text and RISKY_WORD not in caplog.text


def test_text_held_for_review_is_saved_and_logged_without_the_text(client, login, caplog):
    token = login("alice")["access_token"]
    with caplog.at_level(logging.INFO):
        response = client.patch(PROFILE, headers=bearer(token), json={"bio": f"这段{REVIEW_WORD}"})
    assert response.status_code == 200
    assert response.json()["data"]["bio"] == f"这段{REVIEW_WORD}"
    assert "accepted for review" in caplog.text and "label 21000" in caplog.text
    assert REVIEW_WORD not in caplog.text


def test_patch_fails_closed_when_the_check_is_unavailable(client, login):
    token = login("alice", nickName="Alice")["access_token"]
    before = profile_of(client, token)
    response = client.patch(PROFILE, headers=bearer(token), json={"nickname": f"A{BUSY_WORD}", "bio": "x"})
    assert (response.status_code, response.json()["reason"]) == (503, "WECHAT_UNAVAILABLE")
    assert profile_of(client, token) == before


def test_a_rejected_nickname_at_login_is_not_saved_but_the_login_succeeds(client, login, simulator):
    data = login("bob", nickName=f"坏{RISKY_WORD}")
    assert data["is_new_user"] is True and data["user"]["nickname"] == ""
    assert ("sim-bob", 1, f"坏{RISKY_WORD}") in simulator.checked_texts
    # A known user keeps the nickname it had.
    assert login("bob", nickName="Bob")["user"]["nickname"] == "Bob"
    again = login("bob", nickName=RISKY_WORD)
    assert again["user"]["nickname"] == "Bob"
    assert profile_of(client, again["access_token"])["nickname"] == "Bob"


def test_login_goes_on_without_the_nickname_when_the_check_is_unavailable(login):
    data = login("carol", nickName=f"Carol{BUSY_WORD}")
    assert data["user"]["nickname"] == ""


def test_login_saves_a_nickname_held_for_review(login):
    assert login("dave", nickName=f"Dave{REVIEW_WORD}")["user"]["nickname"] == f"Dave{REVIEW_WORD}"


def test_the_anonymous_placeholder_is_not_even_checked(login, simulator):
    login("erin", nickName="微信用户")
    assert simulator.checked_texts == []


# check_text against WeChat answers the simulator does not give.


def manager_answering(settings, storage, answer):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 7200})
        return httpx.Response(200, json=answer)

    return AccessTokenManager(settings, new_http_client(settings, httpx.MockTransport(handler)), storage)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"errcode": 87014, "errmsg": "risky content"}, Reason.CONTENT_REJECTED),
        ({"errcode": 45011, "errmsg": "quota"}, Reason.WECHAT_RATE_LIMITED),
        ({"errcode": 61010, "errmsg": "user visit record expired"}, Reason.WECHAT_UNAVAILABLE),
        ({"errcode": 0, "errmsg": "ok"}, Reason.WECHAT_UNAVAILABLE),
        ({"errcode": 0, "result": {"suggest": "maybe"}}, Reason.WECHAT_UNAVAILABLE),
    ],
    ids=["v1-risky", "rate-limited", "other-errcode", "no-result", "unknown-suggest"],
)
def test_check_text_maps_wechats_answers(storage, settings, answer, reason):
    with pytest.raises(ServiceError) as caught:
        check_text(manager_answering(settings, storage, answer), "o1", "text")
    assert caught.value.reason is reason


def test_check_text_passes_pass(storage, settings):
    answer = {"errcode": 0, "result": {"suggest": "pass", "label": 100}, "trace_id": "t1"}
    check_text(manager_answering(settings, storage, answer), "o1", "text")
