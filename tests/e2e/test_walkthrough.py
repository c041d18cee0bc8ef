"""The README's walk-through over real HTTP, concurrency on a real server, and secrets kept out of logs."""

from concurrent.futures import ThreadPoolExecutor

import httpx

from local.dev_stats import STATS_PATH
from local.wechat_sim import openid_for


def call(server, method, path, token=None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=15, **kwargs)


def test_login_profile_refresh_logout_over_http(dev_server, fake_wechat):
    login = call(dev_server, "POST", "/auth/wx-login", json={"code": "walker.1", "nickName": "Walker"})
    assert login.status_code == 200, login.text
    tokens = login.json()["data"]
    assert tokens["is_new_user"] is True and tokens["user"]["nickname"] == "Walker"

    profile = call(dev_server, "GET", "/user/profile", tokens["access_token"])
    assert profile.status_code == 200 and profile.json()["data"]["openid"] == openid_for("walker")

    patched = call(dev_server, "PATCH", "/user/profile", tokens["access_token"], json={"bio": "e2e"})
    assert patched.json()["data"]["bio"] == "e2e"

    refreshed = call(dev_server, "POST", "/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new_tokens = refreshed.json()["data"]

    assert call(dev_server, "POST", "/auth/logout", new_tokens["access_token"]).status_code == 200
    after = call(dev_server, "GET", "/user/profile", new_tokens["access_token"])
    assert after.status_code == 401 and after.json()["reason"] == "SESSION_REVOKED"
    again = call(dev_server, "POST", "/auth/refresh", json={"refresh_token": new_tokens["refresh_token"]})
    assert again.status_code == 401 and again.json()["reason"] == "SESSION_REVOKED"

    # Nothing secret reached the server's log: not the session_key, not a token, not the app secret.
    logs = dev_server.logs()
    session_key = fake_wechat.simulator.session_keys[openid_for("walker")]
    for secret in (session_key, tokens["access_token"], tokens["refresh_token"], new_tokens["refresh_token"]):
        assert secret not in logs
    assert "wx-test-secret-value" not in logs


def test_concurrent_first_logins_over_http_create_one_user(dev_server):
    def attempt(i):
        return call(dev_server, "POST", "/auth/wx-login", json={"code": f"crowd.{i}"}).json()["data"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(attempt, range(50)))
    assert len({a["user"]["id"] for a in answers}) == 1
    assert sum(a["is_new_user"] for a in answers) == 1
    # In storage too (the dev server's local-only stats): one user, and each answer's session stored.
    stored = httpx.get(f"{dev_server.url}{STATS_PATH}", timeout=15).json()["users"][openid_for("crowd")]
    assert stored == {"id": answers[0]["user"]["id"], "sessions": 50, "live": 50}


def test_concurrent_refreshes_with_one_token_all_end_on_the_same_token(dev_server):
    tokens = call(dev_server, "POST", "/auth/wx-login", json={"code": "racer.1"}).json()["data"]

    def attempt(_):
        return call(dev_server, "POST", "/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(attempt, range(50)))
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
    assert len({answer.json()["data"]["refresh_token"] for answer in answers}) == 1
    assert (
        call(dev_server, "GET", "/user/profile", answers[0].json()["data"]["access_token"]).status_code == 200
    )


def test_wechat_rejections_over_http(dev_server):
    response = call(dev_server, "POST", "/auth/wx-login", json={"code": "fail.40029"})
    assert response.status_code == 401 and response.json()["reason"] == "WECHAT_CODE_INVALID"
    assert call(dev_server, "GET", "/nowhere").json()["reason"] == "NOT_FOUND"
