"""WeChat faults that need a real socket (tests/unit/test_wechat_client.py covers the rest with
httpx's MockTransport): a body trickled a byte at a time, a connection reset, through the client and
through the whole login."""

from __future__ import annotations

import dataclasses
import time

import pytest

from shared.errors import Reason, ServiceError
from shared.settings import load_settings
from shared.wechat import MAX_ATTEMPTS, WeChatClient
from tests.faulty_peer import FaultyPeer


def exchange_fails(peer: FaultyPeer, timeout_s: float) -> tuple[ServiceError, float]:
    settings = load_settings(
        {
            "STAGE": "local",
            "WX_APPID": "wx-app",
            "WX_SECRET": "very-secret-value",
            "WX_API_BASE": peer.url,
            "WX_TIMEOUT_S": str(timeout_s),
        }
    )
    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        WeChatClient(settings).code_to_session("code-1")
    return caught.value, time.monotonic() - started


def test_a_trickled_body_is_cut_off_at_each_attempts_deadline():
    # httpx's read timeout bounds each read, not the body: 0.1 s a byte would never trip a 0.5 s timeout.
    with FaultyPeer("trickle", trickle_s=0.1).running() as peer:
        error, elapsed = exchange_fails(peer, timeout_s=0.5)
    assert error.reason is Reason.WECHAT_UNAVAILABLE and "timeout" in error.message
    assert peer.requests == MAX_ATTEMPTS
    # Uncut, one attempt alone would take 4 s (the body's 41 bytes); the rest is backoff and a busy machine.
    assert elapsed < MAX_ATTEMPTS * 0.5 + 0.4 + 1.5


def test_a_reset_connection_is_retried_then_unavailable():
    with FaultyPeer("reset").running() as peer:
        error, elapsed = exchange_fails(peer, timeout_s=1)
    assert error.reason is Reason.WECHAT_UNAVAILABLE and "very-secret-value" not in error.message
    assert peer.requests == MAX_ATTEMPTS and elapsed < 2


def test_login_against_a_trickling_wechat_answers_503_within_ten_seconds_and_writes_nothing(
    app, client, settings, storage
):
    from shared.api.routes.login import wechat_client

    with FaultyPeer("trickle", trickle_s=0.2).running() as peer:
        slow = WeChatClient(dataclasses.replace(settings, wx_api_base=peer.url))  # the default 3 s timeout
        app.dependency_overrides[wechat_client] = lambda: slow
        started = time.monotonic()
        response = client.post("/api/v1/auth/wx-login", json={"code": "slowpoke.1"})
        elapsed = time.monotonic() - started
    assert response.status_code == 503 and response.json()["reason"] == "WECHAT_UNAVAILABLE"
    assert elapsed < 10
    assert "access_token" not in response.text and "refresh_token" not in response.text
    assert storage.all_users_and_sessions() == ([], [])
