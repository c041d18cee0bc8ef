"""Races on a real server (tests/e2e/test_walkthrough.py has concurrent first logins and refreshes):
logout racing refreshes, and concurrent profile edits."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from local.dev_stats import STATS_PATH
from local.wechat_sim import openid_for


def call(server: Any, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=30, **kwargs)


def login(server: Any, name: str) -> dict[str, Any]:
    response = call(server, "POST", "/auth/wx-login", json={"code": f"{name}.{secrets.token_hex(4)}"})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def race_logout_against_refreshes(server: Any, tokens: dict[str, Any]) -> list[httpx.Response]:
    """20 refreshes by refresh token and 10 by access token, released at once with one logout (last)."""
    start = threading.Barrier(31)

    def refresh_by_body() -> httpx.Response:
        start.wait()
        return call(server, "POST", "/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

    def refresh_by_bearer() -> httpx.Response:
        start.wait()
        return call(server, "POST", "/auth/refresh", tokens["access_token"])

    def log_out() -> httpx.Response:
        start.wait()
        return call(server, "POST", "/auth/logout", tokens["access_token"])

    with ThreadPoolExecutor(max_workers=31) as pool:
        futures = [pool.submit(refresh_by_body) for _ in range(20)]
        futures += [pool.submit(refresh_by_bearer) for _ in range(10)]
        futures.append(pool.submit(log_out))
        return [future.result() for future in futures]


def test_logout_racing_refreshes_leaves_the_session_revoked_for_every_token(dev_server):
    for round_ in range(2):
        name = f"racer{round_}x{secrets.token_hex(3)}"
        tokens = login(dev_server, name)
        answers = race_logout_against_refreshes(dev_server, tokens)
        assert answers[-1].status_code == 200
        for index, answer in enumerate(answers[:-1]):
            assert answer.status_code in {200, 401}, answer.text
            if answer.status_code == 401:
                # By bearer, the login's access token may be two renewals old by the time it is read
                # (a rotation and a renewal both replaced it): a theft signal, the session revoked.
                bearer = index >= 20
                expected = {"SESSION_REVOKED", "REFRESH_TOKEN_REUSED"} if bearer else {"SESSION_REVOKED"}
                assert answer.json()["reason"] in expected, answer.text
        # Whatever each caller got during the race, nothing of that session works afterwards.
        handed_out = [a.json()["data"] for a in answers[:-1] if a.status_code == 200] + [tokens]
        for data in handed_out:
            profile = call(dev_server, "GET", "/user/profile", data["access_token"])
            assert (profile.status_code, profile.json()["reason"]) == (401, "SESSION_REVOKED")
            if "refresh_token" in data:
                body = {"refresh_token": data["refresh_token"]}
                assert call(dev_server, "POST", "/auth/refresh", json=body).status_code == 401
        stored = httpx.get(f"{dev_server.url}{STATS_PATH}", timeout=15).json()["users"][openid_for(name)]
        assert (stored["sessions"], stored["live"]) == (1, 0)


def test_concurrent_patches_never_move_updated_at_backwards(dev_server):
    token = login(dev_server, f"editor{secrets.token_hex(3)}")["access_token"]
    start = threading.Barrier(25)

    def patch(i: int) -> list[str]:
        start.wait()
        seen = []
        for j in range(2):
            answer = call(dev_server, "PATCH", "/user/profile", token, json={"bio": f"edit {i}.{j}"})
            assert answer.status_code == 200, answer.text
            seen.append(answer.json()["data"]["updated_at"])
            # A read right after: a slower PATCH stamped earlier must not have moved it back meanwhile.
            seen.append(call(dev_server, "GET", "/user/profile", token).json()["data"]["updated_at"])
        return seen

    with ThreadPoolExecutor(max_workers=25) as pool:
        per_client = list(pool.map(patch, range(25)))
    # Each client sees updated_at only move forward, and the stored one is the latest anyone saw.
    # (Each PATCH stamps the clock before its write lands: without a condition, one stamped earlier
    # but landing later would move updated_at back.)
    for seen in per_client:
        assert seen == sorted(seen)
    final = call(dev_server, "GET", "/user/profile", token).json()["data"]
    assert final["updated_at"] == max(stamp for seen in per_client for stamp in seen)
    assert final["bio"].startswith("edit ")
    assert all(final[name] == 0 for name in ("recipe_count", "follower_count", "following_count"))
