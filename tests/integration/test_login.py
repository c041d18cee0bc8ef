"""POST /api/v1/auth/wx-login against every storage backend and the WeChat simulator."""

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import jwt

from local.wechat_sim import openid_for
from shared.crypto import decrypt_at_rest
from shared.keys import session_key_cipher_key
from tests.conftest import bearer


def test_first_login_creates_the_user_and_answers_the_contract_shape(client, settings, simulator, storage):
    response = client.post(
        "/api/v1/auth/wx-login",
        json={"code": "alice.1", "nickName": " 张三 ", "avatarUrl": "https://a.example/1.png"},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"code", "message", "data", "timestamp"} and body["code"] == 200
    data = body["data"]
    assert set(data) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
        "is_new_user",
        "user",
    }
    assert (data["token_type"], data["expires_in"], data["refresh_expires_in"]) == ("Bearer", 604800, 2592000)
    assert data["is_new_user"] is True
    assert data["user"] == {
        "id": 1,
        "openid": openid_for("alice"),
        "nickname": "张三",
        "avatar": "https://a.example/1.png",
        "created_at": data["user"]["created_at"],
    }
    claims = jwt.decode(data["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "1" and claims["openid"] == openid_for("alice") and claims["nickname"] == "张三"
    session = storage.get_session(claims["sid"])
    assert session.user_id == 1 and session.access_jti == claims["jti"]


def test_returning_user_keeps_id_and_created_at_and_ids_are_unique(client, login):
    first = login("alice")
    bob = login("bob")
    again = login("alice")
    assert again["is_new_user"] is False
    assert again["user"]["id"] == first["user"]["id"] == 1 and bob["user"]["id"] == 2
    assert again["user"]["created_at"] == first["user"]["created_at"]
    assert again["refresh_token"] != first["refresh_token"]


def test_session_key_is_stored_encrypted_and_never_answered(client, settings, simulator, login, storage):
    data = login("alice")
    session_key = simulator.session_keys[openid_for("alice")]
    assert session_key not in str(data)
    user = storage.get_user(openid_for("alice"))
    assert session_key not in str(dataclasses.asdict(user))  # only its ciphertext reaches storage
    assert decrypt_at_rest(session_key_cipher_key(settings), user.session_key_enc, user.openid) == session_key
    assert user.unionid == "sim-union-alice"
    login("alice")  # every login stores the new key
    assert (
        decrypt_at_rest(
            session_key_cipher_key(settings),
            storage.get_user(openid_for("alice")).session_key_enc,
            user.openid,
        )
        == simulator.session_keys[openid_for("alice")]
        != session_key
    )


def test_nickname_and_avatar_are_only_overwritten_by_real_values(client, login):
    login("alice", nickName="Alice", avatarUrl="https://a.example/a.png")
    assert login("alice")["user"]["nickname"] == "Alice"
    assert login("alice", nickName="   ")["user"]["nickname"] == "Alice"
    assert login("alice", nickName="微信用户")["user"]["nickname"] == "Alice"
    kept = login("alice", nickName="Alice 2")["user"]
    assert kept["nickname"] == "Alice 2" and kept["avatar"] == "https://a.example/a.png"


def test_empty_profile_fields_are_empty_strings_not_null(client, login):
    user = login("carol")["user"]
    assert user["nickname"] == "" and user["avatar"] == ""
    profile = client.get("/api/v1/user/profile", headers=bearer(login("carol")["access_token"])).json()[
        "data"
    ]
    assert all(profile[name] == "" for name in ("nickname", "avatar", "bio", "phone_masked"))


def test_a_failed_exchange_writes_nothing(client, storage):
    for code in ("fail.40029", "fail.40163", "fail.45011", "fail.-1", "fail.html", "fail.http500"):
        assert client.post("/api/v1/auth/wx-login", json={"code": code}).status_code in {401, 429, 503}
    assert storage.all_users_and_sessions() == ([], [])


def test_wechat_errcodes_answer_the_contract_reasons(client):
    expected = {
        "fail.40029": (401, "WECHAT_CODE_INVALID"),
        "fail.40163": (401, "WECHAT_CODE_INVALID"),
        "fail.41008": (401, "WECHAT_CODE_INVALID"),
        "fail.40226": (401, "WECHAT_CODE_INVALID"),
        "fail.45011": (429, "WECHAT_RATE_LIMITED"),
        "fail.-1": (503, "WECHAT_UNAVAILABLE"),
        "fail.40001": (503, "WECHAT_UNAVAILABLE"),
        "fail.html": (503, "WECHAT_UNAVAILABLE"),
        "fail.40013": (500, "SERVER_MISCONFIGURED"),
        "fail.40125": (500, "SERVER_MISCONFIGURED"),
    }
    for code, (status, reason) in expected.items():
        response = client.post("/api/v1/auth/wx-login", json={"code": code})
        body = response.json()
        assert (response.status_code, body["code"], body["reason"]) == (status, status, reason), code
        errcode = code.removeprefix("fail.")
        if errcode.lstrip("-").isdigit() and reason != "SERVER_MISCONFIGURED":
            assert f"错误码: {errcode}" in body["message"], body
    invalid = client.post("/api/v1/auth/wx-login", json={"code": "fail.40029"}).json()
    assert invalid["message"] == "微信登录失败: invalid code (错误码: 40029)"
    assert invalid["error"] == "Unauthorized"


def test_a_used_code_is_rejected_by_wechat_after_the_retry_window(client, frozen_clock):
    assert client.post("/api/v1/auth/wx-login", json={"code": "dave.1"}).status_code == 200
    frozen_clock.advance(301)  # within 5 minutes it is a client retry (test_login_replay.py)
    again = client.post("/api/v1/auth/wx-login", json={"code": "dave.1"})
    assert again.status_code == 401 and again.json()["reason"] == "WECHAT_CODE_INVALID"
    assert "错误码: 40163" in again.json()["message"]


def test_busy_wechat_is_retried_transparently(client):
    response = client.post("/api/v1/auth/wx-login", json={"code": "flaky.2.erin"})
    assert response.status_code == 200 and response.json()["data"]["user"]["openid"] == openid_for("erin")


def test_concurrent_first_logins_create_one_user(client, storage):
    def attempt(i):
        return client.post("/api/v1/auth/wx-login", json={"code": f"frank.{i}"}).json()["data"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(attempt, range(50)))
    # One id for all (unique and never reused, not necessarily 1: ids need not be dense).
    assert len({a["user"]["id"] for a in answers}) == 1 and answers[0]["user"]["id"] >= 1
    assert sum(a["is_new_user"] for a in answers) == 1
    users, sessions = storage.all_users_and_sessions()
    assert [user.openid for user in users] == [openid_for("frank")]
    assert len(sessions) == 50


def test_new_users_get_unique_ids_beyond_one_reserved_block_and_returning_users_keep_theirs(storage):
    from shared.storage.base import LoginUpsert

    def upsert(openid):
        return storage.upsert_user_on_login(
            LoginUpsert(openid, "v1:enc", None, None, None, "2026-01-01T00:00:00.000Z", 0.0, None)
        )

    created = [upsert(f"user-{n}") for n in range(120)]
    assert all(is_new for _, is_new in created)
    ids = [user.id for user, _ in created]
    assert len(set(ids)) == 120 and min(ids) >= 1
    again, is_new = upsert("user-7")
    assert (again.id, is_new) == (ids[7], False)
