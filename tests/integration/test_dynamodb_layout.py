"""DynamoDB only: the items as stored, and an upgrade in place from the previous release's items.

The previous release's items are written here with raw DynamoDB requests, attribute by attribute as
its PynamoDB models (shared/models.py, removed since) wrote them, and then used through the API.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from local.wechat_sim import openid_for
from shared.crypto import derive_key, encrypt_at_rest, sha256_hex
from shared.keys import jwt_keys, session_key_cipher_key
from shared.storage.base import LoginUpsert
from shared.storage.dynamodb import DynamoDBStorage
from shared.tokens import issue_access_token, new_refresh_token, new_session_id
from shared.wechat import new_http_client
from shared.wechat_token import AccessTokenManager
from tests.conftest import bearer, dynamodb_only

pytestmark = dynamodb_only

LOGIN = "/api/v1/auth/wx-login"
REFRESH = "/api/v1/auth/refresh"
PROFILE = "/api/v1/user/profile"
DAY = 86400


def put(storage: Any, table: str, item: dict[str, Any]) -> None:
    storage.client.put_item(TableName=table, Item=item)


def scan(storage: Any, table: str) -> list[dict[str, Any]]:
    return list(storage.client.scan(TableName=table, ConsistentRead=True)["Items"])


def n(value: float) -> dict[str, str]:
    return {"N": str(value)}


def s(value: str) -> dict[str, str]:
    return {"S": value}


def previous_release_session(storage, settings, *, user_id: int, openid: str, now: float) -> tuple[str, str]:
    """A session as the previous release stored it (no access jti); answers (access, refresh) tokens."""
    sid = new_session_id()
    refresh = new_refresh_token(sid)
    put(
        storage,
        settings.sessions_table,
        {
            "sid": s(sid),
            "user_id": n(user_id),
            "openid": s(openid),
            "refresh_hash": s(sha256_hex(refresh)),
            "rotated_at": n(0),
            "generation": n(0),
            "created_at_us": n(int(now * 1_000_000)),
            "expires_at": n(int(now) + 30 * DAY),
            "revoked": {"BOOL": False},
            "ttl": n(int(now) + 31 * DAY),
        },
    )
    access = issue_access_token(
        settings, jwt_keys(settings), user_id=user_id, openid=openid, nickname="老用户", sid=sid, now=now
    )
    return access, refresh


def test_what_the_previous_release_stored_is_used_as_is(client, storage, settings, simulator):
    now = time.time()
    openid = openid_for("olduser")
    # The id counter, a user with everything the previous release kept, two of its sessions.
    put(storage, settings.users_table, {"openid": s("#counter#user_id"), "value": n(41)})
    put(
        storage,
        settings.users_table,
        {
            "openid": s(openid),
            "id": n(41),
            "unionid": s("sim-union-olduser"),
            "nickname": s("老用户"),
            "avatar": s("https://example.com/old.png"),
            "bio": s("从前"),
            "session_key_enc": s(
                encrypt_at_rest(session_key_cipher_key(settings), "b2xkLXNlc3Npb24ta2V5", openid)
            ),
            "phone_masked": s("138****8000"),
            "recipe_count": n(3),
            "follower_count": n(0),
            "following_count": n(0),
            "favorite_count": n(1),
            "created_at": s("2025-01-01T00:00:00.000Z"),
            "updated_at": s("2025-06-01T00:00:00.000Z"),
            "sessions_revoked_at": n(0),
            "login_tat": n(round(now - 3600, 3)),
        },
    )
    first_access, first_refresh = previous_release_session(
        storage, settings, user_id=41, openid=openid, now=now
    )
    second_access, _ = previous_release_session(storage, settings, user_id=41, openid=openid, now=now)
    # A login code that succeeded a minute ago (its replay record), and WeChat's cached server token.
    put(
        storage,
        settings.cache_table,
        {
            "pk": s(f"login#{sha256_hex('olduser.7')}"),
            "data": s(json.dumps({"openid": openid, "is_new_user": False})),
            "version": n(0),
            "expires_at": n(int(now) + 240),
            "ttl": n(int(now) + 240 + 3600),
        },
    )
    token_key = derive_key(settings.session_key_encryption_key, "wechat-access-token")
    pk = f"wxtoken#{settings.wx_appid}"
    put(
        storage,
        settings.cache_table,
        {
            "pk": s(pk),
            "data": s(encrypt_at_rest(token_key, "token-of-the-previous-release", pk)),
            "version": n(3),
            "expires_at": n(int(now) + 7000),
            "ttl": n(int(now) + 7000 + 3600),
        },
    )

    # The session's access token still authenticates; the profile is the stored one.
    profile = client.get(PROFILE, headers=bearer(first_access)).json()["data"]
    assert (profile["id"], profile["nickname"], profile["recipe_count"], profile["phone_masked"]) == (
        41,
        "老用户",
        3,
        "138****8000",
    )
    # The replay record is answered without WeChat, for the stored user.
    replayed = client.post(LOGIN, json={"code": "olduser.7"})
    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["data"]["user"]["id"], replayed.json()["data"]["is_new_user"]) == (41, False)
    assert simulator.calls["/sns/jscode2session"] == 0
    # A returning login keeps the id and created_at; a new user's id continues after the counter's.
    again = client.post(LOGIN, json={"code": "olduser.8"}).json()["data"]
    assert (again["is_new_user"], again["user"]["id"], again["user"]["created_at"]) == (
        False,
        41,
        "2025-01-01T00:00:00.000Z",
    )
    newcomer = client.post(LOGIN, json={"code": "newcomer.1"}).json()["data"]
    assert newcomer["is_new_user"] is True and newcomer["user"]["id"] == 42
    # The refresh token rotates.
    rotated = client.post(REFRESH, json={"refresh_token": first_refresh})
    assert rotated.status_code == 200, rotated.text
    assert client.get(PROFILE, headers=bearer(rotated.json()["data"]["access_token"])).status_code == 200
    # A session without a recorded access token accepts its first bearer renewal, and from then on
    # only the latest token renews it.
    renewed = client.post(REFRESH, headers=bearer(second_access))
    assert renewed.status_code == 200, renewed.text
    latest = renewed.json()["data"]["access_token"]
    assert client.post(REFRESH, headers=bearer(latest)).status_code == 200
    stale = client.post(REFRESH, headers=bearer(second_access))
    assert (stale.status_code, stale.json()["reason"]) == (401, "REFRESH_TOKEN_REUSED")
    # The cached WeChat token is used as it is: no fetch.
    calls: list[str] = []

    def wechat(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(500)

    manager = AccessTokenManager(settings, new_http_client(settings, httpx.MockTransport(wechat)), storage)
    assert manager.token() == "token-of-the-previous-release" and calls == []
    # What was stored keeps its layout: the same keys, the same attribute names (plus the new ones).
    [user] = [item for item in scan(storage, settings.users_table) if item["openid"]["S"] == openid]
    assert user["id"] == n(41) and user["created_at"] == s("2025-01-01T00:00:00.000Z")
    counter = next(i for i in scan(storage, settings.users_table) if i["openid"]["S"] == "#counter#user_id")
    assert counter["value"] == n(141)  # one block of 100 ids reserved after 41


def test_ids_are_reserved_in_blocks_per_instance_and_never_overlap(storage, settings):
    put(storage, settings.users_table, {"openid": s("#counter#user_id"), "value": n(1000)})
    one, two = DynamoDBStorage(settings), DynamoDBStorage(settings)  # two function instances

    def first_login(adapter: DynamoDBStorage, openid: str) -> int:
        change = LoginUpsert(openid, "v1:x", None, None, None, "2026-01-01T00:00:00.000Z", 0.0, None)
        user, is_new = adapter.upsert_user_on_login(change)
        assert is_new
        return user.id

    ids = [first_login(adapter, f"u{i}-{k}") for i in range(3) for k, adapter in enumerate((one, two))]
    assert ids == [1001, 1101, 1002, 1102, 1003, 1103]
    counter = next(i for i in scan(storage, settings.users_table) if i["openid"]["S"] == "#counter#user_id")
    assert counter["value"] == n(1200)  # two writes on the counter for six new users


def test_the_layout_of_what_a_login_stores(client, storage, settings, simulator):
    response = client.post(LOGIN, json={"code": "dan.secret-code-value"})
    assert response.status_code == 200
    session_key = simulator.session_keys[openid_for("dan")]
    users = scan(storage, settings.users_table)
    assert session_key not in json.dumps(users)  # only its ciphertext
    items = scan(storage, settings.cache_table)
    # The replay record, under a hash of the code (never the code), expiring with DynamoDB's TTL.
    assert [item["pk"]["S"] for item in items] == [f"login#{sha256_hex('dan.secret-code-value')}"]
    assert "secret-code-value" not in json.dumps(items)
    assert int(items[0]["ttl"]["N"]) > time.time() + 300
    [session] = scan(storage, settings.sessions_table)
    assert int(session["ttl"]["N"]) > int(session["expires_at"]["N"])
    assert session["access_jti"]["S"]


def test_rejected_codes_are_counted_per_ip_and_window_expiring_by_ttl(app, storage, settings):
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False, client=("203.0.113.7", 5000)) as client:
        for _ in range(3):
            assert client.post(LOGIN, json={"code": "fail.40029"}).status_code == 401
    [counter] = [
        i for i in scan(storage, settings.cache_table) if i["pk"]["S"].startswith("rate#ip#203.0.113.7#")
    ]
    assert counter["counter"] == n(3)
    assert int(counter["ttl"]["N"]) > int(counter["expires_at"]["N"]) > time.time()
